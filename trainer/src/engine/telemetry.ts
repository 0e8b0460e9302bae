// The run's observers: Prometheus metrics, the progress document (/progress, read by the operator) and the
// JSONL log see every stage event, then the caller's hooks.
import type { Server } from "node:http";
import type { EpochRecord, EvaluationRecord, StepRecord } from "../contracts.ts";
import type { JsonlWriter } from "../telemetry/jsonl.ts";
import type { TrainerMetrics } from "../telemetry/metrics.ts";
import type { ProgressDocument } from "../telemetry/progress-document.ts";
import { PROGRESS_PATH } from "../../../api/v1alpha1/index.ts";
import type { StageHooks } from "./stage.ts";

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

export function telemetryHooks(
  metrics: TrainerMetrics,
  progress: ProgressDocument,
  jsonl: JsonlWriter,
  user: StageHooks = {},
): StageHooks {
  return {
    onStageStart(stage, epochs, stepsPerEpoch) {
      metrics.startStage(stage, epochs);
      progress.startStage(stage, epochs, stepsPerEpoch);
      user.onStageStart?.(stage, epochs, stepsPerEpoch);
    },
    onStep(record: StepRecord, batchSize, stepInEpoch) {
      metrics.step(record, batchSize);
      progress.step(record);
      jsonl.write(record);
      user.onStep?.(record, batchSize, stepInEpoch);
    },
    onEpoch(record: EpochRecord) {
      metrics.epochEnd(record);
      progress.epochEnd(record);
      jsonl.write(record);
      user.onEpoch?.(record);
    },
    onEvaluation(record: EvaluationRecord) {
      jsonl.write(record);
      user.onEvaluation?.(record);
    },
  };
}

/** Metrics are an observer: a busy port is logged, never fatal to training. */
export async function serveMetrics(
  metrics: TrainerMetrics,
  progress: ProgressDocument,
  port: number,
  log: Logger,
): Promise<Server | undefined> {
  try {
    const server = await metrics.serve(port, undefined, { [PROGRESS_PATH]: progress.handler });
    if (server)
      log.info(`metrics on :${(server.address() as { port: number }).port}/metrics and ${PROGRESS_PATH}`);
    return server;
  } catch (error) {
    log.warn(`metrics endpoint disabled: cannot listen on :${port}: ${(error as Error).message}`);
    return undefined;
  }
}

export async function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return;
  await new Promise<void>((done) => server.close(() => done()));
}
