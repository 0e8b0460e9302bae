// Bounded retries with exponential backoff (full jitter) for transient storage errors: timeouts, 5xx, throttling,
// dropped connections. Each retry is logged and counted; permanent errors (access, not found) are not retried.
import { asStorageError, classify, errorCode, httpStatus } from "./errors.ts";

export interface RetryPolicy {
  /** Attempts in all (1: no retry). */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 200, maxDelayMs: 10_000 };

export interface RetryObserver {
  warn(message: string): void;
  /** Called once per retry (after a transient failure), e.g. to count it. */
  retried?(operation: string): void;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Backoff before retry `n` (1-based): min(max, base * 2^(n-1)), with full jitter. */
export function backoffMs(policy: RetryPolicy, n: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1)));
}

/**
 * Runs `attempt` until it succeeds, fails permanently, or runs out of attempts. Permanent storage failures come
 * out as StorageError naming `uri`; a transient error that outlasts the attempts is rethrown with them counted.
 */
export async function withRetry<T>(
  operation: string,
  uri: string,
  attempt: () => Promise<T>,
  policy: RetryPolicy,
  observer: RetryObserver,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (classify(error) !== "transient") throw asStorageError(error, uri);
      const code = errorCode(error) ?? `HTTP ${httpStatus(error) ?? "?"}`;
      if (n >= policy.attempts) {
        throw new Error(
          `${operation} ${uri}: still failing after ${n} attempts (${code}): ${String(error)}`,
          {
            cause: error,
          },
        );
      }
      const delay = backoffMs(policy, n);
      observer.warn(
        `${operation} ${uri}: transient error ${code}; retry ${n}/${policy.attempts - 1} in ${delay} ms`,
      );
      observer.retried?.(operation);
      await sleep(delay);
    }
  }
}
