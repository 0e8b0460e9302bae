// Progress as a contract between the trainer and the operator.
//
// - TrainerProgress: the typed document the trainer serves as JSON at GET /progress on its metrics port. The
//   trainer builds it with this type; the operator validates what it reads with this schema (a document that
//   does not parse is ignored, never guessed at). Prometheus metrics stay on /metrics, for Prometheus.
// - Progress: what the operator writes to status.progress from it: the document's own fields, derived from
//   TrainerProgress (no second list of them).
// - TrainerStatus: the same progress in the shape Kubeflow Trainer's TrainJob uses (`status.trainerStatus`,
//   KEP-2779: progressPercentage, estimatedRemainingSeconds, metrics as name/value strings, lastUpdatedTime),
//   so tools written for TrainJob can read a DistillationJob.
// - FetchProgress: what the `fetch` init container serves at the same path and port while it downloads the
//   inputs (the pod shares one network namespace; the trainer listens there only once it has started). The
//   operator puts it into the Initializing condition's message.
import { z } from "zod";

/** Path of the progress document on the trainer's metrics port. */
export const PROGRESS_PATH = "/progress";
/** apiVersion/kind of the progress document: a breaking change of its shape gets a new version. */
export const PROGRESS_API_VERSION = "progress.distillation.mokd.io/v1";
export const PROGRESS_KIND = "TrainerProgress";

const NumberMap = z.record(z.string(), z.number());
const Ratio = z.number().min(0).max(1);
const Count = z.number().int().min(0);
export const TrainingStage = z.enum(["teacher", "student"]);
export type TrainingStage = z.infer<typeof TrainingStage>;

export const LastCheckpoint = z
  .object({
    stage: TrainingStage.describe("The stage the checkpoint belongs to."),
    epoch: Count.describe("Epochs completed when it was written."),
    step: Count.describe("Global optimiser step of the stage it holds."),
    time: z.iso.datetime().describe("When it was written (RFC 3339)."),
    location: z
      .string()
      .min(1)
      .max(4096)
      .describe("Where it is: an s3:// URI once uploaded, else the directory in the pod."),
  })
  .describe("The last complete checkpoint: a restart on any node resumes from it.");
export type LastCheckpoint = z.infer<typeof LastCheckpoint>;

export const TrainerProgress = z
  .object({
    apiVersion: z.literal(PROGRESS_API_VERSION),
    kind: z.literal(PROGRESS_KIND),
    stage: TrainingStage.describe("The stage in progress."),
    stages: z.array(TrainingStage).min(1).describe("The stages this run trains, in order."),
    epoch: Count.describe("Current epoch of the stage (1-based; 0 before the first step)."),
    totalEpochs: z.number().int().min(1).describe("Epochs of the stage."),
    step: Count.describe(
      "Global optimiser step of the stage: steps done, continuing from the checkpoint after a resume.",
    ),
    stepsPerEpoch: z.number().int().min(1).describe("Optimiser steps per epoch of the stage."),
    totalSteps: Count.describe("Steps of the stage (stepsPerEpoch x totalEpochs)."),
    losses: NumberMap.describe("Latest loss per objective."),
    weights: NumberMap.describe("Latest strategy weight per objective."),
    trainAccuracy: Ratio.optional().describe("Train top-1 accuracy of the stage's last epoch."),
    validationAccuracy: Ratio.optional().describe("Validation top-1 accuracy of the stage's last epoch."),
    studentAccuracy: Ratio.optional().describe("Student accuracy: validation while training, then test."),
    conflictRate: Ratio.optional().describe("Fraction of measured student steps whose gradients conflict."),
    samplesPerSecond: z.number().min(0).optional().describe("Throughput of the last epoch."),
    progressPercentage: z.number().min(0).max(100).describe("Share of the run's steps done (every stage)."),
    etaSeconds: z
      .number()
      .min(0)
      .optional()
      .describe("Estimated seconds to the end of the run: steps left at this process's mean step time."),
    updatedAt: z.iso.datetime().describe("When the trainer last changed this document (RFC 3339)."),
    lastCheckpoint: LastCheckpoint.optional(),
  })
  .describe("The trainer's progress document (GET /progress).");
