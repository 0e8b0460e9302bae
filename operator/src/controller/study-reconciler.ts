// The DistillationStudy reconciler, beside the DistillationJob one and built from the same parts (the informers,
// work queue and status writer of the manager, the ClusterWriter, ownership, the condition table): a scope is
// built once (the study and its cached children), then phases extend it — children applied stage by stage
// (ConfigMap and teacher Job; the variants Job once the teacher Job completed; the report Job once the variants
// Job ended with at least one run succeeded), status derived (status/study.ts), a stage's Job stopped when the
// study ended without it (the pending deadline) — and the status is written last, coalesced, with one event per
// phase change and per variant that ended (aggregated per write); the reconcile comes back by the deadline.
import type { CoreV1Event, V1ConfigMap, V1Job, V1Pod } from "@kubernetes/client-node";
import {
  API_VERSION,
  DistillationStudy,
  quantityValue,
  STUDY_KIND,
  type DistillationStudyStatus,
  type Phase,
} from "../../../api/v1alpha1/index.ts";
import type { JobBuildOptions } from "../builders/job.ts";
import { STAGE_BUILDERS, buildStudyConfigMap, type OwnerStudy, type StudyStage } from "../builders/study.ts";
import { keyOf, splitKey, studyConfigMapNameFor, studyJobNameFor } from "../names.ts";
import { isTerminal, jobFinished, pendingDeadlineIn, truncateMessage } from "../status/derive.ts";
import {
  deriveStudyStatus,
  invalidStudySpecStatus,
  studyAsJob,
  variantEndEvents,
  type DeviceCount,
  type StageObserved,
  type StudyObserved,
  type VariantEvent,
} from "../status/study.ts";
import {
  applyConfigMap,
  applyJob,
  stopUnfinishedJob,
  withHash,
  withNodeLossTolerations,
  type ChildOptions,
} from "./children.ts";
import { DEFAULT_RESOURCES } from "../builders/job.ts";
import type { ClusterWriter } from "./kube.ts";
import { isControlledBy, NameConflictError } from "./ownership.ts";
import { loadOwner, rejectInvalidSpec, type RawOwner } from "./owner-load.ts";
import { refusalMessage } from "./refusal.ts";
import { withDeadline, type EventSink, type ReconcileResult } from "./reconciler.ts";
import { refusedConditions, StatusWriter } from "./status-writer.ts";
import type { StudyWriter } from "./study-kube.ts";
import { eventsFor } from "./transitions.ts";
import { MAX_TIMER_MS } from "./ttl.ts";

export interface StudyReader {
  study(namespace: string, name: string): unknown;
  job(namespace: string, name: string): V1Job | undefined;
  configMap(namespace: string, name: string): V1ConfigMap | undefined;
  /** Pods a Job controls (by its UID). */
  pods(namespace: string, job: V1Job): V1Pod[];
  jobEvents?(namespace: string, jobName: string): CoreV1Event[];
}

export interface StudyReconcilerOptions extends ChildOptions {
  reader: StudyReader;
  /** The children's writes (shared with the DistillationJob reconciler). */
  writer: Pick<ClusterWriter, "applyConfigMap" | "applyJob" | "patchJob">;
  studyWriter: StudyWriter;
  events: EventSink;
  now?: () => Date;
  log?: (level: "info" | "warn" | "debug", message: string, meta: Record<string, unknown>) => void;
  transientHoldMs?: number;
}

const STAGES: readonly StudyStage[] = ["teacher", "variants", "report"];

/** Everything one reconcile knows, built once and extended phase by phase. */
interface StudyScope {
  key: string;
  study: OwnerStudy;
  cached: Record<StudyStage, V1Job | undefined>;
  cachedConfigMap: V1ConfigMap | undefined;
  conflict?: { message: string; final: boolean };
  deleting: boolean;
  observed?: StudyObserved;
  applyError?: unknown;
  status?: DistillationStudyStatus;
  now?: string;
}

/** A parsed study, or the schema's message. */
function load(raw: unknown): OwnerStudy | string {
  const parsed = DistillationStudy.safeParse(raw);
  if (!parsed.success)
    return parsed.error.issues
      .map((i) => `${["spec", ...i.path.slice(1)].join(".")}: ${i.message}`)
      .join("; ");
  return parsed.data as OwnerStudy;
}

