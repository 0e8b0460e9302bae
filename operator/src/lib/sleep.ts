// Waiting between retries in loops that a stop signal ends (informer backoff, leader-election retries).
import { setTimeout as delay } from "node:timers/promises";

/** Resolves after `ms`, or as soon as `signal` aborts; never rejects, so the caller's loop checks its own exit. */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => undefined);
}
