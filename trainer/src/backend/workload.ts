// How much arithmetic one training step of a run does, for `auto`'s choice between the native CPU backend and
// wasm. tfjs-node pays a fixed cost per op (an N-API call and tensor bookkeeping); wasm pays per flop on one
// thread. Below a few million multiply-adds per batch the fixed cost dominates and wasm is faster; above, native
// TensorFlow wins (docs/benchmarks.md "Backends: auto's rule" has the measurements behind the threshold).
import type { ModelArchitecture } from "../../../api/v1alpha1/index.ts";

type Architecture = Pick<ModelArchitecture, "architecture" | "width" | "depth" | "hiddenUnits">;

/**
 * Forward multiply-adds per sample of a built-in model (trainer/src/models/build.ts): cnn = depth x
 * [conv3x3 same (width * 2^i) + maxpool 2 same], flatten, dense(hiddenUnits), dense(classes); mlp = flatten,
 * depth x dense(width), dense(hiddenUnits), dense(classes).
 */
export function forwardMacsPerSample(
  arch: Architecture,
  inputShape: readonly [number, number, number],
  numClasses: number,
): number {
  let [height, width, channels] = inputShape;
  let macs = 0;
  let features: number;
  if (arch.architecture === "cnn") {
    for (let i = 0; i < arch.depth; i++) {
      const filters = arch.width * 2 ** i;
      macs += height * width * 9 * channels * filters;
      [height, width, channels] = [Math.ceil(height / 2), Math.ceil(width / 2), filters];
    }
    features = height * width * channels;
  } else {
    features = height * width * channels;
    for (let i = 0; i < arch.depth; i++) {
      macs += features * arch.width;
      features = arch.width;
    }
  }
  return macs + features * arch.hiddenUnits + arch.hiddenUnits * numClasses;
}

export interface Workload {
  /** Forward multiply-adds of one batch of the largest model the run trains. */
  forwardMacsPerBatch: number;
  /** For the log: which model that is. */
  model: string;
}

/** The run's workload: the largest of the student and (when trained here, not loaded) the teacher. */
export function runWorkload(
  spec: {
    teacher: Architecture & { model?: string };
    student: Architecture;
    training: { batchSize: number };
  },
  inputShape: readonly [number, number, number],
  numClasses: number,
): Workload {
  const models: [string, Architecture][] = [["student", spec.student]];
  if (!spec.teacher.model) models.push(["teacher", spec.teacher]);
  const sized = models.map(([name, arch]) => ({
    name,
    macs: forwardMacsPerSample(arch, inputShape, numClasses),
  }));
  const largest = sized.reduce((a, b) => (b.macs > a.macs ? b : a));
  return { forwardMacsPerBatch: largest.macs * spec.training.batchSize, model: largest.name };
}

/**
 * Below this many forward multiply-adds per batch, `auto` prefers wasm to the native CPU backend (never to a
 * GPU). Measured crossover on 2 cores (docs/benchmarks.md): wasm ~2x faster at 3.4 M (the example's student),
 * even around 8-50 M, native 1.5-2x faster from ~70 M (the example's teacher) up.
 */
export const WASM_BELOW_FORWARD_MACS_PER_BATCH = 20e6;
