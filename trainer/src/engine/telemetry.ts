// The run's observers: Prometheus metrics and the JSONL log see every stage event, then the caller's hooks.
import type { Server } from "node:http";
import type { EpochRecord, EvaluationRecord, StepRecord } from "../contracts.ts";
import type { JsonlWriter } from "../telemetry/jsonl.ts";
import type { TrainerMetrics } from "../telemetry/metrics.ts";
import type { StageHooks } from "./stage.ts";

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

export function telemetryHooks(
  metrics: TrainerMetrics,
  jsonl: JsonlWriter,
  user: StageHooks = {},
): StageHooks {
  return {
    onStageStart(stage, epochs, stepsPerEpoch) {
      metrics.startStage(stage, epochs);
      user.onStageStart?.(stage, epochs, stepsPerEpoch);
    },
    onStep(record: StepRecord, batchSize, stepInEpoch) {
      metrics.step(record, batchSize);
      jsonl.write(record);
      user.onStep?.(record, batchSize, stepInEpoch);
    },
    onEpoch(record: EpochRecord) {
      metrics.epochEnd(record);
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
  port: number,
  log: Logger,
): Promise<Server | undefined> {
  try {
    const server = await metrics.serve(port);
    if (server) log.info(`metrics on :${(server.address() as { port: number }).port}/metrics`);
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
