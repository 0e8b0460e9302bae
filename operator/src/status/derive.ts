// Status derivation: a pure function from (the DistillationJob's last status, the child Job, its pods, the latest
// progress) to the new status. No I/O, so every case is unit-tested.
import type { CoreV1Event, V1Job, V1JobCondition, V1Pod } from "@kubernetes/client-node";
import {
  EXIT_CODE_REASONS,
  Result,
  type DistillationJobStatus,
  type FetchProgress,
  type Phase,
  type Progress,
} from "../../../api/v1alpha1/index.ts";
import { TRAINER_CONTAINER } from "../names.ts";
import type { OwnerJob } from "../owner-job.ts";
import { ConditionType, STUCK_WAITING_REASONS, findCondition, setCondition } from "./conditions.ts";
import { failedInitializer, initializing } from "./storage.ts";
import { disruptionMessage, disruptionOf, newDisruption, resumesFrom } from "./disruption.ts";
import { truncateMessage } from "./text.ts";

export { truncateMessage };

export interface Observed {
  job?: V1Job;
  pods: V1Pod[];
  /** The apiserver's message when it refused to create a child as invalid (controller/refusal.ts). */
  refused?: string;
  /** FailedCreate events of the child Job (the Job controller could not create its pod: quota, PriorityClass). */
  events?: CoreV1Event[];
  /** A child's name is taken by an object this DistillationJob does not control (controller/ownership.ts). */
  conflict?: string;
  /** A child's name is still held by the children of an earlier DistillationJob of this name, being deleted. */
  previousChildren?: string;
  /** Why applying the children failed this time (the error is retried; with no Job yet it is the reason). */
  applyError?: string;
  /** The run was restarted from outside: its Job deleted and created again, or suspended and resumed. */
  restarted?: boolean;
  /** The `fetch` initializer's latest progress document, while the pod initializes (progress/scraper.ts). */
  fetching?: FetchProgress;
  /**
   * The final state of the Job's pods deleted lately that were disruption targets (controller/deleted-pods.ts):
   * a disrupted pod may be gone before a reconcile sees it, and it still counts (status/disruption.ts).
   */
  deletedPods?: V1Pod[];
}

/** What the child Job and its pods say right now. */
export interface Observation {
  phase: Phase;
  reason: string;
  message: string;
  result?: Result;
  /** Running, but nobody can tell how it goes (its node stopped responding): the Running condition is Unknown. */
  unknown?: boolean;
}

const TERMINAL: readonly Phase[] = ["Succeeded", "Failed"];

export const isTerminal = (phase: Phase | undefined) => phase !== undefined && TERMINAL.includes(phase);

export function toIso(time: Date | string | undefined): string | undefined {
  if (time === undefined) return undefined;
  return typeof time === "string" ? time : time.toISOString();
}

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
    // A failed initializer first: the trainer never ran (the kubelet may still report it as terminated).
    const terminated =
      (phase === "Failed" ? failedInitializer(pod) : undefined) ?? trainerStatus(pod)?.state?.terminated;
    if (pod.status?.phase === phase && terminated) return terminated;
  }
  return undefined;
}

function failure(job: V1Job, condition: V1JobCondition, pods: V1Pod[]): Observation {
  const terminated = lastTermination(pods, "Failed");
  const byExitCode = terminated ? EXIT_CODE_REASONS[terminated.exitCode] : undefined;
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
  if (waiting?.reason && STUCK_WAITING_REASONS.includes(waiting.reason)) {
    return { reason: waiting.reason, message: truncateMessage(waiting.message ?? waiting.reason) };
  }
  return undefined;
}

/** Kubernetes' default tolerationSeconds for a lost node (the DefaultTolerationSeconds admission plugin). */
const DEFAULT_NODE_LOSS_TOLERATION = 300;

/**
 * A running trainer whose node stopped responding: the node lifecycle controller marks the pod not ready while
 * its container still runs as far as anyone knows (the kubelet cannot say otherwise), then evicts it once its
 * toleration runs out. Says what happens next; undefined for a pod whose node is fine.
 */
