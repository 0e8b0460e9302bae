// The frozen teacher's outputs for the student stage: run per batch (LiveTeacher) or looked up per sample
// (TeacherOutputCache). The teacher is frozen and predicts in inference mode, so without augmentation its
// outputs for a training sample are the same in every epoch: computing them once saves (epochs - 1) / epochs of
// the teacher's forwards (offline KD, as torchdistill's cached teacher outputs).
//
// The cache is filled up front, in one inference pass over the training split, rather than lazily during the
// first epoch: it is then complete before the first step (no per-row "filled" state, no half-filled cache to
// reason about when a run resumes mid-epoch; a resumed run rebuilds it the same way). The pass costs about what
// the first epoch's teacher forwards would, which lazy filling pays too.
// Rows live in plain Float32Arrays (JS heap, outside the backend's memory: no tensor to leak or dispose); each
// step gathers its batch's rows into fresh tensors.
import * as tf from "@tensorflow/tfjs";
import { TEACHER_OUTPUT_CACHE_BUDGET_MIB, type TeacherOutputCacheMode } from "../../../api/v1alpha1/index.ts";
import type { Batch, Network, Split } from "../contracts.ts";
import { predict } from "./evaluate.ts";
import { yieldToEventLoop } from "./stop.ts";

/** The teacher's outputs for one batch; the caller disposes them. (A type alias: tf.tidy and tf.dispose take it.) */
export type TeacherOutputs = {
  teacherLogits: tf.Tensor2D;
  /** Only when an enabled objective reads them. */
  teacherFeatures?: tf.Tensor2D;
};

/** Where a student step gets the frozen teacher's outputs for its batch. */
export interface TeacherOutputSource {
  outputs(batch: Batch): TeacherOutputs;
}

/** Runs the teacher on every batch (inference mode). */
export class LiveTeacher implements TeacherOutputSource {
  private readonly teacher: Network;

  constructor(teacher: Network) {
    this.teacher = teacher;
  }

  outputs(batch: Batch): TeacherOutputs {
    const [teacherLogits, teacherFeatures] = predict(this.teacher, batch.xs);
    return { teacherLogits, teacherFeatures };
  }
}

/** The teacher's logits (and features) of every sample of a split, filled by one inference pass. */
export class TeacherOutputCache implements TeacherOutputSource {
  readonly size: number;
  readonly numClasses: number;
  /** 0 when features are not cached. */
  readonly featureDim: number;
  private readonly logits: Float32Array;
  private readonly features: Float32Array | undefined;

  private constructor(
    size: number,
    numClasses: number,
    featureDim: number,
    rows?: { logits: Float32Array; features?: Float32Array },
  ) {
    this.size = size;
    this.numClasses = numClasses;
    this.featureDim = featureDim;
    this.logits = rows?.logits ?? new Float32Array(size * numClasses);
    this.features = featureDim > 0 ? (rows?.features ?? new Float32Array(size * featureDim)) : undefined;
    if (this.logits.length !== size * numClasses || (this.features?.length ?? 0) !== size * featureDim)
      throw new RangeError(
        `teacher output cache: rows do not match ${size} x (${numClasses} + ${featureDim})`,
      );
  }

  /** A cache of outputs computed elsewhere (a study's shared teacher pass), row i = sample i of the split. */
  static fromRows(
    numClasses: number,
    featureDim: number,
    logits: Float32Array,
    features?: Float32Array,
  ): TeacherOutputCache {
    const size = logits.length / numClasses;
    return new TeacherOutputCache(size, numClasses, featureDim, {
      logits,
      ...(features ? { features } : {}),
    });
  }

  /** The rows themselves (logits [size, numClasses], features [size, featureDim] or undefined): not copies. */
  rows(): { logits: Float32Array; features?: Float32Array } {
    return { logits: this.logits, ...(this.features ? { features: this.features } : {}) };
  }

