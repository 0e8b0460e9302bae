// What a checkpoint was trained for: a hash of the spec fields that change what is trained.
import { createHash } from "node:crypto";
import type { TrainerSpec } from "../../../api/v1alpha1/index.ts";
import { fingerprintedObjectives } from "../objectives/index.ts";
import { scheduleIsConstant } from "./schedule.ts";

/**
 * Identifies what a checkpoint was trained for (every field but output, metrics and what only selects, evaluates
 * or speeds up). Fields added later are left out at the value that means the old behaviour, so checkpoints
 * written before them keep their fingerprint (a changed one would discard them on an upgrade of the trainer
 * mid-job):
 * - teacher.outputCache at every value: it changes where the teacher's outputs come from, not what is trained;
 * - strategy.famo.observe and strategy.projectorUpdate at their defaults;
 * - data.splitSeed when it equals training.seed (the split every earlier release made);
 * - training.evaluationsPerEpoch and training.reportedModel at every value: evaluation is inference only, and
 *   which evaluated weights are kept does not change the training.
 * - objectives.distillation's choice of loss at `kd`, and the settings of losses not selected
 *   (fingerprintedObjectives in objectives/index.ts);
 * - training.weightDecay at 0 and training.schedule when it is constant without warm-up (the recipe before them).
 */
export function specFingerprint(spec: TrainerSpec): string {
  const { teacher: withCache, student, data: withSplit, objectives, training: withEvaluation } = spec;
  const { outputCache: _cache, ...teacher } = withCache;
  const { splitSeed, ...otherData } = withSplit;
  const { evaluationsPerEpoch: _every, reportedModel: _kept, ...withRecipe } = withEvaluation;
  const training = withoutDefaultRecipe(withRecipe);
  const data = splitSeed === training.seed ? otherData : withSplit;
  const strategy = withoutDefaultObserve(spec.strategy);
  const text = JSON.stringify({
    teacher,
    student,
    data,
    objectives: fingerprintedObjectives(objectives),
    strategy,
    training,
  });
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

function withoutDefaultRecipe<T extends Pick<TrainerSpec["training"], "weightDecay" | "schedule">>(
  training: T,
) {
  const { weightDecay, schedule, ...rest } = training;
  return {
    ...rest,
    ...(weightDecay === 0 ? {} : { weightDecay }),
    ...(scheduleIsConstant(schedule) ? {} : { schedule }),
  };
}

function withoutDefaultObserve(withProjector: TrainerSpec["strategy"]) {
  // strategy.projectorUpdate at its default (`weighted`) is left out too: the update before the field existed.
  const { projectorUpdate, ...strategy } = withProjector;
  const kept = projectorUpdate === "weighted" ? strategy : withProjector;
  const { observe, ...famo } = strategy.famo;
  return observe === "same-batch" ? { ...kept, famo } : kept;
}
