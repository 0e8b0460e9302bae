// The last state of disrupted trainer pods after they are deleted, from the pod informer's DELETED events. A pod
// evicted or preempted can go from DisruptionTarget to deleted in well under a second (the trainer checkpoints
// and exits, the Job controller drops its finalizer), and a busy work queue may reconcile its job only after
// that: without this memory the disruption would never be seen, and would restart the run silently. Only
// disrupted pods of our Jobs are kept, the newest per Job, for a bounded time: memory stays a few pods.
import type { V1Pod } from "@kubernetes/client-node";
import { monotonicNow } from "../lib/clock.ts";
import { disruptionOf } from "../status/disruption.ts";
import { controllerUid } from "./ownership.ts";

/** Long past the reconcile that counts the pod (even one retried with backoff); then forgotten. */
export const DELETED_POD_MEMORY_MS = 10 * 60_000;

const created = (pod: V1Pod) => {
  const t = pod.metadata?.creationTimestamp;
  return t === undefined ? "" : typeof t === "string" ? t : t.toISOString();
};

export class DeletedPods {
  readonly #byJob = new Map<string, { pod: V1Pod; at: number }>();
  readonly #now: () => number;
  readonly #ttlMs: number;

  constructor(now: () => number = monotonicNow, ttlMs = DELETED_POD_MEMORY_MS) {
    this.#now = now;
    this.#ttlMs = ttlMs;
  }

  /** Keeps a deleted pod that was a disruption target, if it is its Job's newest such pod. */
  remember(pod: V1Pod): boolean {
    const job = controllerUid(pod);
    if (!job || !disruptionOf(pod)) return false;
    this.#prune();
    const kept = this.#byJob.get(job);
    if (kept && created(kept.pod) > created(pod)) return false;
    this.#byJob.set(job, { pod, at: this.#now() });
    return true;
  }

  /** The remembered pods of the Job with this UID (at most one). */
  of(jobUid: string): V1Pod[] {
    const kept = this.#byJob.get(jobUid);
    if (!kept) return [];
    if (this.#now() - kept.at > this.#ttlMs) {
      this.#byJob.delete(jobUid);
      return [];
    }
    return [kept.pod];
  }

  get size(): number {
    return this.#byJob.size;
  }

  #prune(): void {
    const now = this.#now();
    for (const [job, { at }] of this.#byJob) if (now - at > this.#ttlMs) this.#byJob.delete(job);
  }
}
