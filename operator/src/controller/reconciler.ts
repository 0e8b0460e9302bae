// The reconciler, in phases like Cluster API's: load -> compute desired children -> apply children -> derive
// status -> patch status (only when it changed). Reads come from informer caches, writes go through ClusterWriter.
import type { CoreV1Event, V1ConfigMap, V1Job, V1Pod } from "@kubernetes/client-node";
import {
  API_VERSION,
  ConfigError,
  KIND,
  parseDistillationJob,
  type DistillationJobStatus,
  type Phase,
} from "../../../api/v1alpha1/index.ts";
import { buildConfigMap } from "../builders/configmap.ts";
import type { OwnerJob } from "../builders/common.ts";
import { buildJob, type ResourceDefaults } from "../builders/job.ts";
import { configMapNameFor, jobNameFor, keyOf, splitKey } from "../names.ts";
import { trainerStatusFor } from "../progress/document.ts";
import type { ProgressScraper } from "../progress/scraper.ts";
import { findCondition, setCondition } from "../status/conditions.ts";
import {
  contradictedByCluster,
  deriveStatus,
  invalidSpecStatus,
  isTerminal,
  jobFinished,
  pendingDeadlineIn,
  toIso,
  truncateMessage,
  type Observed,
} from "../status/derive.ts";
import { refusalMessage } from "../status/refusal.ts";
import { dataHashOf, OBSERVED_DATA_HASH } from "./cache-transforms.ts";
import { hashOf, sameJson } from "./canonical.ts";
import { jobSpecUpdate } from "./job-update.ts";
import type { ClusterWriter } from "./kube.ts";

/** Annotation on each child: hash of what we last applied, so an unchanged child is not re-applied. */
export const SPEC_HASH_ANNOTATION = "mokd.io/spec-hash";

/**
 * Pending reasons that the Job controller, scheduler and kubelet replace by themselves within moments (Job
 * created -> pod created -> pod running). A status with one of them is held back for a short while, so a
 * burst writes one status (and one event) per job instead of one per step; nothing else is ever held.
 */
export const TRANSIENT_REASONS: ReadonlySet<string> = new Set(["Creating", "JobCreated", "PodPending"]);
/** The longest a transient status waits before it is written anyway: no state is lost, only coalesced. */
export const DEFAULT_TRANSIENT_HOLD_MS = 2000;
/** Pending reasons that need someone to act: announced as Warning events. */
const WARNING_REASONS: ReadonlySet<string> = new Set([
  "Unschedulable",
  "ImagePullBackOff",
  "ErrImagePull",
  "InvalidImageName",
  "CrashLoopBackOff",
  "CreateContainerConfigError",
  "CreateContainerError",
  "ExceededQuota",
  "PriorityClassNotFound",
  "FailedCreate",
]);
/** What a status written by someone else may claim that the operator's own status would not correct. */
const CLAIMED_STATUS_FIELDS = ["result", "completionTime", "progress"];
/** The longest delay a Node timer takes (setTimeout overflows above it). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ClusterReader {
  distillationJob(namespace: string, name: string): unknown;
  job(namespace: string, name: string): V1Job | undefined;
  configMap(namespace: string, name: string): V1ConfigMap | undefined;
  /** Pods of the child Job (label mokd.io/job-name). */
  pods(namespace: string, djName: string): V1Pod[];
  /** FailedCreate events of the child Job (quota, PriorityClass admission refusing its pod). */
  jobEvents?(namespace: string, jobName: string): CoreV1Event[];
}

export interface EventSink {
  record(
    obj: { apiVersion: string; kind: string; metadata: { name: string; namespace: string; uid: string } },
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): void;
}

