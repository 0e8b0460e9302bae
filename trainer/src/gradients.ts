// Gradient helpers for the training step: per-objective gradients from ONE forward pass, their Gram matrix
// (one read-back), linear combination, clipping and telemetry (cosine, norm ratio). Gradients are kept per
// variable (Tensor[] in the order of the variable list), never flattened: the Gram matrix is a sum over variables
// of per-variable dot products, so no parameter-sized concatenation is needed.
//
// Sharing the forward pass: tf.variableGrads re-runs f for every call. Here the forward runs once inside an outer
// tape (tf.engine().gradients with allowNoGradients, whose result is a constant, so its own backward is empty);
// while that tape is open, each inner engine.gradients call whose f just returns an already computed loss walks
// the same tape backwards (the mechanism tfjs uses for higher-order gradients). The tape is freed when the outer
// call returns. Results are handed back as clones tracked by the caller's scope, so an enclosing tf.tidy frees them.
import * as tf from "@tensorflow/tfjs";
import { float32View, hostMemoryBackend, uninitializedFloat32 } from "./backend/heap.ts";
import { wasmSimdKernels } from "./backend/wasm-simd.ts";

export interface ObjectiveGradients {
  /** One scalar loss per objective. */
  losses: tf.Scalar[];
  /** grads[i][v]: gradient of loss i w.r.t. vars[v]; zeros where the loss does not depend on the variable. */
  grads: tf.Tensor[][];
}

/**
 * Gradients of each of the losses returned by `lossFn` w.r.t. `vars` (pass the student's trainable variables
 * explicitly: without a list tfjs would differentiate every variable of the process). `shareForward: false`
 * runs one tf.variableGrads per objective instead (re-running the forward; kept for comparison and as a fallback).
 */
export function objectiveGradients(
  lossFn: () => tf.Scalar[],
  vars: tf.Variable[],
  options: { shareForward?: boolean } = {},
): ObjectiveGradients {
  return options.shareForward === false
    ? separateGradients(lossFn, vars)
    : sharedForwardGradients(lossFn, vars);
}

function sharedForwardGradients(lossFn: () => tf.Scalar[], vars: tf.Variable[]): ObjectiveGradients {
  const engine = tf.engine();
  let kept: { losses: tf.Scalar[]; grads: (tf.Tensor | null)[][] } | undefined;
  const outer = engine.gradients(
    () => {
      const losses = lossFn();
      const grads = losses.map((loss) => engine.gradients(() => loss, vars, undefined, true).grads);
      kept = {
        losses: losses.map((l) => tf.keep(l)),
        grads: grads.map((g) => g.map((t) => t && tf.keep(t))),
      };
      return tf.scalar(0);
    },
    vars,
    undefined,
    true,
  );
  outer.value.dispose();
  const { losses, grads } = kept!;
  const result = {
    losses: losses.map((l) => l.clone()),
    grads: grads.map((g) => g.map((t, v) => (t ? t.clone() : tf.zerosLike(vars[v]!)))),
  };
  for (const t of [...losses, ...grads.flat()]) t?.dispose();
  return result;
}

function separateGradients(lossFn: () => tf.Scalar[], vars: tf.Variable[]): ObjectiveGradients {
  const losses: tf.Scalar[] = [];
  const count = tf.tidy(() => lossFn().length);
  const grads = Array.from({ length: count }, (_, i) => {
    const { value, grads: named } = tf.variableGrads(() => lossFn()[i]!, vars);
    losses.push(value);
    return vars.map((v) => named[v.name] ?? tf.zerosLike(v));
  });
  return { losses, grads };
}

/**
 * One backward pass of sum_i c_i L_i (the `sum` and `mokd-amortized` strategies). `coefficients` may depend on
 * the loss values (FAMO's do): then they are read back once, inside the tape, and treated as constants.
 */
export function weightedLossGradients(
  lossFn: () => tf.Scalar[],
  coefficients: number[] | ((losses: number[]) => number[]),
  vars: tf.Variable[],
): { losses: tf.Scalar[]; coefficients: number[]; grads: tf.Tensor[] } {
  let losses: tf.Scalar[] = [];
  let used: number[] = [];
  const { grads } = tf.variableGrads(() => {
    losses = lossFn().map((l) => tf.keep(l));
    const stacked = tf.stack(losses);
    used = typeof coefficients === "function" ? coefficients(Array.from(stacked.dataSync())) : coefficients;
    return tf.sum(tf.mul(stacked, tf.tensor1d(used))) as tf.Scalar;
  }, vars);
  const result = {
    losses: losses.map((l) => l.clone()),
    coefficients: used,
    grads: vars.map((v) => grads[v.name] ?? tf.zerosLike(v)),
  };
  losses.forEach((l) => l.dispose());
  return result;
}

