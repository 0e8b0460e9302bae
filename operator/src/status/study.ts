// A DistillationStudy's status: a pure function of (its last status, its stage Jobs and their pods), like
// derive.ts for a DistillationJob and built from the same pieces: each stage Job is observed by derive.ts's own
// `observe` (so a stage shows the same stuck reasons, admission and preemption a job does) and held to the
// job's pending deadline (pendingDeadlineIn), the conditions are conditionsFor's, and the per-variant table comes from the variants' Indexed Job: its completed/failed indexes
// and, per index, the latest pod's termination message (the trainer's Result, parsed by the api schema).
import type { CoreV1Event, V1Job, V1Pod } from "@kubernetes/client-node";
import {
  analyseStudy,
  EXIT_CODE_REASONS,
  expandVariants,
  runCount,
  sharedLocation,
  sharedRoot,
  StudyLayout,
  type DistillationJobStatus,
  type DistillationStudyStatus,
  type Phase,
  type Result,
  type VariantStatus,
} from "../../../api/v1alpha1/index.ts";
import type { OwnerStudy, StudyStage } from "../builders/study.ts";
import { TRAINER_CONTAINER } from "../names.ts";
import type { OwnerJob } from "../owner-job.ts";
import { ConditionType, setCondition } from "./conditions.ts";
import {
  conditionsFor,
  isTerminal,
  jobFinished,
  observe,
  parseResult,
  pendingDeadlineIn,
  toIso,
  trainerMessage,
  truncateMessage,
  type Observation,
} from "./derive.ts";

/** The annotation the Job controller puts on every pod of an Indexed Job. */
export const COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index";

export interface StageObserved {
  job?: V1Job;
  pods: V1Pod[];
  events?: CoreV1Event[];
}

export interface StudyObserved {
  teacher: StageObserved;
  variants: StageObserved;
  report: StageObserved;
  /** A child's name is taken by an object this study does not control (final). */
  conflict?: string;
  /** The apiserver refused a child as invalid before any Job existed (final). */
  refused?: string;
  /** Why applying the children failed this time (retried). */
  applyError?: string;
}

/** Devices a run holds, for deviceSeconds: its GPUs, or (gpus 0) its CPUs. */
export interface DeviceCount {
  devices: number;
  unit: "GPU" | "CPU";
}

type StudyStatus = DistillationStudyStatus;

/** "1,3-5" (a Job's completedIndexes / failedIndexes) -> {1, 3, 4, 5}. */
export function parseIndexes(list: string | undefined): Set<number> {
  const out = new Set<number>();
  for (const part of (list ?? "").split(",")) {
    const [from, to] = part.split("-").map((n) => Number.parseInt(n, 10));
    if (from === undefined || Number.isNaN(from)) continue;
    for (let i = from; i <= (to === undefined || Number.isNaN(to) ? from : to); i++) out.add(i);
  }
  return out;
}

export const completionIndexOf = (pod: V1Pod): number | undefined => {
  const value = pod.metadata?.annotations?.[COMPLETION_INDEX_ANNOTATION];
  const index = value === undefined ? NaN : Number.parseInt(value, 10);
  return Number.isNaN(index) ? undefined : index;
};

const created = (pod: V1Pod) => toIso(pod.metadata?.creationTimestamp) ?? "";
const trainerTerminated = (pod: V1Pod) =>
  (
    pod.status?.containerStatuses?.find((c) => c.name === TRAINER_CONTAINER) ??
    pod.status?.containerStatuses?.[0]
  )?.state?.terminated;
const failedInit = (pod: V1Pod) =>
  pod.status?.initContainerStatuses?.find((c) => (c.state?.terminated?.exitCode ?? 0) !== 0)?.state
    ?.terminated;

/** The pods of each index, newest first. */
function podsByIndex(pods: V1Pod[]): Map<number, V1Pod[]> {
  const out = new Map<number, V1Pod[]>();
  for (const pod of pods) {
    const index = completionIndexOf(pod);
    if (index !== undefined) out.set(index, [...(out.get(index) ?? []), pod]);
  }
  for (const list of out.values()) list.sort((a, b) => created(b).localeCompare(created(a)));
  return out;
}

