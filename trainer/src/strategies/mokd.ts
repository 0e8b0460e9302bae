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
// - A zero gradient (|g_i|^2 <= 1e-12 max_j |g_j|^2, or not finite): that objective is stationary. Plain min-norm
//   would return d = 0 and stall training, so it gets weight 0 and the others are solved without it (two
//   objectives: all weight to the other). All zero: 0.5 / 0.5 (the step is zero anyway).
// - Losses are floored at 1e-12 before dividing (a loss of 0 would make g_i infinite).
// More than two objectives: the same min-norm problem on the simplex, solved by Frank-Wolfe.
import type { Combination, GradientStrategy } from "../contracts.ts";
import { minNormIgnoringZeros, scaleGram } from "./min-norm.ts";

export const LOSS_FLOOR = 1e-12;

export class MokdStrategy implements GradientStrategy {
  readonly kind = "gradient";
  readonly name = "mokd";

  combine(gram: number[][], losses: number[]): Combination {
    const safe = losses.map((l) => Math.max(l, LOSS_FLOOR));
    const pi = minNormIgnoringZeros(scaleGram(gram, safe));
    return { coefficients: pi.map((p, i) => p / safe[i]!), weights: pi };
  }

  state(): unknown {
    return {};
  }

  loadState(): void {}
}
