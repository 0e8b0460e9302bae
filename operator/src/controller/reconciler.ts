// The reconciler, in phases like Cluster API's machine controller: a ReconcileScope is built once (the job, its
// cached children), then each phase reads and extends it (finished? -> claims cleared -> children applied ->
// status derived -> unfinished Job stopped -> trainerStatus -> progress steering), and the status is written
// last by the StatusWriter (only when it changed), whatever the apply did. Reads come from informer caches,
// writes go through ClusterWriter; events are eventsFor(previous, next); TTL expiry is ttl.ts.
import type { CoreV1Event, V1ConfigMap, V1Job, V1Pod } from "@kubernetes/client-node";
import {
  API_VERSION,
  ConfigError,
  KIND,
  parseDistillationJob,
  type DistillationJobStatus,
  type Phase,
} from "../../../api/v1alpha1/index.ts";
import { configMapNameFor, FIELD_MANAGER, jobNameFor, keyOf, legacyJobNameFor, splitKey } from "../names.ts";
import type { OwnerJob } from "../owner-job.ts";
import { trainerStatusFor } from "../progress/status-from-document.ts";
import type { ProgressScraper } from "../progress/scraper.ts";
import { ConditionType, findCondition, setCondition } from "../status/conditions.ts";
import {
  contradictedByCluster,
  deriveStatus,
  invalidSpecStatus,
  isTerminal,
  pendingDeadlineIn,
  truncateMessage,
  type Observed,
} from "../status/derive.ts";
import {
  applyConfigMap,
  applyJob,
  desiredConfigMap,
  desiredJob,
  stopUnfinishedJob,
  type ChildOptions,
} from "./children.ts";
import type { ClusterWriter } from "./kube.ts";
import { initializing } from "../status/storage.ts";
import { resumesFrom } from "../status/disruption.ts";
import { checkedStatus, foreignStatusFields, withoutFields } from "../status/trust.ts";
import { sameJson } from "./canonical.ts";
import { isControlledBy, NameConflictError } from "./ownership.ts";
import { loadOwner, rejectInvalidSpec, type RawOwner } from "./owner-load.ts";
import { refusalMessage } from "./refusal.ts";
import { wallNow } from "../lib/clock.ts";
import { StatusWriter } from "./status-writer.ts";
import { CreatedJobs } from "./expectations.ts";
import { eventsFor, finishedSeconds } from "./transitions.ts";
import { MAX_TIMER_MS, ttlDueInMs } from "./ttl.ts";

export { SPEC_HASH_ANNOTATION } from "./children.ts";
export { DEFAULT_TRANSIENT_HOLD_MS, isTransient } from "./status-writer.ts";
export { MAX_TIMER_MS };

/** What a status written by someone else may claim that the operator's own status would not correct. */
const CLAIMED_STATUS_FIELDS = ["result", "completionTime", "progress"];

export interface ClusterReader {
  distillationJob(namespace: string, name: string): unknown;
  job(namespace: string, name: string): V1Job | undefined;
  configMap(namespace: string, name: string): V1ConfigMap | undefined;
  /** Pods the child Job controls (by its UID: not by labels, which anyone may change). */
  pods(namespace: string, job: V1Job): V1Pod[];
  /** FailedCreate events of the child Job (quota, PriorityClass admission refusing its pod). */
  jobEvents?(namespace: string, jobName: string): CoreV1Event[];
  /** The final state of the child Job's disrupted pods deleted lately (controller/deleted-pods.ts). */
  deletedPods?(namespace: string, job: V1Job): V1Pod[];
}

export interface EventSink {
  record(
    obj: { apiVersion: string; kind: string; metadata: { name: string; namespace: string; uid: string } },
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): void;
}

