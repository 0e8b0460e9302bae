// `cagrad`: conflict-averse gradient descent (Liu et al., "Conflict-Averse Gradient Descent for Multi-task
// Learning", NeurIPS 2021), following the authors' implementation: with g0 the average gradient and
// c' = c |g0|, find simplex weights w minimising  w^T G b + c' sqrt(w^T G w)  (b uniform), then step along
//   d = (g0 + c' / |g_w| g_w) / (1 + c^2),  g_w = sum_i w_i g_i,
// i.e. coefficients (1/K + c' w_i / |g_w|) / (1 + c^2). c = 0 gives the plain average. The objective is convex
// on the simplex: golden-section search for two objectives, Frank-Wolfe with golden-section line search for more.
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

function minimiseOnSimplex(gram: number[][], b: number[], radius: number, f: Objective): number[] {
  if (gram.length === 2) {
    const a = goldenSection((t) => f([t, 1 - t]));
    return [a, 1 - a];
  }
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
