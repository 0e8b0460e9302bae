// The student's optimiser from spec.training.
//
// Adam on the cpu and wasm backends is fused: tf.train.adam runs ~12 small kernels per variable per step (~3 ms
// of an ~11 ms MLP step on wasm); FusedAdamOptimizer updates each variable (into fresh storage, see below) and its
// moments (in place) in one pass over their storage (wasm: a SIMD kernel on the heap, backend/wasm-simd.ts; cpu: a JS loop), with the same float32 arithmetic, operation by operation, as the
// stock optimiser (bias correction by the running products accBeta1/accBeta2, epsilon added to sqrt(v-hat)). It IS
// a tf.AdamOptimizer: the same slot variables ("<var>/m", "<var>/v"), getWeights/setWeights (checkpoints) and
// config; other backends (tfjs-node) and non-float32 tensors use the stock update.
import * as tf from "@tensorflow/tfjs";
import type { TrainingSpec } from "../../../api/v1alpha1/index.ts";
import {
  float32View,
  hostMemoryBackend,
  privateCopy,
  storageRefCount,
  uninitializedFloat32,
} from "../backend/heap.ts";
import { wasmSimdKernels, type AdamKernel } from "../backend/wasm-simd.ts";
import { RecipeOptimizer } from "./recipe-optimizer.ts";
import { scheduleIsConstant, type ScheduleSpec } from "./schedule.ts";

/** MOKD_FUSED_OPTIMIZER=0 selects the stock tfjs Adam (for A/B measurements). */
const fusedByDefault = () => process.env.MOKD_FUSED_OPTIMIZER !== "0";

export type OptimizerSettings = Pick<TrainingSpec, "optimizer" | "learningRate" | "momentum"> &
  Partial<Pick<TrainingSpec, "weightDecay" | "schedule" | "epochs">>;

/**
 * The student's optimiser. With weight decay or a schedule that changes the learning rate it is wrapped in a
 * RecipeOptimizer (recipe-optimizer.ts), which needs the steps per epoch; otherwise the plain optimiser, exactly
 * as before the recipe existed.
 */
export function createOptimizer(
  training: OptimizerSettings,
  fused = fusedByDefault(),
  stepsPerEpoch = 1,
): tf.Optimizer {
  const inner = baseOptimizer(training, fused);
  const weightDecay = training.weightDecay ?? 0;
  const schedule = training.schedule ?? constantSchedule;
  if (weightDecay === 0 && scheduleIsConstant(schedule)) return inner;
  return new RecipeOptimizer(inner, {
    schedule,
    shape: {
      learningRate: training.learningRate,
      stepsPerEpoch,
      totalSteps: (training.epochs ?? 1) * stepsPerEpoch,
    },
    weightDecay,
    decoupled: training.optimizer === "adamw",
  });
}

const constantSchedule: ScheduleSpec = {
  name: "constant",
  warmupEpochs: 0,
  minLearningRate: 0,
  milestones: [],
  gamma: 0.1,
};

function baseOptimizer(training: OptimizerSettings, fused: boolean): tf.Optimizer {
  switch (training.optimizer) {
    case "adam":
    case "adamw":
      return fused ? new FusedAdamOptimizer(training.learningRate) : tf.train.adam(training.learningRate);
    case "sgd":
      return tf.train.sgd(training.learningRate);
    case "momentum":
      return tf.train.momentum(training.learningRate, training.momentum);
  }
}

interface Slot {
  originalName: string;
  variable: tf.Variable;
}
/** tf.AdamOptimizer's private state (tfjs-core 4.22 adam_optimizer.js). */
interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Slot[];
  accumulatedSecondMoment: Slot[];
}

type Gradients = Parameters<tf.AdamOptimizer["applyGradients"]>[0];

export class FusedAdamOptimizer extends tf.AdamOptimizer {
  constructor(learningRate = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon?: number) {
    super(learningRate, beta1, beta2, epsilon);
  }

