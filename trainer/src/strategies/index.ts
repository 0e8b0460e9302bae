// The strategy registry: builds the weighting strategy a spec names, for the enabled objectives in order.
import type { ObjectivesSpec, StrategySpec } from "../../../api/v1alpha1/index.ts";
import type { ObjectiveName, WeightingStrategy } from "../contracts.ts";
import { CagradStrategy } from "./cagrad.ts";
import { ImtlStrategy } from "./imtl.ts";
import { MgdaStrategy } from "./mgda.ts";
import { MokdAmortizedStrategy } from "./mokd-amortized.ts";
import { MokdNormalizedStrategy } from "./mokd-normalized.ts";
import { MokdStrategy } from "./mokd.ts";
import { PcgradStrategy } from "./pcgrad.ts";
import { SumLogStrategy } from "./sum-log.ts";
import { SumStrategy } from "./sum.ts";

export function createStrategy(
  spec: StrategySpec,
  objectiveNames: readonly ObjectiveName[],
): WeightingStrategy {
  switch (spec.name) {
    case "sum":
      return new SumStrategy(spec.weights, objectiveNames);
    case "mokd":
      return new MokdStrategy();
    case "mokd-amortized":
      return new MokdAmortizedStrategy(spec.famo, objectiveNames.length);
    case "pcgrad":
      return new PcgradStrategy();
    case "mgda":
      return new MgdaStrategy();
    case "cagrad":
      return new CagradStrategy(spec.cagradC);
    case "imtl":
      return new ImtlStrategy();
    case "sum-log":
      return new SumLogStrategy(spec.weights, objectiveNames);
    case "mokd-normalized":
      return new MokdNormalizedStrategy();
  }
}

/**
 * What a user must know before a run of this spec starts: exact MoKD's measured corner behaviours
 * (docs/trainer.md "Exact MoKD: where the weight goes") and FAMO's measured loss with the feature objective.
 * Logged as warnings at run start.
 */
export function strategyWarnings(spec: { strategy: StrategySpec; objectives: ObjectivesSpec }): string[] {
  const { task, distillation, feature } = spec.objectives;
  if (spec.strategy.name === "mokd-amortized" && feature.enabled && (task.enabled || distillation.enabled)) {
    return [
      "strategy mokd-amortized (FAMO) with the feature objective: in the one setting measured (a few-label CNN, " +
        "10 seeds, learning rate chosen on validation) it was 1.44 points below FAMO without the feature objective " +
        "(95% CI 0.62 to 2.25 points, every seed; docs/benchmarks.md, 'Distillation quality: the method's claims')",
    ];
  }
  if (spec.strategy.name !== "mokd") return [];
  const warnings: string[] = [];
  if (feature.enabled && (task.enabled || distillation.enabled)) {
    warnings.push(
      "strategy mokd with the feature objective: exact MoKD gives most of the weight to the feature loss " +
        "(its log-loss gradient is the shortest; 77-93% of the weight measured), so it replaces the logit distillation and the " +
        "task rather than adding to them (docs/trainer.md, 'Exact MoKD: where the weight goes')",
    );
  }
  if (task.enabled && distillation.enabled) {
    warnings.push(
      "strategy mokd: on some steps (5-30% measured) the min-norm point is a corner and all weight " +
        "goes to distillation, the task gets none on those steps (docs/trainer.md, 'Exact MoKD: where the weight goes')",
    );
  }
  return warnings;
}

export {
  CagradStrategy,
  MokdAmortizedStrategy,
  ImtlStrategy,
  MgdaStrategy,
  MokdNormalizedStrategy,
  MokdStrategy,
  PcgradStrategy,
  SumLogStrategy,
  SumStrategy,
};
