// The parity check every ONNX export passes before it is published: ONNX Runtime (the public async API, as a
// deployment would call it) runs the exported model on a split, and its logits must match the tfjs model's
// within a stated tolerance, with the same top-1 accuracy.
import * as tf from "@tensorflow/tfjs";
import { InferenceSession, Tensor } from "onnxruntime-node";
import { SESSION_OPTIONS } from "./runtime.ts";
import type { Network, Split } from "../../contracts.ts";
import { ONNX_INPUT, ONNX_OUTPUT } from "./export.ts";

/** |onnx - tfjs| <= ATOL + RTOL * |tfjs| per logit: float32 with another summation order. */
export const PARITY_ATOL = 1e-4;
export const PARITY_RTOL = 1e-3;

export interface ParityReport {
  samples: number;
  /** Largest |onnx - tfjs| over all logits. */
  maxAbsDiff: number;
  /** Logits outside ATOL + RTOL * |tfjs|. */
  outsideTolerance: number;
  tolerance: { atol: number; rtol: number };
  tfjsAccuracy: number;
  onnxAccuracy: number;
  /** Fraction of samples whose argmax agrees. */
  top1Agreement: number;
  passed: boolean;
}

const argmax = (row: ArrayLike<number>, at: number, width: number) => {
  let best = 0;
  for (let k = 1; k < width; k++) if (row[at + k]! > row[at + best]!) best = k;
  return best;
};

/** Runs `model` (serialized ONNX) and `network` on every sample of `split` and compares their logits. */
export async function checkParity(
  model: Uint8Array,
  network: Network,
  split: Split,
  batchSize = 256,
): Promise<ParityReport> {
  const session = await InferenceSession.create(model, SESSION_OPTIONS);
  const totals = { samples: 0, maxAbsDiff: 0, outside: 0, tfjsCorrect: 0, onnxCorrect: 0, agree: 0 };
  try {
    for (const batch of split.batches({ batchSize, shuffle: false, seed: 0, epoch: 0, augment: false })) {
      const expected = tf.tidy(() =>
        (network.model.predict(batch.xs) as tf.Tensor[])[0]!.dataSync(),
      ) as Float32Array;
      const labels = batch.ys.dataSync();
      const input = new Tensor("float32", batch.xs.dataSync() as Float32Array, batch.xs.shape);
      const out = await session.run({ [ONNX_INPUT]: input });
      const actual = out[ONNX_OUTPUT]!.data as Float32Array;
      const n = batch.ys.shape[0];
      const width = expected.length / n;
      for (let i = 0; i < expected.length; i++) {
        const diff = Math.abs(actual[i]! - expected[i]!);
        totals.maxAbsDiff = Math.max(totals.maxAbsDiff, Number.isNaN(diff) ? Infinity : diff);
        if (!(diff <= PARITY_ATOL + PARITY_RTOL * Math.abs(expected[i]!))) totals.outside++;
      }
      for (let r = 0; r < n; r++) {
        const [t, o] = [argmax(expected, r * width, width), argmax(actual, r * width, width)];
        totals.tfjsCorrect += Number(t === labels[r]);
        totals.onnxCorrect += Number(o === labels[r]);
        totals.agree += Number(t === o);
      }
      totals.samples += n;
      tf.dispose([batch.xs, batch.ys]);
    }
  } finally {
    await session.release();
  }
  const n = Math.max(totals.samples, 1);
  return {
    samples: totals.samples,
    maxAbsDiff: totals.maxAbsDiff,
    outsideTolerance: totals.outside,
    tolerance: { atol: PARITY_ATOL, rtol: PARITY_RTOL },
    tfjsAccuracy: totals.tfjsCorrect / n,
    onnxAccuracy: totals.onnxCorrect / n,
    top1Agreement: totals.agree / n,
    passed: totals.samples > 0 && totals.outside === 0 && totals.tfjsCorrect === totals.onnxCorrect,
  };
}
