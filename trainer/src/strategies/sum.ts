// `sum`: classic knowledge distillation, L = sum_i w_i L_i with fixed weights from spec.strategy.weights
// (Hinton et al. 2015: alpha * KD + (1 - alpha) * CE). One backward pass, no state.
import type { StrategySpec } from "../../../api/v1alpha1/index.ts";
import type { Combination, LossStrategy, ObjectiveName } from "../contracts.ts";
import { normalise } from "./min-norm.ts";

export class SumStrategy implements LossStrategy {
  readonly kind = "loss";
  readonly name = "sum";
  private readonly coefficients: number[];

  constructor(weights: StrategySpec["weights"], objectives: readonly ObjectiveName[]) {
    this.coefficients = objectives.map((o) => weights[o]);
  }

  combine(): Combination {
    return { coefficients: [...this.coefficients], weights: normalise(this.coefficients) };
  }

  state(): unknown {
    return {};
  }

  loadState(): void {}
}