export interface ReconcilerOptions {
  reader: ClusterReader;
  writer: ClusterWriter;
  events: EventSink;
  scraper?: Pick<ProgressScraper, "track" | "untrack" | "latest" | "trainerStatus">;
  trainerImage?: string;
  /** CPU/memory for trainer containers whose spec leaves them out (builders/job.ts DEFAULT_RESOURCES). */
  resourceDefaults?: ResourceDefaults;
  now?: () => Date;
  onFinished?: (phase: Phase, seconds: number) => void;
  log?: (level: "info" | "warn" | "debug", message: string, meta: Record<string, unknown>) => void;
  /** How long a transient status may be held back (default DEFAULT_TRANSIENT_HOLD_MS; 0 writes at once). */
  transientHoldMs?: number;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

interface Written {
  uid: string;
  /** The resourceVersion of the object our status was written onto (what the cache showed then). */
  basedOn: string | undefined;
  status: DistillationJobStatus;
}

/** A derived but not yet written transient status, and when it was first derived. */
interface Held {
  uid: string;
  status: DistillationJobStatus;
  since: number;
}

const runningReason = (status: DistillationJobStatus) => findCondition(status.conditions, "Running")?.reason;

export function isTransient(status: DistillationJobStatus): boolean {
  return status.phase === "Pending" && TRANSIENT_REASONS.has(runningReason(status) ?? "");
}

/**
 * Condition type of the last apply of the children (Crossplane's `Synced`): False with reason ApplyFailed and
 * the apiserver's message while an apply fails, True once one succeeds again. Absent while nothing ever failed.
 */
export const SYNCED = "Synced";

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The derived status with the Synced condition of this reconcile's apply (pure). */
export function withSynced(
  status: DistillationJobStatus,
  applyError: unknown,
  now: string,
  generation?: number,
): DistillationJobStatus {
  const failed = applyError !== undefined;
  if (!failed && !findCondition(status.conditions, SYNCED)) return status;
  const update = failed
    ? {
        type: SYNCED,
        status: "False" as const,
        reason: "ApplyFailed",
        message: truncateMessage(
          `applying the trainer's ConfigMap or Job failed: ${errorMessage(applyError)}`,
        ),
      }
    : { type: SYNCED, status: "True" as const, reason: "Applied", message: "the children are applied" };
  return { ...status, conditions: setCondition(status.conditions, update, now, generation) };
}

/** Comes back by the pending deadline too (never later than a Node timer allows). */
function withDeadline(result: ReconcileResult, deadlineMs: number | undefined): ReconcileResult {
  if (deadlineMs === undefined) return result;
  const ms = Math.min(Math.max(deadlineMs, 0) + 1, MAX_TIMER_MS);
  return { requeueAfterMs: Math.min(result.requeueAfterMs ?? ms, ms) };
}

function withHash<T extends { metadata?: { annotations?: Record<string, string> } }>(obj: T): T {
  const hash = hashOf(obj);
  obj.metadata = {
    ...obj.metadata,
    annotations: { ...obj.metadata?.annotations, [SPEC_HASH_ANNOTATION]: hash },
  };
  return obj;
}

const hashMatches = (
  desired: { metadata?: { annotations?: Record<string, string> } },
  actual?: V1Job | V1ConfigMap,
) =>
  actual !== undefined &&
  actual.metadata?.annotations?.[SPEC_HASH_ANNOTATION] ===
    desired.metadata?.annotations?.[SPEC_HASH_ANNOTATION];

/** Our last apply is in place and nobody has changed the config since (a cached copy carries only its hash). */
const configMapCurrent = (desired: V1ConfigMap, actual?: V1ConfigMap) =>
  hashMatches(desired, actual) &&
  (actual!.metadata?.annotations?.[OBSERVED_DATA_HASH] ?? dataHashOf(actual!)) === dataHashOf(desired);

export class Reconciler {
  private readonly o: ReconcilerOptions;
  /** The last status we wrote per key: the informer cache may not have caught up with it yet. */
  private readonly written = new Map<string, Written>();
  /** Transient statuses held back per key (see TRANSIENT_REASONS). */
  private readonly held = new Map<string, Held>();

