// Prometheus metric names shared by the trainer, the operator, the Grafana dashboard and the alert rules, so
// the four cannot drift apart. Units follow Prometheus conventions (seconds, ratios in [0, 1], _total counters).

/** Labels on every trainer metric: which DistillationJob (from config/env) and which objective or stage. */
export const TRAINER_LABELS = { job: "mokd_job", namespace: "mokd_namespace" } as const;

/** The other labels of trainer metrics. */
export const TrainerLabel = {
  objective: "objective",
  pair: "pair",
  stage: "stage",
  split: "split",
  /** tfjs | onnxruntime: where a compression-report figure was measured. */
  runtime: "runtime",
  /** tfjs | onnx | savedmodel: a model's format on disk. */
  format: "format",
  /** 0.5 | 0.95 */
  quantile: "quantile",
} as const;

export const TrainerMetric = {
  /** gauge{objective}: latest loss of each objective (task, distillation, feature). */
  loss: "mokd_trainer_loss",
  /**
   * gauge{objective}: latest weight the strategy reports for each objective (sums to 1). For mokd and
   * mokd-amortized these are weights on the log-loss gradients g_i / L_i, not shares of the step: see stepShare.
   */
  weight: "mokd_trainer_objective_weight",
  /**
   * gauge{objective}: share of the latest measured step's update each objective contributed,
   * |c_i g_i| / sum_j |c_j g_j| over the raw gradients g_i (sums to 1): what the step actually followed.
   */
  stepShare: "mokd_trainer_objective_step_share",
  /** gauge{pair}: cosine similarity of two objectives' gradients at the latest step. */
  gradientCosine: "mokd_trainer_gradient_cosine",
  /** gauge{pair}: ratio of the larger to the smaller gradient norm (dominance) at the latest step. */
  gradientNormRatio: "mokd_trainer_gradient_norm_ratio",
  /** counter: student steps skipped (no update) because their losses or gradients were not finite. */
  nonFiniteSteps: "mokd_trainer_nonfinite_steps_total",
  /** counter{operation}: retries of object-storage requests after a transient error (timeout, 5xx, throttling). */
  storageRetries: "mokd_trainer_storage_retries_total",
  /** counter{direction}: bytes downloaded from and uploaded to object storage (download | upload). */
  storageBytes: "mokd_trainer_storage_bytes_total",
  /** counter: steps whose objective gradients conflicted (some pairwise cosine < 0). */
  conflictSteps: "mokd_trainer_conflict_steps_total",
  /**
   * counter: student steps whose objective gradients were measured (every step of a gradient strategy, every
   * measureEvery-th of a single-backward one): the denominator of the conflict rate.
   */
  measuredSteps: "mokd_trainer_measured_steps_total",
  /** counter{stage}: optimiser steps. */
  steps: "mokd_trainer_steps_total",
  /** counter{stage}: training samples processed. */
  samples: "mokd_trainer_samples_total",
  /** gauge{stage, split}: top-1 accuracy of the last epoch (split = train | validation | test). */
  accuracy: "mokd_trainer_accuracy_ratio",
  /** gauge{stage}: training throughput over the last epoch. */
  samplesPerSecond: "mokd_trainer_samples_per_second",
  /** gauge{stage}: current epoch (1-based). */
  epoch: "mokd_trainer_epoch",
  /** gauge{stage}: epochs of the stage. */
  epochsTotal: "mokd_trainer_epochs_total_planned",
  /** histogram{stage}: wall time of one optimiser step. */
  stepDuration: "mokd_trainer_step_duration_seconds",
  /** gauge: unix time of the last completed step (for stall alerts). */
  lastStepTime: "mokd_trainer_last_step_timestamp_seconds",
  /** gauge{backend, tensorflow_version, device}: 1, labelled with the tfjs backend the run trains on. */
  backendInfo: "mokd_trainer_backend_info",
  // The compression report (teacher vs student, measured after training; stage = teacher | student).
  /** gauge{stage}: parameters of the model. */
  modelParameters: "mokd_trainer_model_parameters",
  /** gauge{stage, format}: bytes on disk of the model in each format it is loaded or published in. */
  modelSizeBytes: "mokd_trainer_model_size_bytes",
  /** gauge{stage}: forward multiply-adds per sample (Conv, Gemm, MatMul). */
  modelForwardMacs: "mokd_trainer_model_forward_macs",
  /** gauge{stage, runtime, quantile}: batch-1 inference latency. */
  inferenceLatency: "mokd_trainer_inference_latency_seconds",
  /** gauge{stage, runtime}: inference throughput at output.compression.throughputBatch. */
  inferenceThroughput: "mokd_trainer_inference_samples_per_second",
  /** gauge: 1 when the ONNX student passed its parity check and was written, 0 when it was requested and not. */
  onnxExportVerified: "mokd_trainer_onnx_export_verified",
} as const;

export const OperatorMetric = {
  /** counter{result=success|error|requeue}: reconciles. */
  reconcileTotal: "mokd_operator_reconcile_total",
  /** counter: reconciles that returned an error. */
  reconcileErrors: "mokd_operator_reconcile_errors_total",
  /** histogram: reconcile duration. */
  reconcileDuration: "mokd_operator_reconcile_duration_seconds",
  /** gauge: keys waiting in the work queue. */
  queueDepth: "mokd_operator_workqueue_depth",
  /** histogram: time a key waits in the queue before it is processed. */
  queueLatency: "mokd_operator_workqueue_queue_duration_seconds",
  /** gauge{namespace, phase}: DistillationJobs by phase, computed at scrape time from the informer cache. */
  jobsByPhase: "mokd_operator_jobs",
  /** histogram{phase=Succeeded|Failed}: time from start to completion of finished jobs. */
  jobDuration: "mokd_operator_job_duration_seconds",
  /** gauge: 1 while this replica holds the leader lease. */
  leader: "mokd_operator_leader",
} as const;