/** The figures of a succeeded run from its Result; deviceSeconds = durationSeconds x devices. */
function figures(result: Result | undefined, devices: DeviceCount): Partial<VariantStatus> {
  if (!result) return {};
  const duration = result.durationSeconds;
  return {
    ...(result.bestValidationAccuracy !== undefined
      ? { bestValidationAccuracy: result.bestValidationAccuracy }
      : {}),
    ...(result.studentAccuracy !== undefined ? { testAccuracy: result.studentAccuracy } : {}),
    ...(result.bestEpoch !== undefined ? { bestEpoch: result.bestEpoch } : {}),
    ...(result.epochsToTarget !== undefined ? { epochsToTarget: result.epochsToTarget } : {}),
    ...(duration !== undefined
      ? { durationSeconds: duration, deviceSeconds: Number((duration * devices.devices).toFixed(3)) }
      : {}),
  };
}

/** Why an index failed: its latest failed pod's exit code and message (a failed initializer first). */
function failureOf(pods: V1Pod[]): Pick<VariantStatus, "reason" | "message"> {
  for (const pod of pods) {
    if (pod.status?.phase !== "Failed") continue;
    const terminated = failedInit(pod) ?? trainerTerminated(pod);
    const reason = (terminated && EXIT_CODE_REASONS[terminated.exitCode]) || pod.status?.reason || "Failed";
    const said = trainerMessage(terminated?.message);
    const exit = terminated ? `exit code ${terminated.exitCode}` : "no exit code";
    return {
      reason,
      message: truncateMessage(`pod ${pod.metadata?.name} (${exit})${said ? `: ${said}` : ""}`),
    };
  }
  return { reason: "Failed", message: "the index failed (its pods are gone)" };
}

/** One entry per index of the variants' Indexed Job (a previous entry's figures kept when its pods are gone). */
export function variantStatuses(
  study: OwnerStudy,
  observed: StageObserved,
  previous: VariantStatus[] | undefined,
  devices: DeviceCount,
): VariantStatus[] {
  const done = parseIndexes(observed.job?.status?.completedIndexes);
  const failed = parseIndexes(observed.job?.status?.failedIndexes ?? undefined);
  const byIndex = podsByIndex(observed.pods);
  const before = new Map((previous ?? []).map((v) => [v.index, v]));
  return expandVariants(study.spec).map((variant) => {
    const pods = byIndex.get(variant.index) ?? [];
    const old = before.get(variant.index);
    const base = { index: variant.index, name: variant.name, arm: variant.arm, seed: variant.seed };
    const attempts = Math.max(old?.attempts ?? 0, pods.length);
    const withAttempts = attempts > 0 ? { attempts } : {};
    if (done.has(variant.index)) {
      const pod = pods.find((p) => p.status?.phase === "Succeeded");
      const result = parseResult(pod ? trainerTerminated(pod)?.message : undefined);
      if (!result && old?.phase === "Succeeded") return old;
      return { ...base, phase: "Succeeded", ...withAttempts, ...figures(result, devices) };
    }
    if (failed.has(variant.index)) {
      if (pods.length === 0 && old?.phase === "Failed") return old;
      return { ...base, phase: "Failed", ...withAttempts, ...failureOf(pods) };
    }
    const running = pods[0]?.status?.phase === "Running" && !pods[0].metadata?.deletionTimestamp;
    return { ...base, phase: running ? "Running" : "Pending", ...withAttempts };
  });
}

type StageName = NonNullable<StudyStatus["stage"]>;
const STAGE_NAME: Record<StudyStage, StageName> = {
  teacher: "Teacher",
  variants: "Variants",
  report: "Report",
};
const RUNNING_REASON: Record<StudyStage, string> = {
  teacher: "TeacherRunning",
  variants: "VariantsRunning",
  report: "ReportRunning",
};

/**
 * The study's template as a DistillationJob (with `status`), for derive.ts's rules that read a job: the pending
 * deadline (template.runPolicy.pendingDeadlineSeconds) and how a suspended Job is told preempted.
 */
