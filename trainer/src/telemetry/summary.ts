// The final summary (<output>/summary.json) and the compact termination message the operator turns into
// DistillationJobStatus.result: its keys are exactly the `Result` fields.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import {
  TERMINATION_MESSAGE_LIMIT,
  type FailureMessage,
  type FailureReason,
  type Result,
} from "../../../api/v1alpha1/index.ts";
import type { EpochRecord } from "../contracts.ts";
import type { CompressionReport } from "../engine/compression.ts";
import type { OnnxExportSummary } from "../engine/publish.ts";

export const TERMINATION_LOG_ENV = "MOKD_TERMINATION_LOG";
export const DEFAULT_TERMINATION_LOG = "/dev/termination-log";
export { TERMINATION_MESSAGE_LIMIT, type FailureMessage, type FailureReason };

export interface ModelSummary {
  /** Test top-1 accuracy. */
  accuracy: number;
  /** Validation accuracy of the last epoch (undefined for a loaded teacher that was not evaluated on it). */
  validationAccuracy?: number;
  parameters: number;
  /** Where the model lives. */
  path: string;
}

export interface RunSummary {
  job: { name: string; namespace: string };
  strategy: string;
  /** The tfjs backend (auto's pick or the forced one): tensorflow-gpu, tensorflow, wasm or cpu. */
  backend: string;
  /** TensorFlow's version as the native library reported it; absent on wasm and cpu. */
  tensorflowVersion?: string;
  /** Where ops ran: "gpu" only when TensorFlow placed them on a CUDA device. */
  device: "gpu" | "cpu";
  teacher: ModelSummary & { source: "trained" | "loaded" };
  student: ModelSummary;
  /** 1-based epoch with the best validation accuracy. */
  bestEpoch: number;
  bestValidationAccuracy: number;
  targetAccuracy?: number;
  /** First epoch whose validation accuracy reached targetAccuracy; null when it never did. */
  epochsToTarget?: number | null;
  /** Fraction of gradient-measured student steps with a pairwise cosine < 0. */
  conflictRate: number;
  measuredSteps: number;
  /** Student steps skipped (no update applied) because their losses or gradients were not finite. */
  nonFiniteSteps: number;
  steps: number;
  durationSeconds: number;
  /** Mean student training throughput. */
  samplesPerSecond: number;
  epochs: EpochRecord[];
  /** The student's other formats: the ONNX export and its parity check. */
  exports?: { onnx: OnnxExportSummary };
  /** Teacher vs student cost (output.compression). */
  compression?: CompressionReport;
}

export function writeSummary(path: string, summary: RunSummary): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(summary, null, 2) + "\n");
}

export function terminationResult(summary: RunSummary): Result {
  const round = (x: number) => Math.round(x * 1e4) / 1e4;
  return {
    // Absent for a study's student alone (no teacher); JSON has no NaN.
    ...(Number.isFinite(summary.teacher.accuracy) ? { teacherAccuracy: round(summary.teacher.accuracy) } : {}),
    studentAccuracy: round(summary.student.accuracy),
    bestEpoch: summary.bestEpoch,
    conflictRate: round(summary.conflictRate),
    strategy: summary.strategy,
    modelPath: summary.student.path,
    durationSeconds: Math.round(summary.durationSeconds * 10) / 10,
    ...(summary.exports?.onnx.path ? { onnxModelPath: summary.exports.onnx.path } : {}),
    ...(summary.compression?.sizeRatio ? { sizeRatio: round(summary.compression.sizeRatio) } : {}),
    ...(summary.compression?.speedup ? { speedup: round(summary.compression.speedup.value) } : {}),
  };
}

/**
 * Writes the compact result where Kubernetes reads the termination message. Returns false (and writes nothing)
 * when the path is not writable, as outside a pod.
 */
export function writeTerminationMessage(result: Result, path: string): boolean {
  // Only the paths and URIs can be long: drop them, least needed first, rather than emit invalid JSON.
  let fitted: Result = result;
  for (const field of ["modelPath", "checkpointUri", "outputUri"] as const) {
    if (Buffer.byteLength(JSON.stringify(fitted)) <= TERMINATION_MESSAGE_LIMIT) break;
    fitted = { ...fitted, [field]: undefined };
  }
  return writeTerminationFile(path, JSON.stringify(fitted));
}

/** `{"error": ..., "reason": ...}` in at most TERMINATION_MESSAGE_LIMIT bytes: a long error is cut, with "…". */
export function failureMessage(reason: FailureReason, error: string): string {
  const json = (text: string) => JSON.stringify({ error: text, reason } satisfies FailureMessage);
  const fits = (text: string) => Buffer.byteLength(text) <= TERMINATION_MESSAGE_LIMIT;
  if (fits(json(error))) return json(error);
  // Binary search for the longest prefix that fits once escaped (escapes and UTF-8 make bytes != characters).
  let [lo, hi] = [0, error.length];
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(json(`${error.slice(0, mid)}…`))) lo = mid;
    else hi = mid - 1;
  }
  return json(`${error.slice(0, lo)}…`);
}

/** Writes a failure's termination message; false when the path is not writable (outside a pod). */
export function writeFailureMessage(reason: FailureReason, error: string, path: string): boolean {
  return writeTerminationFile(path, failureMessage(reason, error));
}

function writeTerminationFile(path: string, text: string): boolean {
  try {
    writeFileSync(path, text);
    return true;
  } catch {
    return false;
  }
}

export function terminationLogPath(env: Record<string, string | undefined> = process.env): string {
  return env[TERMINATION_LOG_ENV] || DEFAULT_TERMINATION_LOG;
}