  constructor(options: ReconcilerOptions) {
    this.o = options;
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const raw = this.o.reader.distillationJob(namespace, name) as
      { metadata?: { deletionTimestamp?: unknown } } | undefined;
    if (!raw || raw.metadata?.deletionTimestamp) return this.forget(key);
    const dj = this.load(raw);
    if (typeof dj === "string") return this.rejectInvalid(key, raw, dj);
    dj.status = this.previousStatus(key, dj, raw);
    const cachedJob = this.o.reader.job(namespace, jobNameFor(name));
    if (isTerminal(dj.status.phase) && !contradictedByCluster(dj.status, cachedJob)) {
      this.o.scraper?.untrack(key);
      return this.expire(dj);
    }
    if (contradictedByCluster(dj.status, cachedJob)) {
      // Someone else's final status on a running job: remove its claims; the derived status replaces the rest.
      await this.o.writer.clearStatus?.(namespace, name, CLAIMED_STATUS_FIELDS);
    }
    // Always-patch (as Cluster API's reconcilers do): a failed apply still ends in a derived status, with a
    // Synced condition that says what failed; the error is then returned, so the key is retried with backoff.
    let applyError: unknown;
    const observed = await this.applyChildren(dj).catch((error: unknown): Observed => {
      // Refused as invalid before the trainer Job exists: final (Failed/InvalidSpec), not retried.
      const refused = refusalMessage(error);
      if (refused !== undefined && !cachedJob) return { ...this.cachedChildren(dj), refused };
      applyError = error;
      return this.cachedChildren(dj);
    });
    observed.events = this.jobEvents(observed.job);
    const now = this.now().toISOString();
    // Derive from a held status when there is one, so its conditions keep their first transition times.
    const base = { ...dj, status: this.heldStatus(key, dj) ?? dj.status };
    const derived = deriveStatus(base, observed, now, this.o.scraper?.latest(key));
    if (isTerminal(derived.phase)) await this.stopUnfinished(observed.job);
    // A job that has finished needs no children any more: an apply failing then is no failure of the job.
    if (isTerminal(derived.phase)) applyError = undefined;
    const status = this.withTrainerStatus(
      key,
      withSynced(derived, applyError, now, dj.metadata.generation),
      base.status,
      now,
    );
    this.trackProgress(key, dj, status, observed);
    const held = await this.patchStatus(key, dj, status, applyError !== undefined);
    if (applyError !== undefined) throw applyError;
    if (isTerminal(status.phase)) return this.expire({ ...dj, status });
    return withDeadline(held, pendingDeadlineIn(dj, status, now));
  }

  /** The child Job's FailedCreate events (this Job's, by uid: not those of an earlier one of the same name). */
  private jobEvents(job: V1Job | undefined): CoreV1Event[] {
    const { namespace, name, uid } = job?.metadata ?? {};
    if (!this.o.reader.jobEvents || !namespace || !name) return [];
    return this.o.reader.jobEvents(namespace, name).filter((e) => !uid || e.involvedObject.uid === uid);
  }

  /** A job that failed without its Job (pendingDeadlineSeconds) suspends it: the Job controller removes its pod. */
  private async stopUnfinished(job: V1Job | undefined): Promise<void> {
    const { namespace, name } = job?.metadata ?? {};
    if (!job || !namespace || !name || jobFinished(job) || job.spec?.suspend) return;
    await this.o.writer.patchJob(namespace, name, { suspend: true });
  }

  private forget(key: string): ReconcileResult {
    this.o.scraper?.untrack(key);
    this.written.delete(key);
    this.held.delete(key);
    return {};
  }

  private heldStatus(key: string, dj: OwnerJob): DistillationJobStatus | undefined {
    const held = this.held.get(key);
    return held?.uid === dj.metadata.uid ? held.status : undefined;
  }

  /** Parses and defaults the object; for one the schema refuses, the message naming each bad field. */
  private load(raw: unknown): OwnerJob | string {
    const { status, ...manifest } = raw as Record<string, unknown>;
    try {
      const dj = parseDistillationJob({ ...manifest, apiVersion: API_VERSION, kind: KIND }) as OwnerJob;
      dj.status = (status ?? {}) as DistillationJobStatus;
      return dj;
    } catch (error) {
      return error instanceof ConfigError ? error.message : String(error);
    }
  }

  /**
   * A spec the CRD let through but our schema refuses (a CRD older than the operator, or validation bypassed).
   * Always a Warning event naming the fields. A job that never started is also marked Failed/InvalidSpec (its
   * spec is immutable, so it cannot be fixed in place: recreate it). A job whose trainer Job already exists keeps
   * its status and its running trainer: an operator upgrade must not fail work in flight. Not retried: nothing
   * changes until the object does.
   */
  private async rejectInvalid(key: string, raw: unknown, message: string): Promise<ReconcileResult> {
    const { metadata, status: current } = raw as {
      metadata: OwnerJob["metadata"];
      status?: DistillationJobStatus;
    };
    const { namespace, name, uid, generation } = metadata;
    const ref = { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace, uid } };
    this.o.events.record(ref, "Warning", "InvalidSpec", message);
    this.forget(key);
    const previous = current ?? {};
    if (isTerminal(previous.phase) || this.o.reader.job(namespace, jobNameFor(name))) return {};
    const status = invalidSpecStatus(previous, message, this.now().toISOString(), generation);
    await this.o.writer.applyStatus(namespace, name, status);
    this.o.log?.("warn", "invalid spec", { namespace, name, message });
    return {};
  }

