// Interfaces between the trainer's parts (data, models, objectives, strategies, engine). Each part lives in its
// own folder and depends on the others only through these types.
import type * as tf from "@tensorflow/tfjs";
import type { MokdAmortizedObserveMode, StrategyName } from "../../api/v1alpha1/index.ts";

// ---------------------------------------------------------------- data (trainer/src/data)

/** One mini-batch. The consumer disposes both tensors. */
export interface Batch {
  /** Normalised images, [batch, height, width, channels], float32. */
  xs: tf.Tensor4D;
  /** Integer class labels, [batch], int32. */
  ys: tf.Tensor1D;
  /** Row i is sample indices[i] of its split (0 <= index < split.size): per-sample caches look rows up by it. */
  indices: Int32Array;
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle order, seeded by (seed, epoch) so a resumed run sees the same order. */
  shuffle: boolean;
  seed: number;
  epoch: number;
  /** Apply the spec's augmentation (training split only). */
  augment: boolean;
  /** Skip this many batches first (resume mid-epoch). */
  skipBatches?: number;
  /** Only the samples at positions [start, start + count) of the unshuffled split (a teacher pass's shard). */
  range?: { start: number; count: number };
}

export interface Split {
  readonly size: number;
  /**
   * Whether batches({ augment: true }) transforms the images randomly (crop, flip): a sample's input then differs
   * from epoch to epoch. False: every epoch feeds the same inputs (only their order changes).
   */
  readonly augments: boolean;
  /** Lazily produces batches; memory stays bounded by one batch of tensors. */
  batches(options: BatchOptions): Iterable<Batch>;
  /** sha256 of the split's samples in order (labels and pixels): what a shared teacher pass was computed on. */
  digest?(): string;
}

export interface Dataset {
  readonly name: string;
  /** [height, width, channels] */
  readonly inputShape: [number, number, number];
  readonly numClasses: number;
  readonly train: Split;
  readonly validation: Split;
  readonly test: Split;
}

// ---------------------------------------------------------------- models (trainer/src/models)

/** Per-channel statistics inputs are normalised with, in [0, 1] pixel units: x = (pixel / 255 - mean) / std. */
export interface InputNormalization {
  kind: "standardize" | "unit";
  mean: number[];
  std: number[];
}

/** A classifier that also exposes the feature layer the projector reads. */
export interface Network {
  /** A LayersModel with two outputs: [logits [batch, classes], features [batch, featureDim]]. */
  readonly model: tf.LayersModel;
  readonly featureDim: number;
  readonly numClasses: number;
  /** The normalisation the network was trained with, when known (saved with the model by saveNetwork). */
  readonly inputNormalization?: InputNormalization;
  /** Parameters held outside tfjs (an ONNX or SavedModel teacher run inside a layer); else model.countParams(). */
  readonly parameters?: number;
}

// ---------------------------------------------------------------- objectives (trainer/src/objectives)

export type ObjectiveName = "task" | "distillation" | "feature";

export interface ObjectiveInputs {
  studentLogits: tf.Tensor2D;
  studentFeatures: tf.Tensor2D;
  /** Computed outside any gradient tape: the teacher is frozen. */
  teacherLogits: tf.Tensor2D;
  /** Absent when no enabled objective reads them (the teacher output cache then keeps logits only). */
  teacherFeatures?: tf.Tensor2D;
  labels: tf.Tensor1D;
  /** 1-based epoch of the step (DKD's warm-up); absent: 1. */
  epoch?: number;
  /** Fraction of the stage's steps done after this step, (step + 1) / total steps (DKD's warm-up); absent: 1. */
  progress?: number;
  /** 0-based optimiser step of the stage (DKD's warm-up in steps); absent: past any warm-up. */
  step?: number;
}

export interface Objective {
  readonly name: ObjectiveName;
  /** A scalar loss, strictly positive in practice (strategies divide by it). */
  loss(inputs: ObjectiveInputs): tf.Scalar;
}

// ---------------------------------------------------------------- strategies (trainer/src/strategies)