/**
 * gram[i][j] = <grads[i], grads[j]> summed over variables. On wasm SIMD dot products straight on the heap, on cpu
 * JS loops over the storage (no kernels, no copies); elsewhere tensor ops and one read-back for the matrix.
 */
export function gramMatrix(grads: tf.Tensor[][]): number[][] {
  const views = hostViews(grads);
  return views ? gramOfViews(views) : gramByTensorOps(grads);
}

/** Float32 views of every gradient, or null when some gradient has no host-memory storage. */
function hostViews(grads: tf.Tensor[][]): Float32Array<ArrayBufferLike>[][] | null {
  if (!hostMemoryBackend()) return null;
  const views = grads.map((g) => g.map(float32View));
  return views.every((g) => g.every((v) => v !== null)) ? (views as Float32Array<ArrayBufferLike>[][]) : null;
}

function gramOfViews(views: Float32Array<ArrayBufferLike>[][]): number[][] {
  const k = views.length;
  const simd = wasmSimdKernels();
  const dot = simd
    ? (a: Float32Array<ArrayBufferLike>, b: Float32Array<ArrayBufferLike>) =>
        simd.dot(a.byteOffset, b.byteOffset, a.length)
    : jsDot;
  const gram = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < k; i++)
    for (let j = i; j < k; j++) {
      let s = 0;
      views[i]!.forEach((a, v) => (s += dot(a, views[j]![v]!)));
      gram[i]![j] = gram[j]![i] = s;
    }
  return gram;
}

function jsDot(a: Float32Array<ArrayBufferLike>, b: Float32Array<ArrayBufferLike>): number {
  let s = 0;
  for (let e = 0; e < a.length; e++) s += a[e]! * b[e]!;
  return s;
}

function gramByTensorOps(grads: tf.Tensor[][]): number[][] {
  const k = grads.length;
  const pairs: [number, number][] = [];
  for (let i = 0; i < k; i++) for (let j = i; j < k; j++) pairs.push([i, j]);
  const values = tf.tidy(() => {
    const products = pairs.map(([i, j]) =>
      tf.addN(grads[i]!.map((g, v) => tf.sum(i === j ? tf.square(g) : tf.mul(g, grads[j]![v]!)))),
    );
    return tf.stack(products).dataSync();
  });
  const gram = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  pairs.forEach(([i, j], n) => (gram[i]![j] = gram[j]![i] = values[n]!));
  return gram;
}

/** sum_i coefficients[i] * grads[i], per variable (on cpu/wasm written in place: SIMD axpy / JS loop). */
export function combineGradients(grads: tf.Tensor[][], coefficients: number[]): tf.Tensor[] {
  if (hostViews(grads)) return combineInPlace(grads, coefficients);
  // Zero coefficients are left out, as in combineInPlace: 0 * NaN would still be NaN.
  return tf.tidy(() =>
    grads[0]!.map((_, v) => {
      const terms = grads.flatMap((g, i) => (coefficients[i] === 0 ? [] : [tf.mul(g[v]!, coefficients[i]!)]));
      if (terms.length === 0) return tf.zerosLike(grads[0]![v]!);
      return terms.length === 1 ? terms[0]! : tf.addN(terms);
    }),
  );
}

function combineInPlace(grads: tf.Tensor[][], coefficients: number[]): tf.Tensor[] {
  const outputs = grads[0]!.map((g) => uninitializedFloat32(g.shape));
  // Views only after every allocation: growing the wasm heap detaches earlier views.
  const views = hostViews(grads)!;
  const simd = wasmSimdKernels();
  outputs.forEach((out, v) => {
    const o = float32View(out)!;
    o.fill(0);
    views.forEach((g, i) => {
      const [src, c] = [g[v]!, coefficients[i]!];
      if (c === 0) return;
      if (simd) simd.axpy(o.byteOffset, src.byteOffset, o.length, c);
      else for (let e = 0; e < o.length; e++) o[e] = o[e]! + c * src[e]!;
    });
  });
  return outputs;
}

