// Exit codes of the trainer: a contract between the trainer, the operator's podFailurePolicy and users.
export const ExitCode = {
  /** The run finished; the student and summary are written. */
  Success: 0,
  /** An unexpected error (a bug, out of memory, ...). Retried by the Job's backoffLimit. */
  InternalError: 1,
  /** The config is invalid; every bad field is named on stderr. Not retried: fails the job at once. */
  BadConfig: 2,
  /** The data (or teacher model) is missing, truncated or malformed. Not retried: fails the job at once. */
  BadData: 3,
  /** Object storage refused the credentials (wrong key, signature, or no permission on the bucket or key). */
  StorageAccessDenied: 4,
  /** A bucket, object or prefix of an s3:// or http(s) URI does not exist. */
  StorageNotFound: 5,
  /** A downloaded artifact's size, ETag or sha256 is not what the store or the spec said. */
  ChecksumMismatch: 6,
  /** The store refused an upload for a quota or size limit. */
  StorageQuotaExceeded: 7,
  /** The storage endpoint's TLS certificate is not trusted (self-signed, unknown CA, wrong host, expired). */
  StorageTLSError: 8,
  /** Stopped by SIGTERM after writing a checkpoint at a step boundary (128 + 15). Resumes when restarted. */
  Terminated: 143,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Exit codes that no retry can fix: the operator's podFailurePolicy fails the job on them. */
export const NON_RETRYABLE_EXIT_CODES: readonly number[] = [
  ExitCode.BadConfig,
  ExitCode.BadData,
  ExitCode.StorageAccessDenied,
  ExitCode.StorageNotFound,
  ExitCode.ChecksumMismatch,
  ExitCode.StorageQuotaExceeded,
  ExitCode.StorageTLSError,
];