const objectRef = (study: { metadata: { name: string; namespace: string; uid: string } }) => {
  const { name, namespace, uid } = study.metadata;
  return { apiVersion: API_VERSION, kind: STUDY_KIND, metadata: { name, namespace, uid } };
};

/** Whether a Job ended with at least one index (or its one pod) succeeded. */
const anySucceeded = (job: V1Job | undefined) => (job?.status?.succeeded ?? 0) > 0;
const completed = (job: V1Job | undefined) =>
  job?.status?.conditions?.some((c) => c.type === "Complete" && c.status === "True") ?? false;

/** Minimal status after a refused write: phase, stage and conditions (as the job writer's minimalStatus). */
function minimalStudyStatus(status: DistillationStudyStatus): DistillationStudyStatus {
  const { phase, stage, observedGeneration, startTime, completionTime, runs, succeeded, failed } = status;
  const conditions = refusedConditions(status.conditions, "study");
  return JSON.parse(
    JSON.stringify({
      phase,
      stage,
      conditions,
      observedGeneration,
      startTime,
      completionTime,
      runs,
      succeeded,
      failed,
    }),
  ) as DistillationStudyStatus;
}

/**
 * Devices a variant holds, for deviceSeconds: runtime.gpus, or with none its CPUs — the CPU limit, else the
 * request, of the template (else the operator's defaults), as the pod builder sets them.
 */
export function devicesOf(study: OwnerStudy, options: JobBuildOptions): DeviceCount {
  const { runtime } = study.spec.template;
  if (runtime.gpus > 0) return { devices: runtime.gpus, unit: "GPU" };
  const defaults = options.resourceDefaults ?? DEFAULT_RESOURCES;
  const cpu =
    runtime.resources?.limits?.cpu ??
    runtime.resources?.requests?.cpu ??
    defaults.limits.cpu ??
    defaults.requests.cpu ??
    "1";
  return { devices: quantityValue(cpu), unit: "CPU" };
}

/** One event per kind of ending per write: a single variant by itself, several in one line. */
function aggregate(events: VariantEvent[]): VariantEvent[] {
  const byReason = new Map<string, VariantEvent[]>();
  for (const e of events) byReason.set(e.reason, [...(byReason.get(e.reason) ?? []), e]);
  return [...byReason.values()].map((list) =>
    list.length === 1
      ? list[0]!
      : {
          ...list[0]!,
          message: truncateMessage(
            `${list.length} variants ${list[0]!.reason === "VariantSucceeded" ? "succeeded" : "failed"}: ` +
              list.map((e) => e.message.replace(/^variant /, "")).join("; "),
          ),
        },
  );
}

export class StudyReconciler {
  private readonly o: StudyReconcilerOptions;
  private readonly statusWriter: StatusWriter<DistillationStudyStatus>;
  private readonly phases: readonly ((s: StudyScope) => unknown)[] = [
    (s) => this.applyChildren(s),
    (s) => this.derive(s),
    (s) => this.stopUnfinished(s),
  ];

  constructor(options: StudyReconcilerOptions) {
    this.o = options;
    this.statusWriter = new StatusWriter<DistillationStudyStatus>(
      options.studyWriter,
      () => this.now(),
      options.transientHoldMs,
      minimalStudyStatus,
    );
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const scope = this.scopeFor(key);
    if (!scope) {
      this.statusWriter.forget(key);
      return {};
    }
    if ("invalid" in scope) return this.rejectInvalid(key, scope.raw, scope.invalid);
    if (isTerminal(scope.study.status?.phase as Phase | undefined))
      return scope.deleting ? {} : this.expire(scope.study);
    for (const phase of this.phases) await phase(scope);
    const held = await this.writeStatus(scope);
    if (scope.applyError !== undefined) throw scope.applyError;
    const status = scope.status!;
    if (isTerminal(status.phase as Phase | undefined)) return this.expire({ ...scope.study, status });
    return withDeadline(held, pendingDeadlineIn(studyAsJob(scope.study), status, scope.now!));
  }

