// runPolicy.ttlSecondsAfterFinished: when a finished DistillationJob is due for deletion (pure).
import { toIso } from "../status/derive.ts";
import type { OwnerJob } from "../owner-job.ts";

/** The longest delay a Node timer takes (setTimeout overflows above it and fires at once). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Milliseconds until the finished job is due (0 or less: delete it now); undefined when it never is (no TTL, or
 * not finished).
 */
export function ttlDueInMs(dj: OwnerJob, now: Date): number | undefined {
  const ttl = dj.spec.runPolicy.ttlSecondsAfterFinished;
  const finished = toIso(dj.status?.completionTime);
  if (ttl === undefined || !finished) return undefined;
  return Date.parse(finished) + ttl * 1000 - now.getTime();
}