  private previousStatus(key: string, dj: OwnerJob, raw: unknown): DistillationJobStatus {
    const cached = (raw as { status?: DistillationJobStatus }).status ?? {};
    const written = this.written.get(key);
    // resourceVersions are opaque (never compared as numbers, as the API conventions require): while the cache
    // still shows the very version our write replaced, it has not caught up, and our status is the newer one.
    const behind =
      written?.uid === dj.metadata.uid &&
      written.basedOn !== undefined &&
      written.basedOn === dj.metadata.resourceVersion;
    return behind && written ? written.status : cached;
  }

  private async applyChildren(dj: OwnerJob): Promise<Observed> {
    const { namespace, name } = dj.metadata;
    const configMap = withHash(buildConfigMap(dj));
    if (!configMapCurrent(configMap, this.o.reader.configMap(namespace, configMapNameFor(name)))) {
      await this.o.writer.applyConfigMap(configMap);
    }
    const cachedJob = this.o.reader.job(namespace, jobNameFor(name));
    const desired = withHash(
      buildJob(dj, {
        trainerImage: this.o.trainerImage,
        observedSuspend: cachedJob?.spec?.suspend,
        ...(this.o.resourceDefaults ? { resourceDefaults: this.o.resourceDefaults } : {}),
      }),
    );
    return { job: await this.applyJob(desired, cachedJob), pods: this.o.reader.pods(namespace, name) };
  }

  /**
   * A new Job is applied whole; an existing one gets only its mutable fields (job-update.ts): it keeps the pod
   * template it was created with, also when this operator would build another one (a new trainer image).
   */
  private async applyJob(desired: V1Job, cached: V1Job | undefined): Promise<V1Job> {
    if (!cached) return this.o.writer.applyJob(desired);
    const update = jobSpecUpdate(desired, cached);
    if (!update) return cached;
    const { namespace, name } = desired.metadata as { namespace: string; name: string };
    return this.o.writer.patchJob(namespace, name, update);
  }

  /** What the caches show of the children, for a status derived after a failed apply. */
  private cachedChildren(dj: OwnerJob): Observed {
    const { namespace, name } = dj.metadata;
    return { job: this.o.reader.job(namespace, jobNameFor(name)), pods: this.o.reader.pods(namespace, name) };
  }

  /** status.trainerStatus (Kubeflow Trainer's shape) next to status.progress (progress/document.ts). */
  private withTrainerStatus(
    key: string,
    status: DistillationJobStatus,
    previous: DistillationJobStatus,
    now: string,
  ): DistillationJobStatus {
    const latest = this.o.scraper?.trainerStatus(key);
    const trainerStatus = trainerStatusFor(status, previous.trainerStatus, latest, now);
    return trainerStatus ? { ...status, trainerStatus } : status;
  }

  /** Scrape progress only while a trainer pod runs with a metrics port. */
  private trackProgress(key: string, dj: OwnerJob, status: DistillationJobStatus, observed: Observed): void {
    if (!this.o.scraper) return;
    const port = dj.spec.metrics.port;
    const running = observed.pods.find(
      (p) => p.status?.phase === "Running" && p.status.podIP && !p.metadata?.deletionTimestamp,
    );
    if (status.phase === "Running" && port > 0 && running?.status?.podIP) {
      this.o.scraper.track(key, { podIP: running.status.podIP, port });
    } else {
      this.o.scraper.untrack(key);
    }
  }

  /** Writes a changed status, unless it is transient and young: then says when to come back and write it. */
  private async patchStatus(
    key: string,
    dj: OwnerJob,
    status: DistillationJobStatus,
    urgent = false,
  ): Promise<ReconcileResult> {
    const previous = dj.status ?? {};
    if (sameJson(previous, status)) {
      this.held.delete(key);
      return {};
    }
    const waitMs = urgent ? 0 : this.holdTime(key, dj.metadata.uid, status);
    if (waitMs > 0) return { requeueAfterMs: waitMs };
    this.held.delete(key);
    const { namespace, name, uid } = dj.metadata;
    const resourceVersion = await this.o.writer.applyStatus(namespace, name, status);
    if (resourceVersion) this.written.set(key, { uid, basedOn: dj.metadata.resourceVersion, status });
    this.announce(dj, previous, status);
    this.announceSynced(dj, previous, status);
    return {};
  }