export interface ReconcilerOptions extends ChildOptions {
  reader: ClusterReader;
  writer: ClusterWriter;
  events: EventSink;
  scraper?: Pick<ProgressScraper, "track" | "untrack" | "latest" | "trainerStatus"> &
    Partial<Pick<ProgressScraper, "latestFetch">>;
  now?: () => Date;
  onFinished?: (phase: Phase, seconds: number) => void;
  log?: (level: "info" | "warn" | "debug", message: string, meta: Record<string, unknown>) => void;
  /** How long a transient status may be held back (default DEFAULT_TRANSIENT_HOLD_MS; 0 writes at once). */
  transientHoldMs?: number;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** Everything one reconcile knows, built once and extended phase by phase. */
export interface ReconcileScope {
  key: string;
  /** Parsed and defaulted; its status is the newest we know (ours while the cache is behind). */
  dj: OwnerJob;
  /** The name of the child Job (legacyJobNameFor when a Job of this job has that one). */
  jobName: string;
  /** The child Job as the cache showed it when the reconcile began; only one this DistillationJob controls. */
  cachedJob: V1Job | undefined;
  cachedConfigMap: V1ConfigMap | undefined;
  /** Why the children are not applied: a foreign object holds a name (final), or an earlier one's (wait). */
  conflict?: { message: string; final: boolean };
  /** Being deleted (a finalizer holds it): nothing is applied, the status stays honest until it is gone. */
  deleting: boolean;
  /** Status fields other field managers wrote: dropped before deriving, and removed from the object. */
  foreignFields: string[];
  /** The stored status did not pass the checks (status/trust.ts): it is written even if nothing else changed. */
  untrusted: boolean;
  /** The children after the apply (or as cached, when it failed). */
  observed?: Observed;
  /** Why the apply failed, when it did (and the job still needs its children). */
  applyError?: unknown;
  /** The status derived from what was held back, if anything was (its conditions keep their first times). */
  base?: DistillationJobStatus;
  /** The status to write. */
  status?: DistillationJobStatus;
  now?: string;
}

/** A phase reads the scope and extends it (sync or async: its return value is only awaited). */
type ReconcilePhase = (scope: ReconcileScope) => unknown;

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
  if (!failed && !findCondition(status.conditions, ConditionType.Synced)) return status;
  const update = failed
    ? {
        type: ConditionType.Synced,
        status: "False" as const,
        reason: "ApplyFailed",
        message: truncateMessage(
          `applying the trainer's ConfigMap or Job failed: ${errorMessage(applyError)}`,
        ),
      }
    : {
        type: ConditionType.Synced,
        status: "True" as const,
        reason: "Applied",
        message: "the children are applied",
      };
  return { ...status, conditions: setCondition(status.conditions, update, now, generation) };
}

/** Comes back by the pending deadline too (never later than a Node timer allows). */
export function withDeadline(result: ReconcileResult, deadlineMs: number | undefined): ReconcileResult {
  if (deadlineMs === undefined) return result;
  const ms = Math.min(Math.max(deadlineMs, 0) + 1, MAX_TIMER_MS);
  return { requeueAfterMs: Math.min(result.requeueAfterMs ?? ms, ms) };
}

/** Parses and defaults the object; for one the schema refuses, the message naming each bad field. */
function load(raw: unknown): OwnerJob | string {
  const { status, ...manifest } = raw as Record<string, unknown>;
  try {
    const dj = parseDistillationJob({ ...manifest, apiVersion: API_VERSION, kind: KIND }) as OwnerJob;
    dj.status = (status ?? {}) as DistillationJobStatus;
    return dj;
  } catch (error) {
    return error instanceof ConfigError ? error.message : String(error);
  }
}

/** Drops other managers' fields and checks the rest (status/trust.ts). */
function trustedStatus(
  status: DistillationJobStatus,
  foreignFields: readonly string[],
  now: string,
): DistillationJobStatus {
  const checked = checkedStatus(withoutFields(status, foreignFields), now);
  // A final status needs its completion time (the TTL counts from it): when it was not believable, from now.
  return isTerminal(checked.phase) && !checked.completionTime ? { ...checked, completionTime: now } : checked;
}

/**
 * Why the run restarts from outside, if it does: its Job was deleted (we create it again), or suspended by
 * someone other than runPolicy or Kueue (we resume it). The Job controller's counts start again either way.
 */
