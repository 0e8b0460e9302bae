// `cagrad`: conflict-averse gradient descent (Liu et al., "Conflict-Averse Gradient Descent for Multi-task
// Learning", NeurIPS 2021), following the authors' implementation: with g0 the average gradient and
// c' = c |g0|, find simplex weights w minimising  w^T G b + c' sqrt(w^T G w)  (b uniform), then step along
//   d = (g0 + c' / |g_w| g_w) / (1 + c^2),  g_w = sum_i w_i g_i,
// i.e. coefficients (1/K + c' w_i / |g_w|) / (1 + c^2). c = 0 gives the plain average. The objective is convex
// on the simplex: golden-section search for two objectives; for three (all the trainer has), nested searches
// (w_0 = t, the rest (1 - t) times a point of the smaller simplex, minimised recursively): the partial minimum of
// a convex function over that slice is convex in t, so each search is exact to its tolerance. Frank-Wolfe with
// a golden-section line search converges only as O(1/t) and stopped up to 0.8% above the optimum on a face of
// the simplex for K = 3; it remains the solver for K > 3 only (nested searches cost ~60^(K-1) evaluations).
import type { Combination, GradientStrategy } from "../contracts.ts";
import { argmin, gramTimes, normalise, quadForm } from "./min-norm.ts";

export class CagradStrategy implements GradientStrategy {
  readonly kind = "gradient";
  readonly name = "cagrad";
  private readonly c: number;

  constructor(c: number) {
    this.c = c;
  }

  combine(gram: number[][]): Combination {
    const k = gram.length;
    const b = new Array<number>(k).fill(1 / k);
    const radius = this.c * Math.sqrt(Math.max(quadForm(gram, b), 0) + 1e-8);
    const objective = (w: number[]) =>
      quadForm(gram, w, b) + radius * Math.sqrt(Math.max(quadForm(gram, w), 0) + 1e-8);
    const w = radius > 0 ? minimiseOnSimplex(gram, b, radius, objective) : b;
    const lambda = radius / (Math.sqrt(Math.max(quadForm(gram, w), 0)) + 1e-8);
    const coefficients = b.map((bi, i) => (bi + lambda * w[i]!) / (1 + this.c * this.c));
    return { coefficients, weights: normalise(coefficients) };
  }

  state(): unknown {
    return {};
  }

  loadState(): void {}
}

type Objective = (w: number[]) => number;

/** Golden-section iterations per nested level: the bracket shrinks to 0.618^56 ~ 2e-12. */
const NESTED_ITERATIONS = 56;

function minimiseOnSimplex(gram: number[][], b: number[], radius: number, f: Objective): number[] {
  if (gram.length === 2) {
    const a = goldenSection((t) => f([t, 1 - t]));
    return [a, 1 - a];
  }
  if (gram.length === 3) return nestedGoldenSection3(gram, b, radius);
  return frankWolfe(gram, b, radius, f);
}

/**
 * The minimiser for three objectives: golden-section over t = w_0 of the best point of the slice
 * w = (t, (1 - t) s, (1 - t) (1 - s)), itself a golden-section search over s. Scalar arithmetic only
 * (~60 x 60 evaluations, well under a millisecond).
 */
export function nestedGoldenSection3(gram: number[][], b: number[], radius: number): number[] {
  const gb = gramTimes(gram, b);
  const [g00, g01, g02, g11, g12, g22] = [
    gram[0]![0]!,
    gram[0]![1]!,
    gram[0]![2]!,
    gram[1]![1]!,
    gram[1]![2]!,
    gram[2]![2]!,
  ];
  const f = (w0: number, w1: number, w2: number) => {
    const q =
      w0 * w0 * g00 + w1 * w1 * g11 + w2 * w2 * g22 + 2 * (w0 * w1 * g01 + w0 * w2 * g02 + w1 * w2 * g12);
    return w0 * gb[0]! + w1 * gb[1]! + w2 * gb[2]! + radius * Math.sqrt(Math.max(q, 0) + 1e-8);
  };
  const bestS = (t: number) => goldenSection((s) => f(t, (1 - t) * s, (1 - t) * (1 - s)), NESTED_ITERATIONS);
  const sliceMin = (t: number) => {
    const s = bestS(t);
    return f(t, (1 - t) * s, (1 - t) * (1 - s));
  };
  const t = goldenSection(sliceMin, NESTED_ITERATIONS);
  const s = bestS(t);
  return [t, (1 - t) * s, (1 - t) * (1 - s)];
}

function frankWolfe(gram: number[][], b: number[], radius: number, f: Objective): number[] {
  let w = [...b];
  for (let it = 0; it < 100; it++) {
    const gw = gramTimes(gram, w);
    const norm = Math.sqrt(Math.max(quadForm(gram, w), 0) + 1e-8);
    const gradient = gramTimes(gram, b).map((x, i) => x + (radius * gw[i]!) / norm);
    const t = argmin(gradient);
    const along = (s: number) => w.map((x, i) => (1 - s) * x + (i === t ? s : 0));
    const s = goldenSection((step) => f(along(step)));
    const next = along(s);
    const change = next.reduce((acc, x, i) => acc + Math.abs(x - w[i]!), 0);
    w = next;
    if (change < 1e-9) break;
  }
  return w;
}

/** Minimiser of a convex function on [0, 1]. */
function goldenSection(f: (t: number) => number, iterations = 80): number {
  const r = (Math.sqrt(5) - 1) / 2;
  let lo = 0;
  let hi = 1;
  let x1 = hi - r * (hi - lo);
  let x2 = lo + r * (hi - lo);
  let f1 = f(x1);
  let f2 = f(x2);
  for (let i = 0; i < iterations; i++) {
    if (f1 <= f2) {
      hi = x2;
      x2 = x1;
      f2 = f1;
      x1 = hi - r * (hi - lo);
      f1 = f(x1);
    } else {
      lo = x1;
      x1 = x2;
      f1 = f2;
      x2 = lo + r * (hi - lo);
      f2 = f(x2);
    }
  }
  // The ends can be optimal (the interior search only gets within tolerance of them).
  const candidates = [0, (lo + hi) / 2, 1];
  return candidates.reduce((best, t) => (f(t) < f(best) ? t : best));
}
