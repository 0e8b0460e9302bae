// `sum-log`: a control, not a method. Fixed weights on the LOG-losses: the step follows sum_i w_i grad(log L_i) =
// sum_i (w_i / L_i) grad(L_i) with the constant w_i of spec.strategy.weights. It has exact MoKD's scaling (each
// gradient divided by its loss, so KD's T^2 or a loss's unit does not matter, and the coefficients do not sum to 1)
// but no min-norm solve: beside `mokd` it separates what the per-step weighting adds from what dividing by the
// losses adds (a larger or smaller step). One backward pass; w_i / L_i is a constant of the step.
import type { StrategySpec } from "../../../api/v1alpha1/index.ts";
import type { Combination, LossStrategy, ObjectiveName } from "../contracts.ts";
import { normalise } from "./min-norm.ts";
import { LOSS_FLOOR } from "./mokd.ts";

export class SumLogStrategy implements LossStrategy {
  readonly kind = "loss";
  readonly name = "sum-log";
  private readonly weights: number[];

  constructor(weights: StrategySpec["weights"], objectives: readonly ObjectiveName[]) {
    this.weights = objectives.map((o) => weights[o]);
  }

  /** A loss at or below the floor (or not finite) has no log-gradient: coefficient 0, as in `mokd`. */
  combine(losses: number[]): Combination {
    const coefficients = this.weights.map((w, i) => {
      const l = losses[i]!;
      return Number.isFinite(l) && l > LOSS_FLOOR ? w / l : 0;
    });
    return { coefficients, weights: normalise(this.weights) };
  }

  state(): unknown {
    return {};
  }

  loadState(): void {}
}