function restartOf(dj: OwnerJob, cached: V1Job | undefined, desired: V1Job): string | undefined {
  const previous = dj.status ?? {};
  const checkpoints = resumesFrom(dj);
  const ranBefore = findCondition(previous.conditions, ConditionType.Created)?.status === "True";
  if (!cached && ranBefore && previous.jobName && !isTerminal(previous.phase)) {
    return `the trainer Job ${previous.jobName} was deleted by someone; a new one is created and training restarts ${checkpoints}`;
  }
  const resumedByUs = cached?.spec?.suspend === true && desired.spec?.suspend === false;
  if (resumedByUs && !dj.spec.queueName && previous.phase !== "Suspended") {
    return `someone suspended the trainer Job ${cached.metadata?.name}, which stopped its pod; it is resumed and training restarts ${checkpoints}`;
  }
  return undefined;
}

/**
 * A child's name held by an object this job does not control: final (NameConflict), unless it is the child of
 * an earlier DistillationJob of the same name on its way out (the garbage collector removes it; then we apply).
 */
function conflictOf(
  dj: OwnerJob,
  kind: string,
  obj: V1Job | V1ConfigMap,
): { message: string; final: boolean } {
  const owner = obj.metadata?.ownerReferences?.find((r) => r.controller);
  const previous = owner?.kind === KIND && owner.name === dj.metadata.name;
  if (previous || obj.metadata?.deletionTimestamp) {
    const message = `the ${kind} ${obj.metadata?.name} of an earlier DistillationJob of this name is being deleted`;
    return { message, final: false };
  }
  const error = new NameConflictError(kind, obj.metadata?.name ?? "", dj.metadata.namespace, obj);
  return { message: error.message, final: true };
}

const objectRef = (dj: { metadata: { name: string; namespace: string; uid: string } }) => {
  const { name, namespace, uid } = dj.metadata;
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace, uid } };
};

export class Reconciler {
  private readonly o: ReconcilerOptions;
  private readonly statusWriter: StatusWriter;
  /** Jobs created but not yet in the cache (expectations.ts). */
  private readonly createdJobs = new CreatedJobs();
  private readonly phases: readonly ReconcilePhase[] = [
    (s) => this.clearClaims(s),
    (s) => this.applyChildren(s),
    (s) => this.derive(s),
    (s) => this.stopUnfinished(s),
    (s) => this.mergeTrainerStatus(s),
    (s) => this.steerProgress(s),
  ];

  constructor(options: ReconcilerOptions) {
    this.o = options;
    this.statusWriter = new StatusWriter(options.writer, () => this.now(), options.transientHoldMs);
  }

  private now(): Date {
    return this.o.now?.() ?? wallNow();
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const scope = this.scopeFor(key);
    if (!scope) return this.forget(key);
    if ("invalid" in scope) return this.rejectInvalid(key, scope.raw, scope.invalid);
    if (this.isFinished(scope)) {
      // A final status is not derived again, but what others wrote into it is removed all the same.
      await this.clearClaims(scope);
      if (scope.untrusted) await this.writeStatus({ ...scope, status: scope.dj.status! });
      return scope.deleting ? {} : this.expire(scope.dj);
    }
    for (const phase of this.phases) await phase(scope);
    // Always-patch (as Cluster API's reconcilers do): a failed apply still ends in a derived status, with a
    // Synced condition that says what failed; the error is then returned, so the key is retried with backoff.
    const held = await this.writeStatus(scope);
    if (scope.applyError !== undefined) throw scope.applyError;
    const status = scope.status!;
    if (isTerminal(status.phase)) return this.expire({ ...scope.dj, status });
    return withDeadline(held, pendingDeadlineIn(scope.dj, status, scope.now!));
  }