export function studyAsJob(study: OwnerStudy, status: DistillationJobStatus = {}): OwnerJob {
  const { name, namespace, uid } = study.metadata;
  return {
    apiVersion: "distillation.mokd.io/v1alpha1",
    kind: "DistillationJob",
    metadata: { name, namespace, uid },
    spec: study.spec.template,
    status,
  };
}

/** Some index of the variants Job has had a pod (the Job's counts survive a suspend; the table keeps attempts). */
function variantsRan(job: V1Job | undefined, previous: VariantStatus[] | undefined): boolean {
  const counted = (job?.status?.succeeded ?? 0) + (job?.status?.failed ?? 0);
  return counted > 0 || (previous ?? []).some((v) => (v.attempts ?? 0) > 0);
}

/**
 * What derive.ts's `preempted` reads of a stage Job's past: the study's previous phase only when it was this
 * stage's (a teacher that ran says nothing of the variants Job's first wait for admission); for the variants,
 * also any index that has had a pod (the phase may have shown a new pod starting when Kueue evicted them).
 */
function stageHistory(
  stage: StudyStage,
  observed: StageObserved,
  previous: StudyStatus,
): DistillationJobStatus {
  if (previous.stage !== STAGE_NAME[stage]) return {};
  if (stage === "variants" && variantsRan(observed.job, previous.variants)) return { phase: "Running" };
  return {
    ...(previous.phase ? { phase: previous.phase } : {}),
    ...(previous.conditions ? { conditions: previous.conditions } : {}),
  };
}

/** What a preempted stage means for the study: nothing completed is run again. */
function preemptedMessage(stage: StudyStage, job: V1Job | undefined, runs: number): string {
  if (stage !== "variants")
    return `Kueue suspended the ${stage} Job (preempted or evicted): its pods were stopped; it runs again when re-admitted`;
  const done = parseIndexes(job?.status?.completedIndexes).size;
  return (
    `Kueue suspended the variants Job (preempted or evicted): its running variants were stopped (each ` +
    `checkpoints on SIGTERM); re-admitted, it runs only the indexes not yet completed (${done} of ${runs} completed)`
  );
}

/**
 * A stage Job's observation through derive.ts's `observe`, the stage's reason in place of the trainer's. A stage
 * of several pods runs while any of them does (the newest alone may still be starting, or wait for room).
 */
function observeStage(
  study: OwnerStudy,
  stage: StudyStage,
  observed: StageObserved,
  previous: StudyStatus,
): Observation {
  const running = observed.pods.filter(
    (p) => p.status?.phase === "Running" && !p.metadata?.deletionTimestamp,
  );
  const ended = observed.job !== undefined && jobFinished(observed.job);
  const o = observe(studyAsJob(study, stageHistory(stage, observed, previous)), {
    pods: running.length > 0 && !ended ? running : observed.pods,
    ...(observed.job ? { job: observed.job } : {}),
    events: observed.events ?? [],
  });
  if (o.reason === "TrainerRunning") return { ...o, reason: RUNNING_REASON[stage] };
  if (o.reason === "Preempted")
    return { ...o, message: preemptedMessage(stage, observed.job, runCount(study.spec)) };
  return o;
}

/**
 * A stage pending past template.runPolicy.pendingDeadlineSeconds fails the study with the stuck reason: the
 * job's rule (derive.ts's pendingDeadlineIn: suspension and Kueue admission do not count, nor retries), its
 * message naming the stage.
 */
function withStageDeadline(
  study: OwnerStudy,
  previous: StudyStatus,
  o: Observation & { stage: StageName },
  now: string,
): Observation & { stage: StageName } {
  if (o.phase !== "Pending") return o;
  const pending = { phase: o.phase, conditions: conditionsFor(previous, o, true, now) };
  const left = pendingDeadlineIn(studyAsJob(study), pending, now);
  if (left === undefined || left > 0) return o;
  const seconds = study.spec.template.runPolicy.pendingDeadlineSeconds;
  const message = `the ${o.stage.toLowerCase()} stage's pods did not start within template.runPolicy.pendingDeadlineSeconds (${seconds} s): ${o.reason}: ${o.message}`;
  return { ...o, phase: "Failed", message: truncateMessage(message) };
}