  /**
   * Runs the teacher over `split` in order (no augmentation), `batchSize` samples per forward. Yields to the event
   * loop between forwards, so a large fill keeps /metrics answering and sees a stop request: then it gives up and
   * returns undefined (the caller checkpoints and exits, as at a step boundary). With `range`, only those samples
   * (row r = sample range.start + r): a shard of a study's teacher pass.
   */
  static async fill(
    teacher: Network,
    split: Split,
    withFeatures: boolean,
    batchSize: number,
    stop?: { readonly requested: boolean },
    range?: { start: number; count: number },
  ): Promise<TeacherOutputCache | undefined> {
    const cache = new TeacherOutputCache(
      range?.count ?? split.size,
      teacher.numClasses,
      withFeatures ? teacher.featureDim : 0,
    );
    const offset = range?.start ?? 0;
    const options = {
      batchSize,
      shuffle: false,
      seed: 0,
      epoch: 0,
      augment: false,
      ...(range ? { range } : {}),
    };
    for (const batch of split.batches(options)) {
      tf.tidy(() => {
        const [logits, features] = predict(teacher, batch.xs);
        scatter(batch.indices, logits, cache.logits, offset);
        if (cache.features) scatter(batch.indices, features, cache.features, offset);
      });
      tf.dispose([batch.xs, batch.ys]);
      await yieldToEventLoop();
      if (stop?.requested) return undefined;
    }
    return cache;
  }

  get bytes(): number {
    return this.logits.byteLength + (this.features?.byteLength ?? 0);
  }

  outputs(batch: Batch): TeacherOutputs {
    const n = batch.indices.length;
    const teacherLogits = tf.tensor2d(this.gather(batch.indices, this.logits, this.numClasses), [
      n,
      this.numClasses,
    ]);
    if (!this.features) return { teacherLogits };
    const features = this.gather(batch.indices, this.features, this.featureDim);
    return { teacherLogits, teacherFeatures: tf.tensor2d(features, [n, this.featureDim]) };
  }

  private gather(indices: Int32Array, from: Float32Array, width: number): Float32Array {
    const out = new Float32Array(indices.length * width);
    indices.forEach((index, row) => {
      if (index < 0 || index >= this.size) throw new RangeError(`teacher output cache: no sample ${index}`);
      out.set(from.subarray(index * width, (index + 1) * width), row * width);
    });
    return out;
  }
}

/** Copies row r of `rows` ([n, width], float32) to row indices[r] - offset of `into`. */
function scatter(indices: Int32Array, rows: tf.Tensor2D, into: Float32Array, offset = 0): void {
  const width = rows.shape[1];
  const data = rows.dataSync() as Float32Array;
  indices.forEach((index, row) =>
    into.set(data.subarray(row * width, (row + 1) * width), (index - offset) * width),
  );
}

/** What `auto` decided, and why (the trainer logs it). */
export interface CachePlan {
  use: boolean;
  withFeatures: boolean;
  bytes: number;
  reason: string;
}

export interface CachePlanInputs {
  mode: TeacherOutputCacheMode;
  /** Training samples. */
  samples: number;
  numClasses: number;
  teacherFeatureDim: number;
  /** Whether an enabled objective reads the teacher's features. */
  needsFeatures: boolean;
  /** Whether the training batches are augmented (inputs differ per epoch). */
  augmented: boolean;
  budgetBytes?: number;
}

export const DEFAULT_CACHE_BUDGET_BYTES = TEACHER_OUTPUT_CACHE_BUDGET_MIB * 1024 * 1024;

/** Decides whether the student stage caches the teacher's outputs: samples x (classes + features) x 4 bytes. */
export function planTeacherCache(inputs: CachePlanInputs): CachePlan {
  const width = inputs.numClasses + (inputs.needsFeatures ? inputs.teacherFeatureDim : 0);
  const bytes = inputs.samples * width * Float32Array.BYTES_PER_ELEMENT;
  const budget = inputs.budgetBytes ?? DEFAULT_CACHE_BUDGET_BYTES;
  const plan = (use: boolean, reason: string) => ({ use, withFeatures: inputs.needsFeatures, bytes, reason });
  if (inputs.mode === "off") return plan(false, "teacher.outputCache is off");
  if (inputs.augmented) return plan(false, "training augmentation is on (inputs differ per epoch)");
  if (bytes > budget) return plan(false, `${mib(bytes)} would exceed the ${mib(budget)} budget`);
  const what = inputs.needsFeatures ? "logits and features" : "logits";
  return plan(true, `${what} of ${inputs.samples} samples, ${mib(bytes)}`);
}

export const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
