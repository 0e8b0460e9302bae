// The loss functions, on tensors. No tf.tidy inside: they run under the engine's gradient tape and tidy.
import * as tf from "@tensorflow/tfjs";

/** Mean cross-entropy of logits [batch, classes] against integer labels [batch], optional label smoothing. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, labelSmoothing = 0): tf.Scalar {
  const classes = logits.shape[1];
  const logProbs = tf.logSoftmax(logits);
  let targets: tf.Tensor = tf.oneHot(tf.cast(labels, "int32"), classes).toFloat();
  if (labelSmoothing > 0) targets = targets.mul(1 - labelSmoothing).add(labelSmoothing / classes);
  return tf.neg(tf.mean(tf.sum(tf.mul(targets, logProbs), 1)));
}

/**
 * T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch. Both sides go through
 * log-softmax, so large logits do not overflow and p log p is exact at p -> 0.
 */
export function distillationLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D,
  temperature: number,
): tf.Scalar {
  const logP = tf.logSoftmax(tf.div(teacherLogits, temperature));
  const logQ = tf.logSoftmax(tf.div(studentLogits, temperature));
  const kl = tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)), 1);
  return tf.mul(tf.mean(kl), temperature * temperature);
}

/** Each row shifted to mean 0 and scaled to variance 1 (eps guards constant rows). */
export function standardizeRows(x: tf.Tensor2D, epsilon = 1e-5): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, 1, true);
  return tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, epsilon)));
}

export function meanSquaredError(a: tf.Tensor2D, b: tf.Tensor2D): tf.Scalar {
  return tf.mean(tf.squaredDifference(a, b));
}
