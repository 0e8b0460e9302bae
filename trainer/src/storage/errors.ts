// Failures of object storage, classified: what no retry can fix ends the run with its own exit code and reason
// (api/v1alpha1/exit-codes.ts), naming the URI and the store's error code; transient ones are retried (retry.ts).
import { ExitCode } from "../../../api/v1alpha1/index.ts";

export type StorageFailure =
  "StorageAccessDenied" | "StorageNotFound" | "ChecksumMismatch" | "StorageQuotaExceeded" | "StorageTLSError";

export const STORAGE_EXIT_CODES: Record<StorageFailure, number> = {
  StorageAccessDenied: ExitCode.StorageAccessDenied,
  StorageNotFound: ExitCode.StorageNotFound,
  ChecksumMismatch: ExitCode.ChecksumMismatch,
  StorageQuotaExceeded: ExitCode.StorageQuotaExceeded,
  StorageTLSError: ExitCode.StorageTLSError,
};

export class StorageError extends Error {
  readonly reason: StorageFailure;
  readonly uri: string;
  /** The store's error code (e.g. NoSuchKey, AccessDenied, InvalidAccessKeyId) or HTTP status, if any. */
  readonly code: string | undefined;
  readonly detail: string;
  constructor(reason: StorageFailure, uri: string, detail: string, code?: string) {
    super(`${uri}: ${detail}${code ? ` (${code})` : ""}`);
    this.name = "StorageError";
    this.detail = detail;
    this.reason = reason;
    this.uri = uri;
    this.code = code;
  }

  get exitCode(): number {
    return STORAGE_EXIT_CODES[this.reason];
  }
}

/** What an S3 or HTTP error means for the run. */
export type ErrorClass = "transient" | StorageFailure | "other";

const ACCESS_CODES = new Set([
  "AccessDenied",
  "Forbidden",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "InvalidToken",
  "ExpiredToken",
  "AllAccessDisabled",
  "AccountProblem",
  "CredentialsProviderError",
]);
const NOT_FOUND_CODES = new Set(["NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchUpload"]);
const QUOTA_CODES = new Set(["QuotaExceeded", "EntityTooLarge", "InsufficientStorage", "XMinioStorageFull"]);
const TRANSIENT_CODES = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "TooManyRequests",
  "RequestTimeout",
  "RequestTimeTooSkewed",
  "InternalError",
  "ServiceUnavailable",
  "TimeoutError",
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/**
 * Node's TLS verification failures (OpenSSL's X509 codes and Node's own): the endpoint's certificate is not one
 * this pod trusts. No retry changes that, so they fail the run at once (a wrong protocol, e.g. https:// to a
 * plain-HTTP port, is among them).
 */
const TLS_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "INVALID_CA",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "ERR_SSL_WRONG_VERSION_NUMBER",
]);

/** Names that say nothing (the SDK's "Unknown" for an error response without a body, as HEAD's). */
const GENERIC_NAMES = new Set(["Error", "TypeError", "Unknown", "UnknownError"]);

interface SdkLike {
  name?: string;
  code?: string;
  Code?: string;
  cause?: unknown;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

/** The store's error code of an SDK, fetch or socket error (name for the SDK, code for Node's sockets). */
export function errorCode(error: unknown): string | undefined {
  const e = error as SdkLike | undefined;
  if (!e || typeof e !== "object") return undefined;
  const cause = e.cause as SdkLike | undefined;
  const candidates = [e.Code, e.code, cause?.code, e.name];
  return candidates.find((c) => typeof c === "string" && c !== "" && !GENERIC_NAMES.has(c));
}

export const httpStatus = (error: unknown) => (error as SdkLike | undefined)?.$metadata?.httpStatusCode;

export function classify(error: unknown): ErrorClass {
  if (error instanceof StorageError) return error.reason;
  const code = errorCode(error) ?? "";
  const status = httpStatus(error);
  // The store's code first (a quota error may come as a 403), then the HTTP status.
  if (TLS_CODES.has(code)) return "StorageTLSError";
  if (ACCESS_CODES.has(code)) return "StorageAccessDenied";
  if (NOT_FOUND_CODES.has(code)) return "StorageNotFound";
  if (QUOTA_CODES.has(code)) return "StorageQuotaExceeded";
  if (TRANSIENT_CODES.has(code)) return "transient";
  if (status === 401 || status === 403) return "StorageAccessDenied";
  if (status === 404) return "StorageNotFound";
  if (status === 507) return "StorageQuotaExceeded";
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return "transient";
  if ((error as SdkLike).$retryable) return "transient";
  // fetch() wraps socket errors: "fetch failed" with the socket's code in `cause`.
  if (error instanceof TypeError && /fetch failed/.test(error.message)) return "transient";
  return "other";
}

/** A StorageError for `uri` when the error is one of the permanent storage failures; else the error itself. */
export function asStorageError(error: unknown, uri: string): unknown {
  const kind = classify(error);
  if (error instanceof StorageError || kind === "transient" || kind === "other") return error;
  const code =
    errorCode(error) ?? (httpStatus(error) !== undefined ? `HTTP ${httpStatus(error)}` : undefined);
  const detail: Record<StorageFailure, string> = {
    StorageAccessDenied:
      "access denied: check the credentials (storage.credentialsSecret, the pod's identity) and the bucket policy",
    StorageNotFound: "not found: no such bucket, object or prefix",
    ChecksumMismatch: "checksum mismatch",
    StorageQuotaExceeded: "the store refused the upload: quota or size limit",
    StorageTLSError: `TLS: ${tlsMessage(error)}; for a private CA set storage.caBundle (locally $AWS_CA_BUNDLE)`,
  };
  return new StorageError(kind, uri, detail[kind], code);
}

/** The TLS error's own words (Node's, e.g. "self-signed certificate"), from the error or its cause. */
function tlsMessage(error: unknown): string {
  const e = error as { message?: string; cause?: { message?: string } };
  const own = e.cause?.message && /fetch failed/.test(e.message ?? "") ? e.cause.message : e.message;
  return own || "the endpoint's certificate is not trusted";
}