/** The stage the study is in and what it says, from the newest stage Job there is. */
export function observeStudy(
  study: OwnerStudy,
  observed: StudyObserved,
  previous: StudyStatus,
  succeeded: number,
): Observation & { stage: NonNullable<StudyStatus["stage"]> } {
  if (observed.conflict !== undefined)
    return {
      stage: "Teacher",
      phase: "Failed",
      reason: "NameConflict",
      message: truncateMessage(observed.conflict),
    };
  const { teacher, variants, report } = observed;
  if (!teacher.job && observed.refused !== undefined) {
    const message = `the apiserver refused the study's children: ${observed.refused}`;
    return { stage: "Teacher", phase: "Failed", reason: "InvalidSpec", message: truncateMessage(message) };
  }
  if (report.job) {
    const o = observeStage(study, "report", report, previous);
    if (o.phase === "Succeeded")
      return {
        stage: "Done",
        phase: "Succeeded",
        reason: "Completed",
        message: completedMessage(study, succeeded),
      };
    if (o.phase === "Failed")
      return { ...o, stage: "Report", reason: "ReportFailed", message: `report: ${o.message}` };
    return { ...o, stage: "Report" };
  }
  if (variants.job) {
    if (jobFinished(variants.job)) {
      if (succeeded === 0) {
        const message = `no variant succeeded (${runCount(study.spec)} failed): see status.variants for each one's reason`;
        return { stage: "Variants", phase: "Failed", reason: "NoVariantSucceeded", message };
      }
      return { stage: "Report", phase: "Pending", reason: "Creating", message: "creating the report Job" };
    }
    const o = observeStage(study, "variants", variants, previous);
    return { ...o, stage: "Variants" };
  }
  if (teacher.job) {
    const o = observeStage(study, "teacher", teacher, previous);
    if (o.phase === "Failed")
      return {
        stage: "Teacher",
        phase: "Failed",
        reason: "TeacherFailed",
        message: truncateMessage(`teacher (${o.reason}): ${o.message}`),
      };
    if (o.phase === "Succeeded")
      return {
        stage: "Variants",
        phase: "Pending",
        reason: "Creating",
        message: "creating the variants Job",
      };
    return { ...o, stage: "Teacher" };
  }
  if (observed.applyError !== undefined) {
    const message = `creating the study's ConfigMap or teacher Job failed (retried): ${observed.applyError}`;
    return { stage: "Teacher", phase: "Pending", reason: "ApplyFailed", message: truncateMessage(message) };
  }
  return { stage: "Teacher", phase: "Pending", reason: "Creating", message: "creating the teacher Job" };
}

function completedMessage(study: OwnerStudy, succeeded: number): string {
  const runs = runCount(study.spec);
  return `the report is written: ${succeeded} of ${runs} runs succeeded${succeeded < runs ? ` (${runs - succeeded} failed: see status.variants)` : ""}`;
}

/** The teacher's test accuracy (shard 0 evaluates it), from its termination message. */
function teacherAccuracyOf(teacher: StageObserved): number | undefined {
  for (const pod of teacher.pods) {
    if (pod.status?.phase !== "Succeeded") continue;
    const accuracy = parseResult(trainerTerminated(pod)?.message)?.teacherAccuracy;
    if (accuracy !== undefined) return accuracy;
  }
  return undefined;
}

/** The comparison's condition: provisional while runs remain, final once every run has ended. */
function comparedCondition(status: StudyStatus, pending: number, now: string, generation?: number) {
  const final = pending === 0;
  return setCondition(
    status.conditions,
    {
      type: ConditionType.Compared,
      status: final ? "True" : "False",
      reason: final ? "AllRunsEnded" : "Provisional",
      message: final
        ? "status.arms, best and comparisons are over every run"
        : `status.arms, best and comparisons are provisional: ${pending} run(s) have not ended`,
    },
    now,
    generation,
  );
}

/**
 * Failed/InvalidSpec: the schema refused the spec, which cannot be fixed in place (recreate the study); the study
 * never started (its teacher Job does not exist).
 */
