// The objectives whose gradients the weighting strategy combines: task, distillation, feature (in that order).
import type * as tf from "@tensorflow/tfjs";
import type { ObjectivesSpec } from "../../../api/v1alpha1/index.ts";
import type { Objective, ObjectiveInputs } from "../contracts.ts";
import { deriveSeed } from "../data/random.ts";
import { dkdLoss } from "./dkd.ts";
import { distLoss, distOptions } from "./dist.ts";
import { crossEntropy, distillationLoss, meanSquaredError, standardizeRows } from "./losses.ts";
import { lskdLoss } from "./lskd.ts";
import { Projector } from "./projector.ts";

export { crossEntropy, distillationLoss, meanSquaredError, standardizeRows } from "./losses.ts";
export { Projector, orthonormalMatrix } from "./projector.ts";
export { DKD_DEFAULTS, dkdLoss, dkdParts, dkdWarmup } from "./dkd.ts";
export { DIST_DEFAULTS, DIST_RECIPES, distLoss, distOptions, distParts, pearsonRows } from "./dist.ts";
export { LSKD_DEFAULTS, lskdLoss, zScoreRows } from "./lskd.ts";

export interface ObjectiveDims {
  studentFeatureDim: number;
  teacherFeatureDim: number;
  numClasses: number;
}

export interface BuiltObjectives {
  /** Enabled objectives, in the order task, distillation, feature. */
  objectives: Objective[];
  /** Trainable variables the objectives own (the projector's): the engine trains them with the student. */
  variables: tf.Variable[];
  /** Present when the feature objective is enabled; dispose it with the run. */
  projector?: Projector;
}

export function taskObjective(labelSmoothing: number): Objective {
  return {
    name: "task",
    loss: (i: ObjectiveInputs) => crossEntropy(i.studentLogits, i.labels, labelSmoothing),
  };
}

/** The distillation objective with the loss the spec selects, at that loss's settings. */
export function distillationObjective(spec: ObjectivesSpec["distillation"]): Objective {
  const loss = distillationLossFunction(spec);
  return { name: "distillation", loss };
}

function distillationLossFunction(spec: ObjectivesSpec["distillation"]): (i: ObjectiveInputs) => tf.Scalar {
  switch (spec.loss) {
    case "kd":
      return (i) => distillationLoss(i.studentLogits, i.teacherLogits, spec.temperature);
    case "lskd":
      return (i) => lskdLoss(i.studentLogits, i.teacherLogits, spec.lskd.temperature);
    case "dkd":
      return (i) =>
        dkdLoss(
          i.studentLogits,
          i.teacherLogits,
          i.labels,
          { epoch: i.epoch ?? 1, progress: i.progress ?? 1, step: i.step },
          spec.dkd,
        );
    case "dist": {
      const dist = distOptions(spec.dist);
      return (i) => distLoss(i.studentLogits, i.teacherLogits, dist);
    }
  }
}

/**
 * The objectives as the spec fingerprint (engine/fingerprint.ts) should see them: the settings of losses other
 * than the selected one are left out, and with `loss: kd` so is `loss`, so a spec written before the choice of
 * loss existed keeps its fingerprint (and its checkpoints).
 */
export function fingerprintedObjectives(spec: ObjectivesSpec): unknown {
  const { loss, lskd, dkd, dist, ...kd } = spec.distillation;
  const selected = { lskd, dkd, dist } as Record<string, unknown>;
  const distillation = loss === "kd" ? kd : { ...kd, loss, [loss]: selected[loss] };
  return { ...spec, distillation };
}

/**
 * MSE between projected student features and (optionally per-sample standardised) teacher features, plus
 * orthogonalityWeight * ||W W^T - I||_F^2 of the projector.
 */
export function featureObjective(
  projector: Projector,
  options: { normalizeTeacher: boolean; orthogonalityWeight: number },
): Objective {
  return {
    name: "feature",
    loss: (i) => {
      if (!i.teacherFeatures) throw new Error("feature objective: no teacher features in the step's inputs");
      const target = options.normalizeTeacher ? standardizeRows(i.teacherFeatures) : i.teacherFeatures;
      const mse = meanSquaredError(projector.project(i.studentFeatures), target);
      return options.orthogonalityWeight > 0
        ? mse.add(projector.orthogonalityPenalty().mul(options.orthogonalityWeight))
        : mse;
    },
  };
}

export function buildObjectives(spec: ObjectivesSpec, dims: ObjectiveDims, seed: number): BuiltObjectives {
  const objectives: Objective[] = [];
  if (spec.task.enabled) objectives.push(taskObjective(spec.task.labelSmoothing));
  if (spec.distillation.enabled) objectives.push(distillationObjective(spec.distillation));
  if (!spec.feature.enabled) return { objectives, variables: [] };
  const projector = new Projector(dims.studentFeatureDim, dims.teacherFeatureDim, deriveSeed(seed, 0x9e0));
  objectives.push(featureObjective(projector, spec.feature));
  return { objectives, variables: projector.variables, projector };
}