  override applyGradients(variableGradients: Gradients): void {
    const entries: [string, tf.Tensor | undefined][] = Array.isArray(variableGradients)
      ? variableGradients.map((g) => [g.name, g.tensor])
      : Object.entries(variableGradients);
    if (!fusable(entries)) return super.applyGradients(variableGradients);
    const s = this as unknown as AdamInternals;
    // Read each value at once: making the second private may allocate and detach the first view.
    const acc1 = ownedView(s.accBeta1)[0]!;
    const acc2 = ownedView(s.accBeta2)[0]!;
    const f = Math.fround;
    const constants: AdamConstants = {
      beta1: f(s.beta1),
      oneMinusBeta1: f(1 - s.beta1),
      beta2: f(s.beta2),
      oneMinusBeta2: f(1 - s.beta2),
      oneMinusAccBeta1: f(1 - acc1),
      oneMinusAccBeta2: f(1 - acc2),
      epsilon: f(s.epsilon),
      negLearningRate: f(-s.learningRate),
    };
    const simd = wasmSimdKernels()?.adam;
    const constantList = adamConstantOrder.map((k) => constants[k]) as AdamConstantList;
    entries.forEach(([name, gradient], i) => {
      const value = tf.engine().registeredVariables[name]!;
      s.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: zeroSlot(value) };
      s.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: zeroSlot(value) };
      if (!gradient) return;
      // The parameters get NEW storage each step, as with the stock optimiser's assign: the wasm backend caches
      // XNNPACK operators with their packed weights by tensor id, so weights changed in place under the same id
      // are never re-packed and the forward keeps using old values (measured: a tiny run stuck at 50%).
      // The moments are never matmul operands and are updated in place. Allocate first, then take the views
      // (allocation may grow the wasm heap and detach earlier views).
      const moments = [s.accumulatedFirstMoment[i].variable, s.accumulatedSecondMoment[i].variable];
      moments.forEach(makePrivate);
      const next = uninitializedFloat32(value.shape);
      const [m, v] = moments.map((b) => float32View(b)!) as [Float32Array, Float32Array];
      const x = float32View(next)!;
      x.set(float32View(value)!);
      const g = float32View(gradient)!;
      if (simd) simd(x.byteOffset, g.byteOffset, m.byteOffset, v.byteOffset, x.length, ...constantList);
      else adamUpdate(x, g, m, v, constants);
      value.assign(next);
      next.dispose();
    });
    // Re-read: the views above may have been detached by allocations.
    const [a1, a2] = [float32View(s.accBeta1)!, float32View(s.accBeta2)!];
    a1[0] = f(a1[0]! * constants.beta1);
    a2[0] = f(a2[0]! * constants.beta2);
    this.incrementIterations();
  }
}

/** Fusing needs host-memory storage and float32 everywhere; anything else takes the stock path. */
function fusable(entries: [string, tf.Tensor | undefined][]): boolean {
  if (!hostMemoryBackend()) return false;
  return entries.every(([name, g]) => {
    const value = tf.engine().registeredVariables[name];
    return value?.dtype === "float32" && (!g || (g.dtype === "float32" && float32View(g) !== null));
  });
}

const zeroSlot = (value: tf.Variable): tf.Variable => tf.tidy(() => tf.zerosLike(value).variable(false));

/** Gives `v` storage no other tensor shares, so in-place writes change `v` only. */
function makePrivate(v: tf.Variable): void {
  if (storageRefCount(v) <= 1 && float32View(v)) return;
  const copy = privateCopy(v);
  v.assign(copy);
  copy.dispose();
}

function ownedView(v: tf.Variable): Float32Array<ArrayBufferLike> {
  makePrivate(v);
  return float32View(v)!;
}

export interface AdamConstants {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  oneMinusAccBeta1: number;
  oneMinusAccBeta2: number;
  epsilon: number;
  negLearningRate: number;
}

/** The constants in the order the wasm kernel takes them. */
const adamConstantOrder = [
  "beta1",
  "oneMinusBeta1",
  "beta2",
  "oneMinusBeta2",
  "oneMinusAccBeta1",
  "oneMinusAccBeta2",
  "epsilon",
  "negLearningRate",
] as const satisfies (keyof AdamConstants)[];
type AdamConstantList =
  Parameters<AdamKernel> extends [number, number, number, number, number, ...infer C] ? C : never;

/**
 * One Adam step in place, rounding to float32 after every operation in the stock optimiser's order:
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; x += -lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
 */
export function adamUpdate(
  x: Float32Array<ArrayBufferLike>,
  g: Float32Array<ArrayBufferLike>,
  m: Float32Array<ArrayBufferLike>,
  v: Float32Array<ArrayBufferLike>,
  c: AdamConstants,
): void {
  const f = Math.fround;
  const { beta1, oneMinusBeta1, beta2, oneMinusBeta2, oneMinusAccBeta1, oneMinusAccBeta2 } = c;
  const { epsilon, negLearningRate } = c;
  for (let i = 0; i < x.length; i++) {
    const gi = g[i]!;
    const mi = f(f(m[i]! * beta1) + f(gi * oneMinusBeta1));
    const vi = f(f(v[i]! * beta2) + f(f(gi * gi) * oneMinusBeta2));
    m[i] = mi;
    v[i] = vi;
    const mHat = f(mi / oneMinusAccBeta1);
    const vHat = f(vi / oneMinusAccBeta2);
    x[i] = f(f(f(mHat / f(f(Math.sqrt(vHat)) + epsilon)) * negLearningRate) + x[i]!);
  }
}
