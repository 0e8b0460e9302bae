// Which events a status change announces: a pure function of (previous, next), unit-tested without a recorder.
import type { DistillationJobStatus } from "../../../api/v1alpha1/index.ts";
import { ConditionType, findCondition, isTransientReason, isWarningReason } from "../status/conditions.ts";
import { isTerminal } from "../status/derive.ts";
import { disruptionMessage } from "../status/disruption.ts";
import { truncateMessage } from "../status/text.ts";

export interface PlannedEvent {
  /** What it announces: a phase or stuck reason, the apply's Synced condition, or a disrupted trainer pod. */
  about: "phase" | "synced" | "disruption";
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

/**
 * One event per phase transition, and one when a pending job gets stuck for a new reason (Unschedulable,
 * image pulls, crash loops, retries); not for the transient steps in between.
 */
export function phaseEvent(
  previous: DistillationJobStatus,
  next: DistillationJobStatus,
): PlannedEvent | undefined {
  const before = findCondition(previous.conditions, ConditionType.Running);
  const after = findCondition(next.conditions, ConditionType.Running);
  const phaseChanged = previous.phase !== next.phase;
  const newReason = before?.reason !== after?.reason && !isTransientReason(after?.reason);
  if (!phaseChanged && !newReason) return undefined;
  const reason = next.phase === "Succeeded" ? "Succeeded" : (after?.reason ?? next.phase ?? "Pending");
  const failing = next.phase === "Failed" || isWarningReason(reason);
  const message = `${previous.phase ?? "New"} -> ${next.phase}: ${after?.message ?? ""}`.trim();
  return { about: "phase", type: failing ? "Warning" : "Normal", reason, message };
}

/** A Warning event when an apply starts failing or fails differently; a Normal one when it recovers. */
export function syncedEvent(
  previous: DistillationJobStatus,
  next: DistillationJobStatus,
): PlannedEvent | undefined {
  const before = findCondition(previous.conditions, ConditionType.Synced);
  const after = findCondition(next.conditions, ConditionType.Synced);
  if (!after || (before?.status === after.status && before.message === after.message)) return undefined;
  const type = after.status === "False" ? "Warning" : "Normal";
  return { about: "synced", type, reason: after.reason, message: after.message };
}

/**
 * A Warning event when a newly disrupted trainer pod is counted (status.lastDisruption names another pod than
 * before): once per pod, however often a reconcile sees it. `resumes` says from where the new pod resumes.
 */
export function disruptionEvent(
  previous: DistillationJobStatus,
  next: DistillationJobStatus,
  resumes = "from its last checkpoint, if one was kept",
): PlannedEvent | undefined {
  const disruption = next.lastDisruption;
  if (!disruption || disruption.podUID === previous.lastDisruption?.podUID) return undefined;
  const attempt = next.attempts ? `; attempts: ${next.attempts}` : "";
  const message = truncateMessage(disruptionMessage(disruption, resumes) + attempt);
  return { about: "disruption", type: "Warning", reason: "Disrupted", message };
}

/** Every event a written status change announces, in order. */
export function eventsFor(
  previous: DistillationJobStatus,
  next: DistillationJobStatus,
  resumes?: string,
): PlannedEvent[] {
  const disruption = disruptionEvent(previous, next, resumes);
  const phase = phaseEvent(previous, next);
  const synced = syncedEvent(previous, next);
  // An apply failing before any Job exists is also the phase's reason: one event says it.
  const same = phase && synced && phase.reason === synced.reason;
  // A disruption is announced once, by its pod (above), not again by the phase change it causes.
  const shownPhase = phase?.reason === "Disrupted" ? undefined : phase;
  return [disruption, shownPhase, same ? undefined : synced].filter(
    (e): e is PlannedEvent => e !== undefined,
  );
}

/** Seconds from start to completion of a job that just finished (for the duration histogram). */
export function finishedSeconds(
  previous: DistillationJobStatus,
  next: DistillationJobStatus,
): number | undefined {
  if (previous.phase === next.phase || !isTerminal(next.phase) || !next.startTime || !next.completionTime) {
    return undefined;
  }
  return Math.max(0, (Date.parse(next.completionTime) - Date.parse(next.startTime)) / 1000);
}
