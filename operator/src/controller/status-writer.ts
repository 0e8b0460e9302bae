// The status-write policy, apart from the reconcile phases: write only a changed status; hold back a transient
// one for a moment so a burst costs one write per job; remember what we wrote, because the informer cache may
// not have caught up with it when the next reconcile runs.
import type { Condition, DistillationJobStatus } from "../../../api/v1alpha1/index.ts";
import { KubeApiError } from "../lib/kube-http.ts";
import { findCondition, isTransientReason } from "../status/conditions.ts";
import { sameJson } from "./canonical.ts";

/**
 * The longest a pending status waits before it is written anyway: no state is lost, only coalesced. 5 s: at a
 * burst of thousands of jobs the Job controller and scheduler take seconds to create and place each pod, and a
 * job that goes JobCreated -> PodPending -> Unschedulable (or Running) within it costs one write and one event
 * instead of two or three; far inside the 30 s in which a job's status must show its children's changes.
 */
export const DEFAULT_TRANSIENT_HOLD_MS = 5000;

/** What the writer needs of a status: a DistillationJob's, or a DistillationStudy's (study-reconciler.ts). */
export interface StatusLike {
  phase?: string;
  conditions?: Condition[];
}

/** Where the status goes (ClusterWriter.applyStatus for DistillationJobs); returns the new resourceVersion. */
export interface StatusApplier<S> {
  applyStatus(namespace: string, name: string, status: S): Promise<string | undefined>;
}

/** What the writer needs of its owner. */
interface Owner<S> {
  metadata: { uid: string; namespace: string; name: string; resourceVersion?: string };
  status?: S;
}

interface Written<S> {
  uid: string;
  /** The resourceVersion of the object our status was written onto (what the cache showed then). */
  basedOn: string | undefined;
  status: S;
}

/** A derived but not yet written transient status, and when it was first derived. */
interface Held<S> {
  uid: string;
  status: S;
  since: number;
}

export function isTransient(status: StatusLike): boolean {
  return status.phase === "Pending" && isTransientReason(findCondition(status.conditions, "Running")?.reason);
}

/**
 * Reasons held back with the transient ones: the scheduler retries an unschedulable pod by itself, and in a
 * burst most pods are unschedulable for a moment (a few seconds after their Job) before they run or wait for
 * capacity; a stuck container or an admission refusal is written at once.
 */
const COALESCED_REASONS = new Set(["Unschedulable"]);

/** A pending status worth holding back briefly: a transient step, or a pod the scheduler has yet to place. */
export function isCoalesced(status: StatusLike): boolean {
  if (status.phase !== "Pending") return false;
  const reason = findCondition(status.conditions, "Running")?.reason;
  return isTransient(status) || COALESCED_REASONS.has(reason ?? "");
}

/** What a write did: what it wrote (announce it), or held until `requeueAfterMs`, or nothing changed. */
export interface WriteOutcome<S = DistillationJobStatus> {
  written?: S;
  requeueAfterMs?: number;
  /** The apiserver's message when it refused the derived status (a minimal one was written instead). */
  refused?: string;
}

/** HTTP statuses of a status the apiserver will refuse again: bad request, too large, invalid. */
const REFUSED = new Set([400, 413, 422]);

/** Conditions of a refused status: each reason kept, each message replaced by a plain one pointing at the events. */
export function refusedConditions<C extends { reason?: string; message?: string }>(
  conditions: C[] | undefined,
  owner: "job" | "study",
): C[] | undefined {
  return conditions?.map((c) => ({
    ...c,
    message: c.message ? `${c.reason} (details refused by the apiserver: see the ${owner}'s events)` : "",
  }));
}

/**
 * What is left of a status the apiserver refused: the phase and the conditions with their reasons, each message
 * replaced by a plain one (whatever broke the write cannot be in it); no result, progress or trainerStatus.
 */
export function minimalStatus(status: DistillationJobStatus): DistillationJobStatus {
  const { phase, observedGeneration, startTime, completionTime, attempts, jobName } = status;
  // Which disrupted pod was counted stays (else it would be counted again); its message may be what broke.
  const { message: _message, ...lastDisruption } = status.lastDisruption ?? {};
  const conditions = refusedConditions(status.conditions, "job");
  return Object.fromEntries(
    Object.entries({
      phase,
      conditions,
      observedGeneration,
      startTime,
      completionTime,
      attempts,
      lastDisruption: status.lastDisruption ? lastDisruption : undefined,
      jobName,
    }).filter(([, v]) => v !== undefined),
  ) as DistillationJobStatus;
}

