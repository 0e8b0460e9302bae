// The trainer's termination message (/dev/termination-log): a contract between the trainer, which writes it, and
// the operator, which reads it into status.result or a failure's reason and message. Defined once, here.
//
// - On success: the compact `Result` JSON (distillationjob.ts), at most TERMINATION_MESSAGE_LIMIT bytes.
// - On failure: `{"error", "reason"}` (FailureMessage), `reason` named after the exit code (EXIT_CODE_REASONS).
// - A stop by SIGTERM (ExitCode.Terminated) writes none. Under FallbackToLogsOnError, a trainer that wrote none
//   leaves the tail of its log instead: readers must accept any text.
import { z } from "zod";
import { ExitCode } from "./exit-codes.ts";

/** Kubernetes truncates termination messages beyond 4096 bytes. */
export const TERMINATION_MESSAGE_LIMIT = 4096;

export const FailureReason = z
  .enum([
    "BadConfig",
    "BadData",
    "InternalError",
    "StorageAccessDenied",
    "StorageNotFound",
    "ChecksumMismatch",
    "StorageQuotaExceeded",
    "StorageTLSError",
  ])
  .describe("Why a run failed, named after its exit code.");
export type FailureReason = z.infer<typeof FailureReason>;

export const FailureMessage = z
  .object({
    error: z.string().describe("What went wrong, for people (every bad field of a BadConfig)."),
    reason: FailureReason,
  })
  .describe("The termination message of a failed run.");
export type FailureMessage = z.infer<typeof FailureMessage>;

/** Exit code -> the reason the trainer reports and the operator shows (codes absent here have none). */
export const EXIT_CODE_REASONS: Readonly<Partial<Record<number, FailureReason>>> = {
  [ExitCode.BadConfig]: "BadConfig",
  [ExitCode.BadData]: "BadData",
  [ExitCode.InternalError]: "InternalError",
  // Object storage (the trainer's or its `fetch` initializer's), each message naming the URI and the store's code.
  [ExitCode.StorageAccessDenied]: "StorageAccessDenied",
  [ExitCode.StorageNotFound]: "StorageNotFound",
  [ExitCode.ChecksumMismatch]: "ChecksumMismatch",
  [ExitCode.StorageQuotaExceeded]: "StorageQuotaExceeded",
  [ExitCode.StorageTLSError]: "StorageTLSError",
};