export function invalidStudySpecStatus(
  _previous: StudyStatus,
  message: string,
  now: string,
  generation?: number,
): StudyStatus {
  const failed = { status: "True" as const, reason: "InvalidSpec", message: truncateMessage(message) };
  const meta = {
    lastTransitionTime: now,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  return {
    phase: "Failed",
    stage: "Teacher",
    conditions: [
      { type: "Running", ...failed, status: "False", ...meta },
      { type: "Failed", ...failed, ...meta },
    ],
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    completionTime: now,
  };
}

/** The new status; a terminal one is final (the stage Jobs may be deleted later). */
export function deriveStudyStatus(
  study: OwnerStudy,
  observed: StudyObserved,
  now: string,
  devices: DeviceCount,
): StudyStatus {
  const previous: StudyStatus = study.status ?? {};
  if (isTerminal(previous.phase as Phase | undefined)) return previous;
  const generation = study.metadata.generation;
  const variants = observed.variants.job
    ? variantStatuses(study, observed.variants, previous.variants, devices)
    : previous.variants;
  const succeeded = variants?.filter((v) => v.phase === "Succeeded").length ?? 0;
  const failed = variants?.filter((v) => v.phase === "Failed").length ?? 0;
  const runs = runCount(study.spec);
  const o = withStageDeadline(study, previous, observeStudy(study, observed, previous, succeeded), now);
  const anyJob = Boolean(observed.teacher.job ?? observed.variants.job ?? observed.report.job);
  const startTime = previous.startTime ?? toIso(observed.teacher.job?.metadata?.creationTimestamp);
  const teacherAccuracy = teacherAccuracyOf(observed.teacher) ?? previous.teacherAccuracy;
  let status: StudyStatus = {
    phase: o.phase,
    stage: o.stage,
    conditions: conditionsFor(previous, o, anyJob, now, generation),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    ...(startTime ? { startTime } : {}),
    ...(isTerminal(o.phase) ? { completionTime: now } : {}),
    ...(observed.teacher.job?.metadata?.name ? { teacherJobName: observed.teacher.job.metadata.name } : {}),
    ...(observed.variants.job?.metadata?.name
      ? { variantsJobName: observed.variants.job.metadata.name }
      : {}),
    runs,
    succeeded,
    failed,
    ...(variants ? { variants } : {}),
    ...(teacherAccuracy !== undefined ? { teacherAccuracy } : {}),
    ...(o.phase === "Succeeded"
      ? { reportUri: sharedLocation(sharedRoot(study.spec.template), StudyLayout.report) }
      : {}),
  };
  if (variants && succeeded > 0) {
    status = { ...status, ...analyseStudy(variants) };
    status.conditions = comparedCondition(status, runs - succeeded - failed, now, generation);
  }
  return status;
}

/** Events for runs that ended since `previous`: one per variant, with its figures or its reason. */
export interface VariantEvent {
  type: "Normal" | "Warning";
  reason: "VariantSucceeded" | "VariantFailed";
  message: string;
}

export function variantEndEvents(
  previous: VariantStatus[] | undefined,
  next: VariantStatus[] | undefined,
  unit: DeviceCount["unit"],
): VariantEvent[] {
  const before = new Map((previous ?? []).map((v) => [v.index, v.phase]));
  const pct = (x: number | undefined) => (x === undefined ? "?" : `${(x * 100).toFixed(2)}%`);
  return (next ?? []).flatMap((v): VariantEvent[] => {
    if (before.get(v.index) === v.phase || (v.phase !== "Succeeded" && v.phase !== "Failed")) return [];
    if (v.phase === "Succeeded") {
      const cost = v.deviceSeconds === undefined ? "" : `, ${v.deviceSeconds.toFixed(0)} ${unit}-s`;
      const message = `variant ${v.name} (index ${v.index}) succeeded: validation ${pct(v.bestValidationAccuracy)}, test ${pct(v.testAccuracy)}${cost}`;
      return [{ type: "Normal", reason: "VariantSucceeded", message }];
    }
    const message = `variant ${v.name} (index ${v.index}) failed: ${v.reason ?? "Failed"}: ${v.message ?? ""}`;
    return [{ type: "Warning", reason: "VariantFailed", message: truncateMessage(message) }];
  });
}
