// TEMPORARY stand-in for trainer/src/objectives (data/models helper): task CE and KD only. Delete once it lands.
import * as tf from "@tensorflow/tfjs";
import type { ObjectivesSpec } from "../../../api/v1alpha1/index.ts";
import type { Objective, ObjectiveInputs, ObjectiveName } from "../contracts.ts";

export function buildObjectives(
  spec: ObjectivesSpec,
  _dims: { studentFeatureDim: number; teacherFeatureDim: number; numClasses: number },
  _seed: number,
): { objectives: Objective[]; variables: tf.Variable[] } {
  const objectives: Objective[] = [];
  if (spec.task.enabled) {
    objectives.push({
      name: "task" as ObjectiveName,
      loss: (i: ObjectiveInputs) =>
        tf.losses.softmaxCrossEntropy(
          tf.oneHot(tf.cast(i.labels, "int32"), i.studentLogits.shape[1]),
          i.studentLogits,
        ) as tf.Scalar,
    });
  }
  if (spec.distillation.enabled) {
    const t = spec.distillation.temperature;
    objectives.push({
      name: "distillation",
      loss: (i: ObjectiveInputs) => {
        const p = tf.softmax(tf.div(i.teacherLogits, t));
        const logq = tf.logSoftmax(tf.div(i.studentLogits, t));
        const logp = tf.log(tf.add(p, 1e-8));
        return tf.mul(tf.mean(tf.sum(tf.mul(p, tf.sub(logp, logq)), 1)), t * t) as tf.Scalar;
      },
    });
  }
  return { objectives, variables: [] };
}