  private scopeFor(
    key: string,
  ): StudyScope | { invalid: string; raw: RawOwner<DistillationStudyStatus> } | undefined {
    const { namespace, name } = splitKey(key);
    const loaded = loadOwner<OwnerStudy, DistillationStudyStatus>(this.o.reader.study(namespace, name), load);
    if (!loaded || "invalid" in loaded) return loaded;
    const { owner: study, raw } = loaded;
    study.status = this.statusWriter.previous(key, study, raw.status ?? {});
    const { uid } = study.metadata;
    const found = Object.fromEntries(
      STAGES.map((stage) => [stage, this.o.reader.job(namespace, studyJobNameFor(name, stage))]),
    ) as Record<StudyStage, V1Job | undefined>;
    const configMap = this.o.reader.configMap(namespace, studyConfigMapNameFor(name));
    const cached = Object.fromEntries(
      STAGES.map((stage) => [stage, isControlledBy(found[stage], uid) ? found[stage] : undefined]),
    ) as Record<StudyStage, V1Job | undefined>;
    const scope: StudyScope = {
      key,
      study,
      cached,
      cachedConfigMap: isControlledBy(configMap, uid) ? configMap : undefined,
      deleting: Boolean(raw.metadata?.deletionTimestamp),
    };
    const foreign =
      STAGES.map((stage) => found[stage] && !cached[stage] && { kind: "Job", obj: found[stage] }).find(
        Boolean,
      ) ||
      (configMap && !scope.cachedConfigMap && { kind: "ConfigMap", obj: configMap });
    if (foreign) {
      const error = new NameConflictError(
        foreign.kind,
        foreign.obj.metadata?.name ?? "",
        namespace,
        foreign.obj,
      );
      scope.conflict = {
        message: error.message.replace("DistillationJob", "DistillationStudy"),
        final: true,
      };
    }
    return scope;
  }

  private buildOptions(cached: V1Job | undefined): JobBuildOptions {
    return {
      ...(this.o.trainerImage ? { trainerImage: this.o.trainerImage } : {}),
      ...(this.o.trainerImagePullSecrets ? { trainerImagePullSecrets: this.o.trainerImagePullSecrets } : {}),
      ...(this.o.resourceDefaults ? { resourceDefaults: this.o.resourceDefaults } : {}),
      ...(cached?.spec?.suspend !== undefined ? { observedSuspend: cached.spec.suspend } : {}),
    };
  }

  /** A stage's Job: created when missing, its mutable fields (suspend) patched while it runs, left alone once done. */
  private async applyStage(scope: StudyScope, stage: StudyStage): Promise<V1Job> {
    const cached = scope.cached[stage];
    if (cached && jobFinished(cached)) return cached;
    const desired = STAGE_BUILDERS[stage](scope.study, this.buildOptions(cached));
    withNodeLossTolerations(desired, this.o.nodeLossTolerationSeconds);
    return applyJob(this.o.writer as ClusterWriter, withHash(desired), cached);
  }

  /** Which stages are due: the teacher always; the variants after it completed; the report after the variants. */
  private async applyChildren(scope: StudyScope): Promise<void> {
    const observe = (job: V1Job | undefined): StageObserved => ({
      ...(job ? { job } : {}),
      pods: this.pods(job),
      events: this.jobEvents(job),
    });
    const jobs: Record<StudyStage, V1Job | undefined> = { ...scope.cached };
    const done = () => {
      scope.observed = {
        ...scope.observed,
        teacher: observe(jobs.teacher),
        variants: observe(jobs.variants),
        report: observe(jobs.report),
      };
    };
    if (scope.deleting || scope.conflict) {
      done();
      if (scope.conflict) scope.observed!.conflict = scope.conflict.message;
      return;
    }
    try {
      await applyConfigMap(
        this.o.writer as ClusterWriter,
        withHash(buildStudyConfigMap(scope.study)),
        scope.cachedConfigMap,
      );
      jobs.teacher = await this.applyStage(scope, "teacher");
      if (completed(jobs.teacher)) jobs.variants = await this.applyStage(scope, "variants");
      if (jobs.variants && jobFinished(jobs.variants) && anySucceeded(jobs.variants))
        jobs.report = await this.applyStage(scope, "report");
      done();
    } catch (error) {
      done();
      const refused = refusalMessage(error);
      if (error instanceof NameConflictError) scope.observed!.conflict = error.message;
      else if (refused !== undefined && !jobs.teacher) scope.observed!.refused = refused;
      else {
        scope.applyError = error;
        scope.observed!.applyError = error instanceof Error ? error.message : String(error);
      }
    }
  }

