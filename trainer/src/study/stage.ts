// What every study stage's pod shares: its options (as `train`'s), the storage it reaches, its metric labels.
import { join, resolve } from "node:path";
import {
  sharedRoot,
  STUDY_METRIC_LABELS,
  studyCheckpointSuffix,
  type Result,
  type TrainerSpec,
} from "../../../api/v1alpha1/index.ts";
import type { BackendPreference } from "../backend/index.ts";
import type { StageHooks } from "../engine/stage.ts";
import type { StopSignal } from "../engine/stop.ts";
import type { Logger } from "../engine/telemetry.ts";
import { storageContext, type StorageContext } from "../storage/client.ts";
import { cacheRoot, usesRemoteStorage } from "../storage/inputs.ts";
import { writeTerminationMessage } from "../telemetry/summary.ts";
import type { StudyConfig } from "./config.ts";
import { SharedStore } from "./shared-store.ts";

export interface StudyStageOptions {
  config: StudyConfig;
  /** The shard (teacher) or variant index: $JOB_COMPLETION_INDEX in a pod. */
  index: number;
  /**
   * This pod's own directory: template.output.path in a pod (the shared claim itself when there is no output
   * URI); locally the study's output directory.
   */
  outputPath?: string;
  /** Base of this pod's checkpoints (template.output.checkpointPath); each stage adds its own suffix. */
  checkpointPath?: string;
  backend?: BackendPreference;
  expectGpus?: number;
  metricsPort?: number;
  metricsLingerSeconds?: number;
  terminationLog?: string;
  log: Logger;
  hooks?: StageHooks;
  stop?: StopSignal;
  cacheDir?: string;
  /** Value of the mokd_study label: $MOKD_STUDY, else the study's name. */
  studyName?: string;
}

export const outputPathOf = (o: StudyStageOptions) =>
  resolve(o.outputPath ?? o.config.template.spec.output.path);
export const checkpointBaseOf = (o: StudyStageOptions) =>
  resolve(o.checkpointPath ?? o.config.template.spec.output.checkpointPath);

export function stageCheckpointPath(
  o: StudyStageOptions,
  stage: Parameters<typeof studyCheckpointSuffix>[0],
) {
  return join(checkpointBaseOf(o), studyCheckpointSuffix(stage));
}

/** mokd_study and mokd_variant. */
export function studyLabels(o: StudyStageOptions, variant: string): Record<string, string> {
  return {
    [STUDY_METRIC_LABELS.study]: o.studyName ?? o.config.template.jobName,
    [STUDY_METRIC_LABELS.variant]: variant,
  };
}

/** The storage context of a stage when its spec reaches object storage or URLs. */
export function stageStorage(spec: TrainerSpec, log: Logger): StorageContext | undefined {
  if (!usesRemoteStorage(spec)) return undefined;
  return storageContext(spec.storage, { info: (m) => log.info(m), warn: (m) => log.warn(m) });
}

/**
 * The study's shared storage as this pod reaches it. Without an output URI the shared directory is this pod's
 * output path (the mounted claim; locally the study's directory).
 */
export function sharedStore(o: StudyStageOptions, storage: StorageContext | undefined): SharedStore {
  const root = sharedRoot(o.config.template.spec);
  const reached = root.kind === "path" ? { kind: "path" as const, path: outputPathOf(o) } : root;
  return new SharedStore(reached, storage, o.cacheDir ?? cacheRoot());
}

export function writeResult(o: StudyStageOptions, result: Result): void {
  if (o.terminationLog) writeTerminationMessage(result, o.terminationLog);
}
