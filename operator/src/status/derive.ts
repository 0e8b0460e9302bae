// Status derivation: a pure function from (the DistillationJob's last status, the child Job, its pods, the latest
// progress) to the new status. No I/O, so every case is unit-tested.
import type { V1Job, V1JobCondition, V1Pod } from "@kubernetes/client-node";
import {
  ExitCode,
  Result,
  type DistillationJobStatus,
  type Phase,
  type Progress,
} from "../../../api/v1alpha1/index.ts";
import { TRAINER_CONTAINER } from "../names.ts";
import type { OwnerJob } from "../builders/common.ts";
import { ConditionType, findCondition, setCondition } from "./conditions.ts";

export interface Observed {
  job?: V1Job;
  pods: V1Pod[];
}

/** What the child Job and its pods say right now. */
export interface Observation {
  phase: Phase;
  reason: string;
  message: string;
  result?: Result;
}

/** Container waiting reasons that mean the pod will not start by itself: surfaced as condition reasons. */
export const STUCK_WAITING_REASONS = [
  "ImagePullBackOff",
  "ErrImagePull",
  "InvalidImageName",
  "CrashLoopBackOff",
  "CreateContainerConfigError",
  "CreateContainerError",
] as const;

const MAX_MESSAGE = 1024;
const TERMINAL: readonly Phase[] = ["Succeeded", "Failed"];

export const isTerminal = (phase: Phase | undefined) => phase !== undefined && TERMINAL.includes(phase);

export function toIso(time: Date | string | undefined): string | undefined {
  if (time === undefined) return undefined;
  return typeof time === "string" ? time : time.toISOString();
}

export const truncateMessage = (s: string) =>
  s.length > MAX_MESSAGE ? s.slice(0, MAX_MESSAGE - 1) + "…" : s;

function trueJobCondition(job: V1Job, ...types: string[]): V1JobCondition | undefined {
  return job.status?.conditions?.find((c) => types.includes(c.type) && c.status === "True");
}

function trainerStatus(pod: V1Pod) {
  return (
    pod.status?.containerStatuses?.find((c) => c.name === TRAINER_CONTAINER) ??
    pod.status?.containerStatuses?.[0]
  );
}

const created = (pod: V1Pod) => toIso(pod.metadata?.creationTimestamp) ?? "";
const newestFirst = (pods: V1Pod[]) => [...pods].sort((a, b) => created(b).localeCompare(created(a)));

/** Parses the trainer's termination message (JSON with the keys of Result); anything else yields undefined. */
export function parseResult(message: string | undefined): Result | undefined {
  if (!message) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  const parsed = Result.safeParse(value);
  return parsed.success && Object.keys(parsed.data).length > 0 ? parsed.data : undefined;
}

/**
 * What the trainer said when it failed: the `error` of its `{"error", "reason"}` termination message, or the raw
 * text (a log tail, under FallbackToLogsOnError, when it wrote none).
 */
export function trainerMessage(message: string | undefined): string | undefined {
  const text = message?.trim();
  if (!text) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    const error = (value as { error?: unknown } | null)?.error;
    if (typeof error === "string" && error.trim()) return error.trim();
  } catch {
    // Not JSON: the log tail.
  }
  return text;
}

function lastTermination(pods: V1Pod[], phase: "Succeeded" | "Failed") {
  for (const pod of newestFirst(pods)) {
    const terminated = trainerStatus(pod)?.state?.terminated;
    if (pod.status?.phase === phase && terminated) return terminated;
  }
  return undefined;
}

const EXIT_REASONS: Record<number, string> = {
  [ExitCode.BadConfig]: "BadConfig",
  [ExitCode.BadData]: "BadData",
};

function failure(job: V1Job, condition: V1JobCondition, pods: V1Pod[]): Observation {
  const terminated = lastTermination(pods, "Failed");
  const byExitCode = terminated ? EXIT_REASONS[terminated.exitCode] : undefined;
  const reason = (condition.reason === "PodFailurePolicy" && byExitCode) || condition.reason || "Failed";
  const trainer = trainerMessage(terminated?.message);
  const exit = terminated ? ` (exit code ${terminated.exitCode})` : "";
  const message = [
    condition.message || `Job ${job.metadata?.name} failed`,
    trainer ? `trainer${exit}: ${trainer}` : "",
  ]
    .filter(Boolean)
    .join("; ");
  return { phase: "Failed", reason, message: truncateMessage(message) };
}

function success(pods: V1Pod[]): Observation {
  const result = parseResult(lastTermination(pods, "Succeeded")?.message);
  const message = result
    ? "the trainer finished and reported its result"
    : "the trainer finished (no result reported)";
  return { phase: "Succeeded", reason: "Completed", message, ...(result ? { result } : {}) };
}

/** Why a pod that should run does not: unschedulable, image pull errors, crash loops. */
function podBlocker(pod: V1Pod): { reason: string; message: string } | undefined {
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled?.status === "False" && scheduled.reason === "Unschedulable") {
    return {
      reason: "Unschedulable",
      message: truncateMessage(scheduled.message ?? "no node fits the trainer pod"),
    };
  }
  const waiting = trainerStatus(pod)?.state?.waiting;
  if (waiting?.reason && (STUCK_WAITING_REASONS as readonly string[]).includes(waiting.reason)) {
    return { reason: waiting.reason, message: truncateMessage(waiting.message ?? waiting.reason) };
  }
  return undefined;
}

/**
 * Suspended by someone else (Kueue) after the trainer had run: preempted or evicted, not merely queued. The trainer
 * got SIGTERM and checkpointed; it resumes from that checkpoint when re-admitted. Stays so until it runs again.
 */
