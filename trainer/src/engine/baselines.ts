// Baselines of a run (`trainer run --baselines`): the student alone and classic KD, same teacher, data and seed.
import type { TrainerSpec } from "../../../api/v1alpha1/index.ts";
import type { Dataset, EpochRecord, Network } from "../contracts.ts";
import type { StageHooks } from "./stage.ts";
import { bestEpoch } from "./build-summary.ts";
import { trainStudent } from "./student.ts";
import type { Logger } from "./telemetry.ts";

export interface BaselineResult {
  name: string;
  accuracy: number;
  bestEpoch: number;
  bestValidationAccuracy: number;
  epochs: EpochRecord[];
}

/** The spec with the student alone: cross-entropy only. */
export function aloneSpec(spec: TrainerSpec): TrainerSpec {
  return {
    ...spec,
    objectives: {
      ...spec.objectives,
      task: { ...spec.objectives.task, enabled: true },
      distillation: { ...spec.objectives.distillation, enabled: false },
      feature: { ...spec.objectives.feature, enabled: false },
    },
    strategy: { ...spec.strategy, name: "sum", weights: { ...spec.strategy.weights, task: 1 } },
  };
}

/** The student alone (cross-entropy only) and classic KD (`sum`), same teacher, data and seed. */
export async function trainBaselines(
  spec: TrainerSpec,
  dataset: Dataset,
  teacher: { network: Network },
  log: Logger,
  hooks: StageHooks = {},
): Promise<BaselineResult[]> {
  const sum: TrainerSpec = { ...spec, strategy: { ...spec.strategy, name: "sum" } };
  const results: BaselineResult[] = [];
  for (const [name, variant] of [
    ["CE only (no teacher)", aloneSpec(spec)],
    ["sum (classic KD)", sum],
  ] as const) {
    log.info(`baseline: ${name}`);
    const run = await trainStudent(variant, dataset, teacher, { hooks, log });
    results.push({ name, accuracy: run.accuracy, ...bestEpoch(run.history), epochs: run.history });
    run.network.model.dispose();
  }
  return results;
}