export type TrainerProgress = z.infer<typeof TrainerProgress>;

export const FETCH_PROGRESS_KIND = "FetchProgress";

export const FetchedArtifact = z
  .object({
    field: z.string().min(1).describe("The spec field the artifact comes from, e.g. data.path."),
    uri: z.string().min(1).describe("Its s3:// or http(s) URI."),
    state: z
      .enum(["pending", "fetching", "cached", "downloaded"])
      .describe(
        "pending: not started; fetching: under way; cached: every file was in the cache, unchanged in the store (nothing downloaded); downloaded: done, some of it downloaded.",
      ),
    bytesDone: Count.describe("Bytes of the artifact in the cache so far: found there plus downloaded."),
    bytesTotal: Count.optional().describe(
      "Bytes of the artifact, once listed (unknown for a file of unknown size).",
    ),
    bytesDownloaded: Count.describe("Bytes downloaded by this container (0 for a cache hit)."),
    files: Count.optional().describe("Files of the artifact, once listed."),
    cachedFiles: Count.describe("Files found in the cache, unchanged in the store."),
  })
  .describe("One input artifact of the initializer.");
export type FetchedArtifact = z.infer<typeof FetchedArtifact>;

export const FetchProgress = z
  .object({
    apiVersion: z.literal(PROGRESS_API_VERSION),
    kind: z.literal(FETCH_PROGRESS_KIND),
    artifacts: z.array(FetchedArtifact).describe("The spec's remote inputs, in the order they are fetched."),
    updatedAt: z.iso.datetime().describe("When the initializer last changed this document (RFC 3339)."),
  })
  .describe("The fetch initializer's progress document (GET /progress while it runs).");
export type FetchProgress = z.infer<typeof FetchProgress>;

/** The document's fields that describe the whole run or the document itself: status.progress has the rest. */
const DOCUMENT_ONLY = {
  apiVersion: true,
  kind: true,
  stages: true,
  progressPercentage: true,
  updatedAt: true,
} as const;

/** status.progress: every other field of the document (the operator rounds the figures), each optional. */
export const Progress = TrainerProgress.omit(DOCUMENT_ONLY)
  .partial()
  .extend({
    lastUpdateTime: z.string().optional().describe("When progress was last read from the trainer."),
  })
  .describe("Live progress read from the trainer while it runs.");
export type Progress = z.infer<typeof Progress>;

export const TrainerStatusMetric = z
  .object({
    name: z.string().min(1).max(64).describe('Metric name, e.g. "loss", "validationAccuracy".'),
    value: z.string().min(1).max(64).describe("Its value, serialised as a string."),
  })
  .describe("One metric, as Kubeflow Trainer's TrainJob reports it.");
export type TrainerStatusMetric = z.infer<typeof TrainerStatusMetric>;

export const TrainerStatus = z
  .object({
    progressPercentage: z
      .number()
      .int()
      .min(0)
      .max(100)
      .optional()
      .describe("How complete the run is, in percent (0-100); empty if unknown."),
    estimatedRemainingSeconds: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("Estimated seconds until the run completes; empty if unknown."),
    metrics: z
      .array(TrainerStatusMetric)
      .max(256)
      .optional()
      .meta({ "x-kubernetes-list-type": "atomic" })
      .describe("The latest metrics of the run."),
    lastUpdatedTime: z.string().optional().describe("When these values were observed (RFC 3339)."),
  })
  .meta({
    "x-kubernetes-validations": [
      {
        rule: "has(self.lastUpdatedTime)",
        message: "lastUpdatedTime is required when trainerStatus is present",
      },
    ],
  })
  .describe(
    "Progress in Kubeflow Trainer's TrainJob shape (status.trainerStatus), for tools written for it.",
  );
export type TrainerStatus = z.infer<typeof TrainerStatus>;