function nodeLost(pod: V1Pod): string | undefined {
  const conditions = pod.status?.conditions ?? [];
  const notReady = conditions.some((c) => c.type === "Ready" && c.status === "False");
  const evicting = conditions.find((c) => c.type === "DisruptionTarget" && c.status === "True");
  if (!notReady || !trainerStatus(pod)?.state?.running) return undefined;
  const node = pod.spec?.nodeName ? `node ${pod.spec.nodeName}` : "its node";
  const toleration = pod.spec?.tolerations?.find((t) => t.key === "node.kubernetes.io/unreachable");
  const seconds = toleration?.tolerationSeconds ?? DEFAULT_NODE_LOSS_TOLERATION;
  const next = evicting
    ? `Kubernetes is evicting it (${evicting.reason ?? "DisruptionTarget"})`
    : `Kubernetes evicts it once the node has been unreachable for ${seconds} s`;
  return (
    `${node} of pod ${pod.metadata?.name} stopped responding: the trainer's state is unknown. ${next}; the Job ` +
    "then starts a new pod, which resumes from the last checkpoint if spec.output.checkpointPath is on a volume"
  );
}

const eventTime = (e: CoreV1Event) =>
  toIso(e.lastTimestamp) ?? toIso(e.eventTime as Date | string | undefined) ?? toIso(e.firstTimestamp) ?? "";

/** Reasons for the Job controller's FailedCreate messages (pod creation refused by admission). */
function failedCreateReason(message: string): string {
  if (/exceeded quota|forbidden: failed quota/i.test(message)) return "ExceededQuota";
  if (/no PriorityClass with name/i.test(message)) return "PriorityClassNotFound";
  return "FailedCreate";
}