/** Writes one kind's status: DistillationJobStatus by default, any StatusLike with its own writer and minimal. */
export class StatusWriter<S extends StatusLike = DistillationJobStatus> {
  /** The last status we wrote per key: the informer cache may not have caught up with it yet. */
  private readonly written = new Map<string, Written<S>>();
  /** Transient statuses held back per key. */
  private readonly held = new Map<string, Held<S>>();

  private readonly writer: StatusApplier<S>;

  private readonly now: () => Date;
  /** How long a transient status may be held back (0 writes at once). */
  private readonly holdMs: number;
  private readonly minimal: (status: S) => S;

  constructor(
    writer: StatusApplier<S>,
    now: () => Date,
    holdMs = DEFAULT_TRANSIENT_HOLD_MS,
    minimal: (status: S) => S = minimalStatus as unknown as (status: S) => S,
  ) {
    this.writer = writer;
    this.now = now;
    this.holdMs = holdMs;
    this.minimal = minimal;
  }

  /** The newest status we know of: ours while the cache still shows the version our write replaced. */
  previous(key: string, dj: Owner<S>, cached: S): S {
    const written = this.written.get(key);
    // resourceVersions are opaque (never compared as numbers, as the API conventions require): while the cache
    // still shows the very version our write replaced, it has not caught up, and our status is the newer one.
    const behind =
      written?.uid === dj.metadata.uid &&
      written.basedOn !== undefined &&
      written.basedOn === dj.metadata.resourceVersion;
    if (written && !behind) this.written.delete(key); // the cache has caught up: no need to keep ours
    return behind && written ? written.status : cached;
  }

  /** The status held back for this job, if any (derived from, so its conditions keep their transition times). */
  heldStatus(key: string, dj: Owner<S>): S | undefined {
    const held = this.held.get(key);
    return held?.uid === dj.metadata.uid ? held.status : undefined;
  }

  /**
   * Writes a changed status, unless it is transient and young: then says when to come back and write it.
   * `force`: write even an unchanged status (the stored one did not pass the checks). A status the apiserver
   * refuses as invalid falls back to minimalStatus (never to silence and an endless retry).
   */
  async write(key: string, dj: Owner<S>, status: S, urgent = false, force = false): Promise<WriteOutcome<S>> {
    if (!force && sameJson(dj.status ?? {}, status)) {
      this.held.delete(key);
      return {};
    }
    const waitMs = urgent || force ? 0 : this.holdTime(key, dj.metadata.uid, status);
    if (waitMs > 0) return { requeueAfterMs: waitMs };
    this.held.delete(key);
    try {
      await this.apply(key, dj, status);
      return { written: status };
    } catch (error) {
      if (!(error instanceof KubeApiError) || !REFUSED.has(error.status)) throw error;
      const minimal = this.minimal(status);
      await this.apply(key, dj, minimal);
      return { written: minimal, refused: error.message };
    }
  }

  private async apply(key: string, dj: Owner<S>, status: S): Promise<void> {
    const { namespace, name, uid } = dj.metadata;
    const resourceVersion = await this.writer.applyStatus(namespace, name, status);
    if (resourceVersion) this.written.set(key, { uid, basedOn: dj.metadata.resourceVersion, status });
  }

  forget(key: string): void {
    this.written.delete(key);
    this.held.delete(key);
  }

  /**
   * Milliseconds a pending status may still wait (0: write now); remembers it meanwhile. The hold runs from the
   * first status held since the last write, so a job that keeps changing is written no later than holdMs after
   * its first unwritten change.
   */
  private holdTime(key: string, uid: string, status: S): number {
    if (this.holdMs <= 0 || !isCoalesced(status)) return 0;
    const now = this.now().getTime();
    const held = this.held.get(key);
    const since = held?.uid === uid ? held.since : now;
    const remaining = since + this.holdMs - now;
    if (remaining > 0) this.held.set(key, { uid, status, since });
    return Math.max(0, remaining);
  }
}
