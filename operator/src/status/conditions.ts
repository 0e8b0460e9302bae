// metav1.Condition semantics: one condition per type; lastTransitionTime moves only when status flips.
// Also the one table of condition types and of the reasons the operator writes, each with its class: every file
// that asks "is this reason transient / worth a warning / a stuck container" asks this table.
import type { Condition } from "../../../api/v1alpha1/index.ts";

export const ConditionType = {
  Created: "Created",
  Running: "Running",
  Suspended: "Suspended",
  Succeeded: "Succeeded",
  Failed: "Failed",
  /**
   * The last apply of the children (Crossplane's `Synced`): False with reason ApplyFailed and the apiserver's
   * message while an apply fails, True once one succeeds again. Absent while nothing ever failed.
   */
  Synced: "Synced",
  /** The `fetch` initializer is downloading the inputs from object storage (status/storage.ts). */
  Initializing: "Initializing",
  /** A DistillationStudy's comparison (status.arms, best, comparisons): provisional until every run has ended. */
  Compared: "Compared",
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

/**
 * - transient: replaced by the Job controller, scheduler or kubelet within moments (Job created -> pod created ->
 *   pod running; trainer finished -> Job complete); announces no event, and a Pending one is held back briefly
 *   (coalesced).
 * - normal: a state worth a Normal event.
 * - warning: needs someone to act (a Warning event); the job stays Pending until it is fixed or times out.
 * - stuck: a container waiting reason the pod does not leave by itself: shown as the job's reason, a Warning.
 * - terminal: the reason of a finished job.
 */
export type ReasonClass = "transient" | "normal" | "warning" | "stuck" | "terminal";

export const REASONS = {
  // Pending on the way to Running.
  Creating: "transient",
  JobCreated: "transient",
  PodPending: "transient",
  Retrying: "normal",
  TrainerFinished: "transient",
  // The trainer pod was disrupted (status/disruption.ts) and the Job replaces it: its own Warning event says so.
  Disrupted: "transient",
  PreviousChildDeleting: "normal",
  Initializing: "normal",
  // Running, suspended.
  TrainerRunning: "normal",
  NodeUnreachable: "warning",
  Suspended: "normal",
  WaitingForAdmission: "normal",
  Preempted: "normal",
  // Needs someone to act: the scheduler or admission refuses the pod.
  Unschedulable: "warning",
  ExceededQuota: "warning",
  PriorityClassNotFound: "warning",
  FailedCreate: "warning",
  // Container waiting reasons of the kubelet (pkg/kubelet/images, kuberuntime, container) that a pod does not
  // leave by itself, or leaves only to fall back into (ErrImagePull <-> ImagePullBackOff).
  ImagePullBackOff: "stuck",
  ErrImagePull: "stuck",
  ErrImageNeverPull: "stuck",
  InvalidImageName: "stuck",
  ImageInspectError: "stuck",
  RegistryUnavailable: "stuck",
  SignatureValidationFailed: "stuck",
  CrashLoopBackOff: "stuck",
  RunContainerError: "stuck",
  CreateContainerConfigError: "stuck",
  CreateContainerError: "stuck",
  PreCreateHookError: "stuck",
  PreStartHookError: "stuck",
  PostStartHookError: "stuck",
  KillContainerError: "stuck",
  VerifyNonRootError: "stuck",
  // Finished.
  Completed: "terminal",
  BadConfig: "terminal",
  BadData: "terminal",
  InvalidSpec: "terminal",
  NameConflict: "terminal",
  // Object storage, from the trainer's or its initializer's exit code (api/v1alpha1/termination.ts).
  StorageAccessDenied: "terminal",
  StorageNotFound: "terminal",
  ChecksumMismatch: "terminal",
  StorageQuotaExceeded: "terminal",
  StorageTLSError: "terminal",
  // Synced.
  Applied: "normal",
  ApplyFailed: "warning",
  // A DistillationStudy's stages (status/study.ts): the stage that runs, how a study ends, its comparison.
  TeacherRunning: "normal",
  VariantsRunning: "normal",
  ReportRunning: "normal",
  TeacherFailed: "terminal",
  NoVariantSucceeded: "terminal",
  ReportFailed: "terminal",
  Provisional: "normal",
  AllRunsEnded: "normal",
  // Events only.
  Restarted: "warning",
  VariantSucceeded: "normal",
  VariantFailed: "warning",
  StatusRefused: "warning",
} as const satisfies Record<string, ReasonClass>;
export type Reason = keyof typeof REASONS;

/** The class of a reason; reasons copied from a Job's conditions (DeadlineExceeded...) are "normal" here. */
export function reasonClass(reason: string | undefined): ReasonClass {
  return (REASONS as Record<string, ReasonClass | undefined>)[reason ?? ""] ?? "normal";
}

const reasonsOf = (cls: ReasonClass): readonly string[] =>
  Object.entries(REASONS)
    .filter(([, c]) => c === cls)
    .map(([reason]) => reason);

/** Container waiting reasons that mean the pod will not start by itself: surfaced as condition reasons. */
export const STUCK_WAITING_REASONS: readonly string[] = reasonsOf("stuck");
export const isTransientReason = (reason: string | undefined) => reasonClass(reason) === "transient";
/** Reasons announced as Warning events: someone must act. */
export const isWarningReason = (reason: string | undefined) =>
  ["warning", "stuck"].includes(reasonClass(reason));

export type ConditionUpdate = Omit<Condition, "lastTransitionTime" | "observedGeneration">;

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "True";
}

/** Returns a new list with `update` set; the transition time of an unchanged status is kept. */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: string,
  observedGeneration?: number,
): Condition[] {
  const list = [...(conditions ?? [])];
  const existing = list.findIndex((c) => c.type === update.type);
  const previous = existing >= 0 ? list[existing] : undefined;
  const next: Condition = {
    ...update,
    lastTransitionTime: previous && previous.status === update.status ? previous.lastTransitionTime : now,
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
  };
  if (existing >= 0) list[existing] = next;
  else list.push(next);
  return list;
}
