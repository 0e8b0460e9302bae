// Creation expectations, after the Job controller's ControllerExpectations: a child Job we created is remembered
// until the informer cache shows it, so a reconcile that runs before the cache has caught up (a pod's event can
// arrive before its Job's) does not create it again (a 409, a GET and an apply: three wasted requests).
// Entries expire like client-go's (5 min): a Job deleted before the cache ever showed it is created again then.
import type { V1Job } from "@kubernetes/client-node";
import { monotonicNow } from "../lib/clock.ts";
import { slimJob } from "./cache-transforms.ts";

export const EXPECTATIONS_TIMEOUT_MS = 5 * 60_000;

export class CreatedJobs {
  readonly #created = new Map<string, { job: V1Job; at: number }>();

  /** Remembers a Job just created for `key` (slimmed as the cache would keep it). */
  created(key: string, job: V1Job): void {
    this.#created.set(key, { job: slimJob(job), at: monotonicNow() });
  }

  /**
   * The cached Job, or the one we created while the cache does not show it yet (same name). Forgets ours once
   * the cache shows a Job of that name, or when it expired.
   */
  observe(key: string, name: string, cached: V1Job | undefined): V1Job | undefined {
    const ours = this.#created.get(key);
    if (!ours) return cached;
    const expired = monotonicNow() - ours.at > EXPECTATIONS_TIMEOUT_MS;
    if (cached || expired || ours.job.metadata?.name !== name) {
      this.#created.delete(key);
      return cached;
    }
    return ours.job;
  }

  forget(key: string): void {
    this.#created.delete(key);
  }
}