/** The Job controller's latest refusal to create a pod, if newer than every pod it did create. */
function podCreationFailure(pods: V1Pod[], events: CoreV1Event[] | undefined): Observation | undefined {
  const newestPod = newestFirst(pods)[0];
  const since = newestPod ? created(newestPod) : "";
  const latest = (events ?? [])
    .filter((e) => e.reason === "FailedCreate" && eventTime(e) >= since)
    .sort((a, b) => eventTime(b).localeCompare(eventTime(a)))[0];
  if (!latest) return undefined;
  const message = latest.message ?? "the Job controller could not create the trainer pod";
  return { phase: "Pending", reason: failedCreateReason(message), message: truncateMessage(message) };
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

/** The newest pod (live or lately deleted) was disrupted and no new one has started: the Job is replacing it. */
function replacingDisrupted(dj: OwnerJob, pods: V1Pod[], deleted: V1Pod[] = []): Observation | undefined {
  const disruption = disruptionOf(newestFirst([...pods, ...deleted])[0] ?? {});
  if (!disruption) return undefined;
  return { phase: "Pending", reason: "Disrupted", message: disruptionMessage(disruption, resumesFrom(dj)) };
}

function active(
  dj: OwnerJob,
  job: V1Job,
  pods: V1Pod[],
  observed: Pick<Observed, "events" | "fetching" | "deletedPods"> = {},
): Observation {
  const { events, fetching: fetchProgress } = observed;
  const live = newestFirst(pods).filter((p) => !p.metadata?.deletionTimestamp);
  const pod = live.find((p) => p.status?.phase === "Running" || p.status?.phase === "Pending");
  if (pod) {
    const blocker = podBlocker(pod);
    if (blocker) return { phase: "Pending", ...blocker };
    const fetching = initializing(pod, fetchProgress);
    if (fetching) return { phase: "Pending", ...fetching };
    const lost = pod.status?.phase === "Running" ? nodeLost(pod) : undefined;
    if (lost) return { phase: "Running", reason: "NodeUnreachable", message: lost, unknown: true };
    if (pod.status?.phase === "Running")
      return { phase: "Running", reason: "TrainerRunning", message: `pod ${pod.metadata?.name} is running` };
    return { phase: "Pending", reason: "PodPending", message: `pod ${pod.metadata?.name} is starting` };
  }
  if (job.spec?.suspend) return suspended(dj);
  const finished = newestFirst(pods).find((p) => p.status?.phase === "Succeeded");
  if (finished || (job.status?.succeeded ?? 0) > 0) {
    // Between the trainer's exit and the Job controller's Complete condition: done, not "creating its pod".
    const message = `the trainer finished${finished ? ` (pod ${finished.metadata?.name})` : ""}; the Job controller is completing Job ${job.metadata?.name}`;
    return { phase: "Running", reason: "TrainerFinished", message };
  }
  const refused = podCreationFailure(pods, events);
  if (refused) return refused;
  const disrupted = replacingDisrupted(dj, pods, observed.deletedPods);
  if (disrupted) return disrupted;
  const lastPod = newestFirst(pods)[0];
  if ((job.status?.failed ?? 0) > 0 || lastPod?.status?.phase === "Failed") {
    const trainer = trainerMessage(lastTermination(pods, "Failed")?.message);
    const failed = Math.max(job.status?.failed ?? 0, 1);
    const message = `retrying after ${failed} failed attempt(s)` + (trainer ? `; trainer: ${trainer}` : "");
    return { phase: "Pending", reason: "Retrying", message: truncateMessage(message) };
  }
  return { phase: "Pending", reason: "JobCreated", message: `Job ${job.metadata?.name} is creating its pod` };
}

export function observe(dj: OwnerJob, observed: Observed): Observation {
  const { job, pods } = observed;
  if (observed.conflict !== undefined) {
    return { phase: "Failed", reason: "NameConflict", message: truncateMessage(observed.conflict) };
  }
  if (observed.previousChildren !== undefined) {
    return {
      phase: "Pending",
      reason: "PreviousChildDeleting",
      message: truncateMessage(observed.previousChildren),
    };
  }
  if (!job && observed.refused !== undefined) {
    const message = `the apiserver refused the trainer's children: ${observed.refused}`;
    return { phase: "Failed", reason: "InvalidSpec", message: truncateMessage(message) };
  }
  if (!job && observed.applyError !== undefined) {
    const message = `creating the trainer's ConfigMap or Job failed (retried): ${observed.applyError}`;
    return { phase: "Pending", reason: "ApplyFailed", message: truncateMessage(message) };
  }
  if (!job) return { phase: "Pending", reason: "Creating", message: "creating the trainer Job" };
  const failed = trueJobCondition(job, "Failed", "FailureTarget");
  if (failed) return failure(job, failed, pods);
  if (trueJobCondition(job, "Complete", "SuccessCriteriaMet")) return success(pods);
  return active(dj, job, pods, observed);
}

/**
 * Pods started so far; never less than reported before (a suspend deletes pods and resets `active`); one more
 * for a run restarted from outside (its Job replaced or suspended and resumed: its counts start again), and one
 * more for a pod disrupted from outside (the Job's counters skip it: status/disruption.ts).
 */
function attempts(previous: number | undefined, observed: Observed, disrupted: boolean): number {
  const s = observed.job?.status;
  const counted = (s?.active ?? 0) + (s?.succeeded ?? 0) + (s?.failed ?? 0);
  const before = (previous ?? 0) + (observed.restarted ? 1 : 0) + (disrupted ? 1 : 0);
  return Math.max(before, counted, observed.pods.length);
}

export const jobFinished = (job: V1Job) =>
  trueJobCondition(job, "Complete", "SuccessCriteriaMet", "Failed", "FailureTarget") !== undefined;

/**
 * A terminal status the cluster contradicts: the trainer Job is there and has not finished. The operator writes
 * a final status only from a finished Job, or before any Job exists, so this one was written by someone else
 * (`kubectl edit --subresource=status`); it is derived again from the cluster instead of being kept.
 */
export function contradictedByCluster(status: DistillationJobStatus, job: V1Job | undefined): boolean {
  // A suspended Job is one the operator stopped when the job failed without it (pendingDeadlineSeconds).
  return isTerminal(status.phase) && job !== undefined && !jobFinished(job) && job.spec?.suspend !== true;
}

/** Pending reasons that do not count against pendingDeadlineSeconds: the trainer has run and waits to retry. */
const NOT_STUCK = new Set(["Retrying"]);

/**
 * Since when the job has been waiting for its trainer to start: the later of the Running condition turning
 * False and the Suspended condition turning False (a resume, or Kueue's admission); `now` on the first look.
 */
function pendingSince(previous: DistillationJobStatus, now: string): string {
  const running = findCondition(previous.conditions, ConditionType.Running);
  if (!running || running.status === "True") return now;
  const suspended = findCondition(previous.conditions, ConditionType.Suspended);
  if (suspended?.status === "True") return now;
  const resumed = suspended?.lastTransitionTime ?? "";
  return resumed > running.lastTransitionTime ? resumed : running.lastTransitionTime;
}

/**
 * Milliseconds until the pending deadline of a job that waits for its trainer (undefined: no deadline runs);
 * zero or less once it has passed.
 */
export function pendingDeadlineIn(
  dj: OwnerJob,
  status: DistillationJobStatus,
  now: string,
): number | undefined {
  const seconds = dj.spec.runPolicy.pendingDeadlineSeconds;
  const reason = findCondition(status.conditions, ConditionType.Running)?.reason ?? "";
  if (!seconds || status.phase !== "Pending" || NOT_STUCK.has(reason)) return undefined;
  return Date.parse(pendingSince(status, now)) + seconds * 1000 - Date.parse(now);
}

/** A pending observation past runPolicy.pendingDeadlineSeconds becomes a failure with the same reason. */
function withPendingDeadline(
  dj: OwnerJob,
  previous: DistillationJobStatus,
  o: Observation,
  now: string,
): Observation {
  const seconds = dj.spec.runPolicy.pendingDeadlineSeconds;
  if (!seconds || o.phase !== "Pending" || NOT_STUCK.has(o.reason)) return o;
  const since = pendingSince(previous, now);
  if (Date.parse(now) - Date.parse(since) < seconds * 1000) return o;
  const message = `the trainer did not start within runPolicy.pendingDeadlineSeconds (${seconds} s): ${o.message}`;
  return { phase: "Failed", reason: o.reason, message: truncateMessage(message) };
}

/** What of a contradicted status is kept: only the timeline fields nobody can fake into meaning. */
function withoutClaims(status: DistillationJobStatus): DistillationJobStatus {
  const { phase: _phase, result: _result, completionTime: _done, progress: _progress, ...rest } = status;
  return rest;
}

/** The test accuracy of a finished run, shown where the running one was (printer column Student-Acc). */
function finalProgress(progress: Progress | undefined, result: Result | undefined): Progress | undefined {
  if (result?.studentAccuracy === undefined && result?.conflictRate === undefined) return progress;
  return {
    ...progress,
    ...(result.studentAccuracy !== undefined ? { studentAccuracy: result.studentAccuracy } : {}),
    ...(result.conflictRate !== undefined ? { conflictRate: result.conflictRate } : {}),
  };
}

function completionTime(job: V1Job | undefined, now: string): string {
  const failedAt = job?.status?.conditions?.find(
    (c) => c.type === "Failed" && c.status === "True",
  )?.lastTransitionTime;
  return toIso(job?.status?.completionTime) ?? toIso(failedAt) ?? now;
}

export function conditionsFor(
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
  list = o.unknown
    ? setCondition(
        list,
        { type: ConditionType.Running, status: "Unknown", reason: o.reason, message: o.message },
        now,
        gen,
      )
    : set(list, ConditionType.Running, o.phase === "Running", o.reason, o.message);
  list = optional(list, ConditionType.Suspended, o.phase === "Suspended");
  // The initializer downloading the inputs (only jobs with remote inputs ever get this condition).
  list = optional(list, ConditionType.Initializing, o.reason === "Initializing");
  list = optional(list, ConditionType.Succeeded, o.phase === "Succeeded");
  list = optional(list, ConditionType.Failed, o.phase === "Failed");
  return list;
}

/**
 * Failed with reason InvalidSpec: the spec cannot run (the schema or the apiserver refused it) and, being
 * immutable, cannot be fixed in place. Same conditions as any other failure, so every column and tool reads it.
 */
export function invalidSpecStatus(
  previous: DistillationJobStatus,
  message: string,
  now: string,
  generation?: number,
): DistillationJobStatus {
  const o: Observation = { phase: "Failed", reason: "InvalidSpec", message: truncateMessage(message) };
  return {
    ...previous,
    phase: "Failed",
    conditions: conditionsFor(previous, o, false, now, generation),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    completionTime: now,
  };
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
  const stored: DistillationJobStatus = dj.status ?? {};
  const generation = dj.metadata.generation;
  const { job } = observed;
  if (isTerminal(stored.phase) && !contradictedByCluster(stored, job)) return stored;
  const previous = isTerminal(stored.phase) ? withoutClaims(stored) : stored;
  const o = withPendingDeadline(dj, previous, observe(dj, observed), now);
  const startTime = previous.startTime ?? toIso(job?.metadata?.creationTimestamp);
  const running = (o.phase === "Running" && progress) || previous.progress;
  const latestProgress = o.phase === "Succeeded" ? finalProgress(running, o.result) : running;
  const disruption = newDisruption(previous.lastDisruption, [
    ...observed.pods,
    ...(observed.deletedPods ?? []),
  ]);
  const lastDisruption = disruption ?? previous.lastDisruption;
  const status: DistillationJobStatus = {
    phase: o.phase,
    conditions: conditionsFor(previous, o, job !== undefined, now, generation),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    ...(startTime ? { startTime } : {}),
    ...(isTerminal(o.phase) ? { completionTime: completionTime(job, now) } : {}),
    attempts: attempts(previous.attempts, observed, disruption !== undefined),
    ...(lastDisruption ? { lastDisruption } : {}),
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
