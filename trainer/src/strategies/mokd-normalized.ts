// `mokd-normalized`: a control, not a method. Exact MoKD's min-norm weights pi on the log-loss gradients, with its
// coefficients pi_i / L_i on the raw gradients rescaled to sum to 1: c_i = (pi_i / L_i) / sum_j (pi_j / L_j).
// The direction is MoKD's; the step length is that of a convex combination of the raw gradients, like `sum` with
// weights summing to 1 and like FAMO (whose coefficients z_i / (c L_i) are normalised the same way). Beside `mokd`
// it shows how much of MoKD's difference from a fixed weighting comes from its (larger or smaller) step.
import type { Combination, GradientStrategy } from "../contracts.ts";
import { MokdStrategy } from "./mokd.ts";

export class MokdNormalizedStrategy implements GradientStrategy {
  readonly kind = "gradient";
  readonly name = "mokd-normalized";
  private readonly exact = new MokdStrategy();

  combine(gram: number[][], losses: number[]): Combination {
    const { coefficients, weights } = this.exact.combine(gram, losses);
    const total = coefficients.reduce((a, c) => a + c, 0);
    // No usable objective: MoKD's zero coefficients (no step) stay zero.
    if (!(total > 0)) return { coefficients, weights };
    return { coefficients: coefficients.map((c) => c / total), weights };
  }

  state(): unknown {
    return {};
  }

  loadState(): void {}
}
