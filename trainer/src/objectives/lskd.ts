// Logit standardization KD (Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024): both
// sides' logits are z-scored per sample before the usual T^2 KL at a base temperature, so the student matches the
// teacher's logit relations, not their range. Follows the authors' code (github.com/sunshangquan/
// logit-standardization-KD, mdistiller/distillers/KD.py `normalize` and `kd_loss`): z = (x - mean) / (1e-7 + std)
// with the unbiased std (torch.std), base temperature 2 (their `--base-temp`).
import * as tf from "@tensorflow/tfjs";
import { distillationLoss } from "./losses.ts";

export const LSKD_DEFAULTS = { temperature: 2 } as const;

/** Each row z-scored: (x - mean) / (eps + std), std with Bessel's correction as torch.std. */
export function zScoreRows(x: tf.Tensor2D, epsilon = 1e-7): tf.Tensor2D {
  const n = x.shape[1];
  const { mean, variance } = tf.moments(x, 1, true);
  const std = tf.sqrt(tf.mul(variance, n / Math.max(n - 1, 1)));
  return tf.div(tf.sub(x, mean), tf.add(std, epsilon));
}

export function lskdLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D,
  temperature: number = LSKD_DEFAULTS.temperature,
): tf.Scalar {
  return distillationLoss(zScoreRows(studentLogits), zScoreRows(teacherLogits), temperature);
}
