// `mgda`: the multiple-gradient descent algorithm (Désidéri 2012; Sener & Koltun, "Multi-Task Learning as
// Multi-Objective Optimization", NeurIPS 2018): step along the min-norm point of the convex hull of the RAW
// objective gradients. Closed form for two objectives (clamped to [0, 1]; equal gradients: 0.5 / 0.5),
// Frank-Wolfe for more. Zero gradients get weight 0 (same rule as `mokd`, see mokd.ts) so a stationary
// objective does not stall the step. Unlike `mokd` it is not invariant to the losses' scales.
import type { Combination, GradientStrategy } from "../contracts.ts";
import { minNormIgnoringZeros } from "./min-norm.ts";

export class MgdaStrategy implements GradientStrategy {
  readonly kind = "gradient";
  readonly name = "mgda";

  combine(gram: number[][]): Combination {
    const alpha = minNormIgnoringZeros(gram);
    return { coefficients: alpha, weights: alpha };
  }

  state(): unknown {
    return {};
  }

  loadState(): void {}
}