  /** Milliseconds a transient status may still wait (0: write now); remembers it meanwhile. */
  private holdTime(key: string, uid: string, status: DistillationJobStatus): number {
    const holdMs = this.o.transientHoldMs ?? DEFAULT_TRANSIENT_HOLD_MS;
    if (holdMs <= 0 || !isTransient(status)) return 0;
    const now = this.now().getTime();
    const held = this.held.get(key);
    const since = held?.uid === uid ? held.since : now;
    const remaining = since + holdMs - now;
    if (remaining > 0) this.held.set(key, { uid, status, since });
    return Math.max(0, remaining);
  }

  /**
   * One event per phase transition, and one when a pending job gets stuck for a new reason (Unschedulable,
   * image pulls, crash loops, retries); not for the transient steps in between.
   */
  private announce(dj: OwnerJob, previous: DistillationJobStatus, status: DistillationJobStatus): void {
    const before = findCondition(previous.conditions, "Running");
    const after = findCondition(status.conditions, "Running");
    const phaseChanged = previous.phase !== status.phase;
    const newReason = before?.reason !== after?.reason && !TRANSIENT_REASONS.has(after?.reason ?? "");
    if (!phaseChanged && !newReason) return;
    const reason = status.phase === "Succeeded" ? "Succeeded" : (after?.reason ?? status.phase ?? "Pending");
    const failing = status.phase === "Failed" || WARNING_REASONS.has(reason);
    const message = `${previous.phase ?? "New"} -> ${status.phase}: ${after?.message ?? ""}`.trim();
    const { name, namespace, uid } = dj.metadata;
    this.o.events.record(
      { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace, uid } },
      failing ? "Warning" : "Normal",
      reason,
      message,
    );
    this.o.log?.("info", "phase", { namespace, name, from: previous.phase, to: status.phase, reason });
    if (phaseChanged && isTerminal(status.phase) && status.startTime && status.completionTime) {
      const seconds = (Date.parse(status.completionTime) - Date.parse(status.startTime)) / 1000;
      this.o.onFinished?.(status.phase!, Math.max(0, seconds));
    }
  }

  /** A Warning event when an apply starts failing or fails differently; a Normal one when it recovers. */
  private announceSynced(dj: OwnerJob, previous: DistillationJobStatus, status: DistillationJobStatus): void {
    const before = findCondition(previous.conditions, SYNCED);
    const after = findCondition(status.conditions, SYNCED);
    if (!after || (before?.status === after.status && before.message === after.message)) return;
    const { name, namespace, uid } = dj.metadata;
    const failing = after.status === "False";
    this.o.events.record(
      { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace, uid } },
      failing ? "Warning" : "Normal",
      after.reason,
      after.message,
    );
    if (failing) this.o.log?.("warn", "apply failed", { namespace, name, message: after.message });
  }

  /** ttlSecondsAfterFinished: delete the finished DistillationJob (children follow by GC), or come back when due. */
  private async expire(dj: OwnerJob): Promise<ReconcileResult> {
    const ttl = dj.spec.runPolicy.ttlSecondsAfterFinished;
    const finished = toIso(dj.status?.completionTime);
    if (ttl === undefined || !finished) return {};
    const dueMs = Date.parse(finished) + ttl * 1000 - this.now().getTime();
    // Node's timers overflow past 2^31-1 ms (~24.8 days) and fire at once: wait at most that, then look again.
    if (dueMs > 0) return { requeueAfterMs: Math.min(dueMs, MAX_TIMER_MS) };
    const { namespace, name, uid } = dj.metadata;
    await this.o.writer.deleteDistillationJob(namespace, name, uid);
    this.o.log?.("info", "deleted after ttlSecondsAfterFinished", { namespace, name, ttl });
    this.written.delete(keyOf(namespace, name));
    this.held.delete(keyOf(namespace, name));
    return {};
  }
}