  /** The scope; undefined for a job that is gone or going; the schema's message for one it refuses. */
  private scopeFor(
    key: string,
  ): ReconcileScope | { invalid: string; raw: RawOwner<DistillationJobStatus> } | undefined {
    const { namespace, name } = splitKey(key);
    const loaded = loadOwner<OwnerJob, DistillationJobStatus>(
      this.o.reader.distillationJob(namespace, name),
      load,
    );
    if (!loaded || "invalid" in loaded) return loaded;
    const { owner: dj, raw } = loaded;
    const previous = this.statusWriter.previous(key, dj, raw.status ?? {});
    const foreignFields = foreignStatusFields(raw.metadata, FIELD_MANAGER);
    dj.status = trustedStatus(previous, foreignFields, this.now().toISOString());
    const jobName = this.jobNameOf(dj);
    const job = this.createdJobs.observe(key, jobName, this.o.reader.job(namespace, jobName));
    const configMap = this.o.reader.configMap(namespace, configMapNameFor(name));
    const scope: ReconcileScope = {
      key,
      dj,
      jobName,
      cachedJob: isControlledBy(job, dj.metadata.uid) ? job : undefined,
      cachedConfigMap: isControlledBy(configMap, dj.metadata.uid) ? configMap : undefined,
      deleting: Boolean(raw.metadata?.deletionTimestamp),
      foreignFields,
      untrusted: !sameJson(previous, dj.status),
    };
    const foreign =
      (job && !scope.cachedJob && { kind: "Job", obj: job }) ||
      (configMap && !scope.cachedConfigMap && { kind: "ConfigMap", obj: configMap });
    if (foreign) scope.conflict = conflictOf(dj, foreign.kind, foreign.obj);
    return scope;
  }

  /** The child Job's name: the injective one, or the legacy one an existing Job of this job already has. */
  private jobNameOf(dj: OwnerJob): string {
    const { namespace, name, uid } = dj.metadata;
    const legacy = legacyJobNameFor(name);
    if (legacy && isControlledBy(this.o.reader.job(namespace, legacy), uid)) return legacy;
    return jobNameFor(name);
  }

  /** A finished job (its final status uncontradicted by the cluster) only waits for its TTL. */
  private isFinished({ key, dj, cachedJob }: ReconcileScope): boolean {
    if (!isTerminal(dj.status?.phase) || contradictedByCluster(dj.status!, cachedJob)) return false;
    this.o.scraper?.untrack(key);
    return true;
  }

  /**
   * Phase: status fields someone else wrote, and someone else's final status on a running job, are removed (a
   * merge patch: server-side apply leaves other managers' fields in place); the derived status replaces them.
   */
  private async clearClaims({ dj, cachedJob, foreignFields }: ReconcileScope): Promise<void> {
    const claims = contradictedByCluster(dj.status ?? {}, cachedJob) ? CLAIMED_STATUS_FIELDS : [];
    const fields = [...new Set([...claims, ...foreignFields])];
    if (fields.length === 0) return;
    const { namespace, name } = dj.metadata;
    await this.o.writer.clearStatus?.(namespace, name, fields);
  }

  /** Phase: apply the ConfigMap and the Job; a failure is kept in the scope (and on the Synced condition). */
  private async applyChildren(scope: ReconcileScope): Promise<void> {
    const { dj, cachedJob, conflict } = scope;
    if (scope.deleting) {
      scope.observed = { job: cachedJob, pods: this.pods(cachedJob) };
      return;
    }
    if (conflict) {
      // Nothing of someone else's is adopted, patched or deleted: the job waits, or fails naming the object.
      const pods = this.pods(cachedJob);
      scope.observed = conflict.final
        ? { job: cachedJob, pods, conflict: conflict.message }
        : { job: cachedJob, pods, previousChildren: conflict.message };
      return;
    }
    try {
      await applyConfigMap(this.o.writer, desiredConfigMap(dj), scope.cachedConfigMap);
      const desired = desiredJob(dj, this.o, cachedJob?.spec?.suspend, scope.jobName);
      const job = await applyJob(this.o.writer, desired, cachedJob);
      if (!cachedJob) this.createdJobs.created(scope.key, job);
      const restart = restartOf(dj, cachedJob, desired);
      scope.observed = { job, pods: this.pods(job), ...(restart ? { restarted: true } : {}) };
      if (restart) this.o.events.record(objectRef(dj), "Warning", "Restarted", restart);
    } catch (error) {
      scope.observed = { job: cachedJob, pods: this.pods(cachedJob) };
      // Refused as invalid before the trainer Job exists: final (Failed/InvalidSpec), not retried.
      const refused = refusalMessage(error);
      if (error instanceof NameConflictError) scope.observed.conflict = error.message;
      else if (refused !== undefined && !cachedJob) scope.observed.refused = refused;
      else {
        scope.applyError = error;
        scope.observed.applyError = errorMessage(error);
      }
    }
    scope.observed.events = this.jobEvents(scope.observed.job);
    const deleted = this.deletedPods(scope.observed.job);
    if (deleted.length) scope.observed.deletedPods = deleted;
  }

