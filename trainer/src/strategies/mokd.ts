// `mokd` (exact): MoKD / DTO-KD (arXiv 2505.08170) — each step takes the min-norm point of the convex hull of the
// log-loss gradients g_i = grad(L_i) / L_i (the multiple-gradient descent direction of the log-losses, which is
// invariant to each loss's scale, e.g. the T^2 of KD). With G the Gram matrix of the raw gradients, the Gram of
// the g_i is G_ij / (L_i L_j). For two objectives (g11 = |g1|^2, g22 = |g2|^2, g12 = <g1, g2>):
//   pi1 = (g22 - g12) / (g11 + g22 - 2 g12), pi2 = 1 - pi1, step along d = pi1 g1 + pi2 g2,
// i.e. coefficients pi_i / L_i on the raw gradients. When 0 < pi1 < 1, <d, g1> = <d, g2>.
//
// Degenerate cases, the rule:
// - pi1 is clamped to [0, 1]. That covers g12 >= g11 (pi1 = 1: g1 is the shorter end of the segment and already
//   the min-norm point) and g12 >= g22 (pi1 = 0), which includes parallel gradients of different norms: the
//   step follows the smaller log-loss gradient, which does not increase either loss to first order.
// - g11 + g22 - 2 g12 = |g1 - g2|^2 ~ 0 (equal log-loss gradients): every pi gives the same d: 0.5 / 0.5.
// - A zero gradient: that objective is stationary. Plain min-norm would return d = 0 and stall training, so it
//   gets weight 0 and the others are solved without it (two objectives: all weight to the other). "Zero" is
//   judged on the RAW gradients (|g_i|^2 <= 1e-12 max_j |g_j|^2): on the log-scaled ones a converged objective's
//   float noise divided by a tiny loss looks like a real gradient, wins the min-norm point, and its coefficient
//   pi / L (~1e12 at the loss floor) turns that noise into the step.
// - A loss at or below the floor 1e-12 (0, or a float32 KL that came out negative) has no log-gradient: weight 0.
// - A non-finite loss or gradient: weight 0 and coefficient 0 (the engine skips such a step anyway, see
//   finiteStep in gradients.ts). No usable objective at all: weights 0.5 / 0.5, coefficients 0 (no step).
// More than two objectives: the same min-norm problem on the simplex (min-norm.ts: exact on the faces for K <= 4).
import type { Combination, GradientStrategy } from "../contracts.ts";
import { activeIndices, minNormSimplex, scaleGram, scatter, subGram } from "./min-norm.ts";

export const LOSS_FLOOR = 1e-12;

export interface MokdOptions {
  /**
   * Mixes the min-norm weights with uniform ones, pi' = m + (1 - K m) pi over the K usable objectives, so none
   * gets less than m (0: exact MoKD). Not a constrained min-norm point: a floor measured as a remedy for exact
   * MoKD's corner solutions (docs/trainer.md, docs/benchmarks.md).
   */
  minWeight?: number;
}

export class MokdStrategy implements GradientStrategy {
  readonly kind = "gradient";
  readonly name = "mokd";
  private readonly minWeight: number;

  constructor(options: MokdOptions = {}) {
    this.minWeight = options.minWeight ?? 0;
  }

  combine(gram: number[][], losses: number[]): Combination {
    const k = gram.length;
    const idx = activeIndices(gram).filter((i) => Number.isFinite(losses[i]) && losses[i]! > LOSS_FLOOR);
    if (idx.length === 0) return { coefficients: new Array<number>(k).fill(0), weights: uniform(k) };
    const active = idx.map((i) => losses[i]!);
    const exact = minNormSimplex(scaleGram(subGram(gram, idx), active));
    const m = Math.min(this.minWeight, 1 / idx.length);
    const pi = scatter(
      k,
      idx,
      exact.map((p) => m + (1 - idx.length * m) * p),
    );
    const coefficients = pi.map((p, i) => (p === 0 ? 0 : p / losses[i]!));
    return { coefficients, weights: pi };
  }

  state(): unknown {
    return {};
  }

  loadState(): void {}
}

const uniform = (k: number) => new Array<number>(k).fill(1 / k);