/**
 * What a strategy decides for one step: the update direction is sum_i coefficients[i] * grad(L_i) over the
 * raw objective gradients (every strategy we ship — MoKD on log-loss gradients, PCGrad, MGDA, CAGrad, IMTL — is
 * such a linear combination, with coefficients computable from the Gram matrix of the gradients). `weights` are
 * the normalised weights reported in telemetry (sum to 1).
 */
export interface Combination {
  coefficients: number[];
  weights: number[];
}

export interface StepContext {
  /** Global step, from 0. */
  step: number;
  /** 1-based epoch of the step (objectives with a warm-up read it); absent: 1. */
  epoch?: number;
  /** (step + 1) / total steps of the stage (objectives with a warm-up read it); absent: 1. */
  progress?: number;
  /** Seeded uniform [0, 1) generator (PCGrad's random order). */
  random: () => number;
}

/** Needs one gradient per objective: combines them from their Gram matrix. */
export interface GradientStrategy {
  readonly kind: "gradient";
  readonly name: StrategyName;
  /** gram[i][j] = <grad L_i, grad L_j> over all trainable student (and projector) parameters. */
  combine(gram: number[][], losses: number[], context: StepContext): Combination;
  state(): unknown;
  loadState(state: unknown): void;
}

/** Needs one backward pass of a weighted loss sum (sum, FAMO). */
export interface LossStrategy {
  readonly kind: "loss";
  readonly name: StrategyName;
  /** Coefficients of the losses in the one loss that is differentiated. */
  combine(losses: number[], context: StepContext): Combination;
  /**
   * Which losses the strategy learns from after a step (FAMO updates its logits from the drop in log-loss);
   * absent: none.
   * - "same-batch": after the update the engine computes the losses on the same batch again (one extra forward
   *   pass) and calls observe(lossesBefore, lossesAfter);
   * - "next-batch": no extra forward; before each combine the engine calls observePreStep with the step's
   *   pre-step losses, and the strategy observes (previous step's pre-step losses, these).
   */
  readonly observes?: MokdAmortizedObserveMode;
  observe?(lossesBefore: number[], lossesAfter: number[]): void;
  observePreStep?(losses: number[]): void;
  state(): unknown;
  loadState(state: unknown): void;
}

export type WeightingStrategy = GradientStrategy | LossStrategy;

// ---------------------------------------------------------------- telemetry (trainer/src/telemetry)

export interface StepRecord {
  type: "step";
  stage: "teacher" | "student";
  epoch: number;
  step: number;
  losses: Record<string, number>;
  weights: Record<string, number>;
  /** Pairwise gradient cosine, keyed "task:distillation"; absent on steps where gradients were not measured. */
  cosines?: Record<string, number>;
  normRatios?: Record<string, number>;
  conflict?: boolean;
  /**
   * Share of the applied update each objective contributed, |c_i g_i| / sum_j |c_j g_j| (sums to 1), on measured
   * steps. Not `weights`: mokd and mokd-amortized report weights on the log-loss gradients g_i / L_i.
   */
  stepShares?: Record<string, number>;
  /** The step's losses or gradients were not finite: no update was applied (counted, see finiteStep). */
  nonFinite?: true;
  seconds: number;
}

/**
 * A validation evaluation: at every epoch end and, with training.evaluationsPerEpoch > 1, between. The best one
 * picks the reported model.
 */
export interface EvaluationRecord {
  type: "evaluation";
  stage: "teacher" | "student";
  /** Epochs of training behind the evaluated weights; fractional between epoch ends. */
  epoch: number;
  /** Optimiser steps done. */
  step: number;
  validationAccuracy: number;
}

export interface EpochRecord {
  type: "epoch";
  stage: "teacher" | "student";
  epoch: number;
  epochs: number;
  step: number;
  trainAccuracy: number;
  validationAccuracy: number;
  samplesPerSecond: number;
  conflictRate: number;
  losses: Record<string, number>;
  seconds: number;
}