/** The L2 norm of sum_i c_i g_i from the Gram matrix: sqrt(c^T G c), no tensor work. */
export function combinedNorm(gram: number[][], coefficients: number[]): number {
  let s = 0;
  coefficients.forEach((ci, i) => coefficients.forEach((cj, j) => (s += ci * cj * gram[i]![j]!)));
  return Math.sqrt(Math.max(s, 0));
}

/**
 * Whether a step may be applied: every loss and every objective gradient (the Gram diagonal) is finite, and so
 * are the coefficients and the norm of the update sum_i c_i g_i. A step that fails is skipped (no update) and
 * counted: one NaN in the update would make every weight NaN from then on. A single-backward step passes the 1 x 1
 * Gram of its combined gradient and coefficients [1].
 */
export function finiteStep(losses: number[], gram: number[][], coefficients: number[]): boolean {
  return (
    losses.every(Number.isFinite) &&
    gram.every((row, i) => Number.isFinite(row[i])) &&
    coefficients.every(Number.isFinite) &&
    Number.isFinite(combinedNorm(gram, coefficients))
  );
}

/** The factor (<= 1) that brings a gradient of global norm `norm` down to `maxNorm`; 1 when unset. */
export function clipFactor(norm: number, maxNorm: number | undefined): number {
  if (maxNorm === undefined || !(norm > maxNorm)) return 1;
  return maxNorm / norm;
}

/** Global L2 norm of a list of tensors (one read-back). */
export function globalNorm(grads: tf.Tensor[]): number {
  return tf.tidy(() => Math.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g)))).dataSync()[0]!));
}

/** Scales the gradients to global norm <= maxNorm (returns new tensors; the inputs are untouched). */
export function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: number } {
  const norm = globalNorm(grads);
  const factor = clipFactor(norm, maxNorm);
  return { grads: tf.tidy(() => grads.map((g) => (factor === 1 ? g.clone() : tf.mul(g, factor)))), norm };
}

const pairKey = (a: string, b: string) => `${a}:${b}`;

/** Pairwise cosine of the objective gradients, keyed "task:distillation" (0 when either gradient is zero). */
export function pairwiseCosines(gram: number[][], names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  forPairs(names, (i, j) => {
    const denom = Math.sqrt(gram[i]![i]! * gram[j]![j]!);
    out[pairKey(names[i]!, names[j]!)] = denom > 0 ? gram[i]![j]! / denom : 0;
  });
  return out;
}

/** Pairwise norm ratio |g_i| / |g_j|, keyed "task:distillation" (Infinity when |g_j| = 0 < |g_i|, 1 if both 0). */
export function normRatios(gram: number[][], names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  forPairs(names, (i, j) => {
    const [a, b] = [Math.sqrt(gram[i]![i]!), Math.sqrt(gram[j]![j]!)];
    out[pairKey(names[i]!, names[j]!)] = b > 0 ? a / b : a > 0 ? Infinity : 1;
  });
  return out;
}

/**
 * The share of the update sum_i c_i g_i each objective contributed: |c_i| |g_i| / sum_j |c_j| |g_j| (from the Gram
 * diagonal; sums to 1; all 0 when the update is zero). A clip factor scales every c_i alike and cancels.
 */
export function stepShares(gram: number[][], coefficients: number[]): number[] {
  const parts = coefficients.map((c, i) =>
    c === 0 ? 0 : Math.abs(c) * Math.sqrt(Math.max(gram[i]![i]!, 0)),
  );
  const total = parts.reduce((a, b) => a + b, 0);
  return parts.map((p) => (total > 0 ? p / total : 0));
}

/** True when some pair of objective gradients conflicts (negative inner product). */
export function hasConflict(gram: number[][]): boolean {
  return gram.some((row, i) => row.some((g, j) => j > i && g < 0));
}

function forPairs(names: readonly string[], f: (i: number, j: number) => void): void {
  for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) f(i, j);
}

/** The NamedTensorMap optimizer.applyGradients takes, keyed by each variable's registered name. */
export function toNamedGradients(vars: tf.Variable[], grads: tf.Tensor[]): tf.NamedTensorMap {
  return Object.fromEntries(vars.map((v, i) => [v.name, grads[i]!]));
}
