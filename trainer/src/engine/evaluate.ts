// Top-1 accuracy of a network on a split, batch by batch (memory bounded by one batch).
import * as tf from "@tensorflow/tfjs";
import type { EpochRecord, Network, Split } from "../contracts.ts";

/** Number of rows whose argmax(logits) equals the label. */
export function countCorrect(logits: tf.Tensor2D, labels: tf.Tensor1D): number {
  return tf.tidy(
    () =>
      tf
        .sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.cast(labels, "int32")), "int32"))
        .arraySync() as number,
  );
}

/** Logits and features of a network in inference mode. */
export function predict(network: Network, xs: tf.Tensor4D): [tf.Tensor2D, tf.Tensor2D] {
  const out = network.model.predict(xs) as tf.Tensor[];
  return [out[0] as tf.Tensor2D, out[1] as tf.Tensor2D];
}

export function evaluateAccuracy(network: Network, split: Split, batchSize: number): number {
  if (split.size === 0) return 0;
  let correct = 0;
  let seen = 0;
  for (const batch of split.batches({ batchSize, shuffle: false, seed: 0, epoch: 0, augment: false })) {
    correct += tf.tidy(() => countCorrect(predict(network, batch.xs)[0], batch.ys));
    seen += batch.ys.shape[0];
    batch.xs.dispose();
    batch.ys.dispose();
  }
  return seen === 0 ? 0 : correct / seen;
}

/** An epoch's running totals, as both stages keep them. */
export interface EpochTotals {
  seen: number;
  correct: number;
  /** Step time only. */
  seconds: number;
}

/** The accuracy and throughput figures of an epoch record, computed alike by the teacher and student stages. */
export function epochFigures(
  totals: EpochTotals,
  network: Network,
  validation: Split,
  batchSize: number,
): Pick<EpochRecord, "trainAccuracy" | "validationAccuracy" | "samplesPerSecond" | "seconds"> {
  return {
    trainAccuracy: totals.seen ? totals.correct / totals.seen : 0,
    validationAccuracy: evaluateAccuracy(network, validation, batchSize * 4),
    // Step time only (evaluation excluded), so resumed epochs report the same kind of number.
    samplesPerSecond: totals.seconds > 0 ? totals.seen / totals.seconds : 0,
    seconds: totals.seconds,
  };
}