  /** Phase: the status from the children (from a held status when there is one, to keep its transition times). */
  private derive(scope: ReconcileScope): void {
    const { key, dj } = scope;
    const now = this.now().toISOString();
    scope.now = now;
    if (scope.deleting && !scope.observed?.job) {
      // Its Job already collected (foreground deletion): nothing more to observe, and "creating" would be untrue.
      scope.status = dj.status ?? {};
      return;
    }
    scope.base = this.statusWriter.heldStatus(key, dj) ?? dj.status;
    const fetching = this.o.scraper?.latestFetch?.(key);
    const derived = deriveStatus(
      { ...dj, status: scope.base },
      fetching ? { ...scope.observed!, fetching } : scope.observed!,
      now,
      this.o.scraper?.latest(key),
    );
    // A job that has finished needs no children any more: an apply failing then is no failure of the job, and
    // Synced keeps saying how the last apply went (never "applied" for children that never were).
    if (isTerminal(derived.phase)) {
      scope.applyError = undefined;
      scope.status = derived;
      return;
    }
    scope.status = withSynced(derived, scope.applyError, now, dj.metadata.generation);
  }

  /** Phase: a job that failed without its Job (pendingDeadlineSeconds) stops it: the Job controller removes its pod. */
  private async stopUnfinished({ status, observed, deleting }: ReconcileScope): Promise<void> {
    if (deleting || !isTerminal(status?.phase)) return;
    await stopUnfinishedJob(this.o.writer, observed?.job);
  }

  /** Phase: status.trainerStatus (Kubeflow Trainer's shape) next to status.progress (progress/status-from-document.ts). */
  private mergeTrainerStatus(scope: ReconcileScope): void {
    const latest = this.o.scraper?.trainerStatus(scope.key);
    const trainerStatus = trainerStatusFor(scope.status!, scope.base?.trainerStatus, latest, scope.now!);
    if (trainerStatus) scope.status = { ...scope.status!, trainerStatus };
  }

  /**
   * Phase: scrape progress only while a trainer pod runs with a metrics port, or its `fetch` initializer does
   * (the same address serves the bytes it has fetched: status/storage.ts).
   */
  private steerProgress({ key, dj, status, observed }: ReconcileScope): void {
    if (!this.o.scraper) return;
    const port = dj.spec.metrics.port;
    const live = observed!.pods.filter((p) => p.status?.podIP && !p.metadata?.deletionTimestamp);
    const running = live.find((p) => p.status?.phase === "Running");
    const fetching = live.find((p) => p.status?.phase === "Pending" && initializing(p));
    const pod = status!.phase === "Running" ? running : fetching;
    if (port > 0 && pod?.status?.podIP) {
      this.o.scraper.track(key, { podIP: pod.status.podIP, port });
    } else {
      this.o.scraper.untrack(key);
    }
  }

  /** The deferred status write, then its events. */
  private async writeStatus(scope: ReconcileScope): Promise<ReconcileResult> {
    const { key, dj, status, applyError, untrusted } = scope;
    const previous = dj.status ?? {};
    const outcome = await this.statusWriter.write(key, dj, status!, applyError !== undefined, untrusted);
    if (outcome.refused !== undefined) {
      const message = `the apiserver refused the derived status (a minimal one was written instead): ${outcome.refused}`;
      this.o.events.record(objectRef(dj), "Warning", "StatusRefused", truncateMessage(message));
      this.o.log?.("warn", "status refused", {
        namespace: dj.metadata.namespace,
        name: dj.metadata.name,
        message,
      });
    }
    if (outcome.written) this.announce(dj, previous, outcome.written);
    return outcome.requeueAfterMs !== undefined ? { requeueAfterMs: outcome.requeueAfterMs } : {};
  }