function preempted(dj: OwnerJob): boolean {
  const previous = dj.status;
  if (previous?.phase === "Running") return true;
  return (
    previous?.phase === "Suspended" && findCondition(previous.conditions, "Suspended")?.reason === "Preempted"
  );
}

function suspended(dj: OwnerJob): Observation {
  if (dj.spec.runPolicy.suspend)
    return { phase: "Suspended", reason: "Suspended", message: "runPolicy.suspend is set" };
  if (preempted(dj)) {
    const message =
      "Kueue suspended the running Job (preempted or evicted): the trainer checkpointed on SIGTERM and resumes from its last checkpoint when re-admitted";
    return { phase: "Suspended", reason: "Preempted", message };
  }
  return {
    phase: "Suspended",
    reason: "WaitingForAdmission",
    message: "the Job waits for Kueue to admit it",
  };
}

function active(dj: OwnerJob, job: V1Job, pods: V1Pod[]): Observation {
  const live = newestFirst(pods).filter((p) => !p.metadata?.deletionTimestamp);
  const pod = live.find((p) => p.status?.phase === "Running" || p.status?.phase === "Pending");
  if (pod) {
    const blocker = podBlocker(pod);
    if (blocker) return { phase: "Pending", ...blocker };
    if (pod.status?.phase === "Running")
      return { phase: "Running", reason: "TrainerRunning", message: `pod ${pod.metadata?.name} is running` };
    return { phase: "Pending", reason: "PodPending", message: `pod ${pod.metadata?.name} is starting` };
  }
  if (job.spec?.suspend) return suspended(dj);
  if ((job.status?.failed ?? 0) > 0) {
    const trainer = trainerMessage(lastTermination(pods, "Failed")?.message);
    const message =
      `retrying after ${job.status?.failed} failed attempt(s)` + (trainer ? `; trainer: ${trainer}` : "");
    return { phase: "Pending", reason: "Retrying", message: truncateMessage(message) };
  }
  return { phase: "Pending", reason: "JobCreated", message: `Job ${job.metadata?.name} is creating its pod` };
}

export function observe(dj: OwnerJob, observed: Observed): Observation {
  const { job, pods } = observed;
  if (!job) return { phase: "Pending", reason: "Creating", message: "creating the trainer Job" };
  const failed = trueJobCondition(job, "Failed", "FailureTarget");
  if (failed) return failure(job, failed, pods);
  if (trueJobCondition(job, "Complete", "SuccessCriteriaMet")) return success(pods);
  return active(dj, job, pods);
}

function attempts(job: V1Job | undefined, pods: V1Pod[]): number {
  const s = job?.status;
  return Math.max((s?.active ?? 0) + (s?.succeeded ?? 0) + (s?.failed ?? 0), pods.length);
}

function completionTime(job: V1Job | undefined, now: string): string {
  const failedAt = job?.status?.conditions?.find(
    (c) => c.type === "Failed" && c.status === "True",
  )?.lastTransitionTime;
  return toIso(job?.status?.completionTime) ?? toIso(failedAt) ?? now;
}

function conditionsFor(
  previous: DistillationJobStatus,
  o: Observation,
  jobExists: boolean,
  now: string,
  gen?: number,
) {
  const set = (
    list: DistillationJobStatus["conditions"],
    type: string,
    on: boolean,
    reason: string,
    message: string,
  ) => setCondition(list, { type, status: on ? "True" : "False", reason, message }, now, gen);
  const optional = (list: DistillationJobStatus["conditions"], type: string, on: boolean) =>
    on || findCondition(list, type)
      ? set(list, type, on, on ? o.reason : "NotApplicable", on ? o.message : "")
      : list;
  let list = previous.conditions;
  list = set(
    list,
    ConditionType.Created,
    jobExists,
    jobExists ? "JobCreated" : "Creating",
    jobExists ? "the trainer Job exists" : "creating the trainer Job",
  );
  list = set(list, ConditionType.Running, o.phase === "Running", o.reason, o.message);
  list = optional(list, ConditionType.Suspended, o.phase === "Suspended");
  list = optional(list, ConditionType.Succeeded, o.phase === "Succeeded");
  list = optional(list, ConditionType.Failed, o.phase === "Failed");
  return list;
}

/**
 * The new status. Terminal statuses are final: the child Job may be deleted later (TTL, by hand) without turning a
 * Succeeded job back into Pending.
 */
export function deriveStatus(
  dj: OwnerJob,
  observed: Observed,
  now: string,
  progress?: Progress,
): DistillationJobStatus {
  const previous: DistillationJobStatus = dj.status ?? {};
  const generation = dj.metadata.generation;
  if (isTerminal(previous.phase)) return previous;
  const o = observe(dj, observed);
  const { job } = observed;
  const startTime = previous.startTime ?? toIso(job?.metadata?.creationTimestamp);
  const latestProgress = (o.phase === "Running" && progress) || previous.progress;
  const status: DistillationJobStatus = {
    phase: o.phase,
    conditions: conditionsFor(previous, o, job !== undefined, now, generation),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    ...(startTime ? { startTime } : {}),
    ...(isTerminal(o.phase) ? { completionTime: completionTime(job, now) } : {}),
    attempts: attempts(job, observed.pods),
    ...(job?.metadata?.name
      ? { jobName: job.metadata.name }
      : previous.jobName
        ? { jobName: previous.jobName }
        : {}),
    ...(latestProgress ? { progress: latestProgress } : {}),
    ...(o.result ? { result: o.result } : {}),
  };
  return status;
}