  private derive(scope: StudyScope): void {
    const held = this.statusWriter.heldStatus(scope.key, scope.study);
    const study = held ? { ...scope.study, status: held } : scope.study;
    const devices = devicesOf(scope.study, this.buildOptions(undefined));
    scope.now = this.now().toISOString();
    scope.status = deriveStudyStatus(study, scope.observed!, scope.now, devices);
    if (isTerminal(scope.status.phase as Phase | undefined)) scope.applyError = undefined;
  }

  /** A study that ended with a stage unfinished (its pending deadline passed) stops that stage's Job. */
  private async stopUnfinished({ status, observed, deleting }: StudyScope): Promise<void> {
    if (deleting || !isTerminal(status?.phase as Phase | undefined)) return;
    for (const stage of STAGES) await stopUnfinishedJob(this.o.writer, observed?.[stage].job);
  }

  private async writeStatus(scope: StudyScope): Promise<ReconcileResult> {
    const { key, study, status, applyError } = scope;
    const previous = study.status ?? {};
    const outcome = await this.statusWriter.write(key, study, status!, applyError !== undefined);
    if (outcome.refused !== undefined) {
      const message = `the apiserver refused the derived status (a minimal one was written instead): ${outcome.refused}`;
      this.o.events.record(objectRef(study), "Warning", "StatusRefused", truncateMessage(message));
    }
    if (outcome.written) this.announce(study, previous, outcome.written);
    return outcome.requeueAfterMs !== undefined ? { requeueAfterMs: outcome.requeueAfterMs } : {};
  }

  private announce(
    study: OwnerStudy,
    previous: DistillationStudyStatus,
    next: DistillationStudyStatus,
  ): void {
    const ref = objectRef(study);
    const { namespace, name } = study.metadata;
    for (const { type, reason, message } of eventsFor(previous, next)) {
      this.o.events.record(ref, type, reason, message);
      this.o.log?.("info", "study", { namespace, name, from: previous.phase, to: next.phase, reason });
    }
    const unit = devicesOf(study, this.buildOptions(undefined)).unit;
    for (const e of aggregate(variantEndEvents(previous.variants, next.variants, unit)))
      this.o.events.record(ref, e.type, e.reason, e.message);
  }

  private pods(job: V1Job | undefined): V1Pod[] {
    const namespace = job?.metadata?.namespace;
    return job && namespace ? this.o.reader.pods(namespace, job) : [];
  }

  private jobEvents(job: V1Job | undefined): CoreV1Event[] {
    const { namespace, name, uid } = job?.metadata ?? {};
    if (!this.o.reader.jobEvents || !namespace || !name) return [];
    return this.o.reader.jobEvents(namespace, name).filter((e) => !uid || e.involvedObject.uid === uid);
  }

  /** A spec the CRD let through but the schema refuses: owner-load.ts's rejectInvalidSpec, with the study's status. */
  private async rejectInvalid(
    key: string,
    raw: RawOwner<DistillationStudyStatus>,
    message: string,
  ): Promise<ReconcileResult> {
    this.statusWriter.forget(key);
    await rejectInvalidSpec(raw, message, this.now().toISOString(), {
      kind: STUDY_KIND,
      events: this.o.events,
      firstJob: (namespace, name) => this.o.reader.job(namespace, studyJobNameFor(name, "teacher")),
      failedStatus: invalidStudySpecStatus,
      applyStatus: (namespace, name, status) => this.o.studyWriter.applyStatus(namespace, name, status),
      ...(this.o.log ? { log: this.o.log } : {}),
    });
    return {};
  }

  /** template.runPolicy.ttlSecondsAfterFinished deletes the finished study (its children follow by GC). */
  private async expire(study: OwnerStudy): Promise<ReconcileResult> {
    const ttl = study.spec.template.runPolicy.ttlSecondsAfterFinished;
    const finished = study.status?.completionTime;
    if (ttl === undefined || !finished) return {};
    const dueMs = Date.parse(finished) + ttl * 1000 - this.now().getTime();
    if (dueMs > 0) return { requeueAfterMs: Math.min(dueMs, MAX_TIMER_MS) };
    const { namespace, name, uid } = study.metadata;
    await this.o.studyWriter.deleteStudy(namespace, name, uid);
    this.statusWriter.forget(keyOf(namespace, name));
    return {};
  }
}