  private announce(dj: OwnerJob, previous: DistillationJobStatus, status: DistillationJobStatus): void {
    const { namespace, name } = dj.metadata;
    for (const { about, type, reason, message } of eventsFor(previous, status, resumesFrom(dj))) {
      this.o.events.record(objectRef(dj), type, reason, message);
      if (about === "phase") {
        this.o.log?.("info", "phase", { namespace, name, from: previous.phase, to: status.phase, reason });
      } else if (about === "disruption") {
        this.o.log?.("info", "trainer pod disrupted", { namespace, name, message });
      } else if (type === "Warning") {
        this.o.log?.("warn", "apply failed", { namespace, name, message });
      }
    }
    const seconds = finishedSeconds(previous, status);
    if (seconds !== undefined) this.o.onFinished?.(status.phase!, seconds);
  }

  /** The pods the child Job controls. */
  private pods(job: V1Job | undefined): V1Pod[] {
    const namespace = job?.metadata?.namespace;
    return job && namespace ? this.o.reader.pods(namespace, job) : [];
  }

  /** The child Job's disrupted pods deleted lately (their final state). */
  private deletedPods(job: V1Job | undefined): V1Pod[] {
    const namespace = job?.metadata?.namespace;
    return job && namespace && this.o.reader.deletedPods ? this.o.reader.deletedPods(namespace, job) : [];
  }

  /** The child Job's FailedCreate events (this Job's, by uid: not those of an earlier one of the same name). */
  private jobEvents(job: V1Job | undefined): CoreV1Event[] {
    const { namespace, name, uid } = job?.metadata ?? {};
    if (!this.o.reader.jobEvents || !namespace || !name) return [];
    return this.o.reader.jobEvents(namespace, name).filter((e) => !uid || e.involvedObject.uid === uid);
  }

  private forget(key: string): ReconcileResult {
    this.o.scraper?.untrack(key);
    this.statusWriter.forget(key);
    this.createdJobs.forget(key);
    return {};
  }

  /** A spec the CRD let through but our schema refuses: owner-load.ts's rejectInvalidSpec, with the job's status. */
  private async rejectInvalid(
    key: string,
    raw: RawOwner<DistillationJobStatus>,
    message: string,
  ): Promise<ReconcileResult> {
    this.forget(key);
    await rejectInvalidSpec(raw, message, this.now().toISOString(), {
      kind: KIND,
      events: this.o.events,
      firstJob: (namespace, name) => this.o.reader.job(namespace, jobNameFor(name)),
      failedStatus: invalidSpecStatus,
      applyStatus: (namespace, name, status) => this.o.writer.applyStatus(namespace, name, status),
      ...(this.o.log ? { log: this.o.log } : {}),
    });
    return {};
  }

  /** ttlSecondsAfterFinished: delete the finished DistillationJob (children follow by GC), or come back when due. */
  private async expire(dj: OwnerJob): Promise<ReconcileResult> {
    const dueMs = ttlDueInMs(dj, this.now());
    if (dueMs === undefined) return {};
    // Node's timers overflow past 2^31-1 ms (~24.8 days) and fire at once: wait at most that, then look again.
    if (dueMs > 0) return { requeueAfterMs: Math.min(dueMs, MAX_TIMER_MS) };
    const { namespace, name, uid } = dj.metadata;
    await this.o.writer.deleteDistillationJob(namespace, name, uid);
    const ttl = dj.spec.runPolicy.ttlSecondsAfterFinished;
    this.o.log?.("info", "deleted after ttlSecondsAfterFinished", { namespace, name, ttl });
    this.statusWriter.forget(keyOf(namespace, name));
    return {};
  }
}
