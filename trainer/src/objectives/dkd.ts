// Decoupled KD (Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022): KD split into the target-class part
// (TCKD: KL of the binary target / non-target distributions) and the non-target part (NCKD: KL among the
// non-target classes, the target left out), weighted alpha TCKD + beta NCKD, both T^2-scaled and averaged over
// the batch, times a linear warm-up min(epoch / warmup, 1) with the 1-based epoch. Defaults are mdistiller's
// (github.com/megvii-research/mdistiller, mdistiller/distillers/DKD.py, engine/cfg.py): alpha 1, beta 8, T 4,
// warm-up 20 epochs. As there, the target is masked out of NCKD by subtracting 1000 from its T-scaled logit.
// The binary probabilities are taken in log space (log p_target = z_t - logsumexp z, log p_other = logsumexp of
// the others - logsumexp z) instead of the reference's log of summed softmax probabilities: the same values,
// without log(0) when a probability underflows.
import * as tf from "@tensorflow/tfjs";

export const DKD_DEFAULTS = { alpha: 1, beta: 8, temperature: 4, warmupEpochs: 20 } as const;
const MASK_OFFSET = 1000;

export interface DkdOptions {
  alpha: number;
  beta: number;
  temperature: number;
  /** Epochs of the linear warm-up of the whole loss; 0: none. */
  warmupEpochs: number;
  /** When set, the warm-up is this fraction of the stage's steps instead (it then scales to short runs). */
  warmupFraction?: number;
  /** When set, the warm-up is this many optimiser steps instead (the spec allows it or warmupFraction). */
  warmupSteps?: number;
}

export type DkdWarmupOptions = Pick<DkdOptions, "warmupEpochs" | "warmupFraction" | "warmupSteps">;

/**
 * Where a step is: its 1-based epoch, the fraction of the stage's steps done after it, and its 0-based step in
 * the stage (absent: the warm-up in steps is over).
 */
export interface TrainingPosition {
  epoch: number;
  progress: number;
  step?: number;
}

/**
 * The warm-up scale, per step: min((step + 1) / warmupSteps, 1) when warmupSteps is set, min(progress /
 * warmupFraction, 1) when warmupFraction is, else min(epoch / warmupEpochs, 1) for the 1-based epoch
 * (mdistiller's `min(kwargs["epoch"] / self.warmup, 1.0)`). 0 disables whichever is in force.
 */
export function dkdWarmup(at: TrainingPosition | number, options: DkdWarmupOptions): number {
  const { epoch, progress, step } = typeof at === "number" ? { epoch: at, progress: 1, step: undefined } : at;
  const { warmupEpochs, warmupFraction, warmupSteps } = options;
  if (warmupSteps !== undefined) {
    return warmupSteps > 0 && step !== undefined ? Math.min((step + 1) / warmupSteps, 1) : 1;
  }
  if (warmupFraction !== undefined) return warmupFraction > 0 ? Math.min(progress / warmupFraction, 1) : 1;
  return warmupEpochs > 0 ? Math.min(epoch / warmupEpochs, 1) : 1;
}

/** The TCKD and NCKD terms (each T^2-scaled, batch-averaged), for tests and telemetry. */
export function dkdParts(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D,
  labels: tf.Tensor1D,
  temperature: number,
): { tckd: tf.Scalar; nckd: tf.Scalar } {
  const batch = studentLogits.shape[0];
  const mask = tf.oneHot(tf.cast(labels, "int32"), studentLogits.shape[1]).toFloat();
  const scale = (temperature * temperature) / batch;
  const binary = (logits: tf.Tensor2D) => {
    const z = tf.div(logits, temperature);
    const all = tf.logSumExp(z, 1, true);
    const target = tf.sub(tf.sum(tf.mul(z, mask), 1, true), all);
    const other = tf.sub(tf.logSumExp(tf.sub(z, tf.mul(mask, MASK_OFFSET)), 1, true), all);
    return tf.concat([target, other], 1);
  };
  const nonTarget = (logits: tf.Tensor2D) =>
    tf.logSoftmax(tf.sub(tf.div(logits, temperature), tf.mul(mask, MASK_OFFSET)));
  const kl = (logP: tf.Tensor, logQ: tf.Tensor) =>
    tf.mul(tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ))), scale);
  return {
    tckd: kl(binary(teacherLogits), binary(studentLogits)) as tf.Scalar,
    nckd: kl(nonTarget(teacherLogits), nonTarget(studentLogits)) as tf.Scalar,
  };
}

export function dkdLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D,
  labels: tf.Tensor1D,
  at: TrainingPosition | number,
  options: DkdOptions = DKD_DEFAULTS,
): tf.Scalar {
  const { tckd, nckd } = dkdParts(studentLogits, teacherLogits, labels, options.temperature);
  const loss = tf.add(tf.mul(tckd, options.alpha), tf.mul(nckd, options.beta));
  return tf.mul(loss, dkdWarmup(at, options));
}
