// A trainer pod disrupted from outside: preempted by the scheduler, evicted through the Eviction API (a drain),
// deleted by the taint manager (a lost node), terminated by the kubelet (node pressure) or by the pod GC. The
// pod gets the DisruptionTarget condition; the child Job's podFailurePolicy ignores its failure (not the
// trainer's fault, not a retry) and starts a new pod. Without this module the run restarted silently: the
// Job's counters skip the pod and the pod soon vanishes. Here it becomes status.lastDisruption, one more
// attempt, and a Warning event (controller/transitions.ts).
//
// What was counted is remembered in the status itself, by pod UID (status.lastDisruption.podUID), not in the
// operator's memory: a reconcile may see the same pod terminating several times, then gone, and an operator
// restart starts from the stored status, so each disrupted pod counts once. Only one trainer pod runs at a time
// (parallelism 1; with a podFailurePolicy the Job replaces a pod only once it has failed), so the newest
// disrupted pod in view is the latest disruption: one counter of the pod's UID suffices.
import type { V1Pod } from "@kubernetes/client-node";
import type { Disruption } from "../../../api/v1alpha1/index.ts";
import type { OwnerJob } from "../owner-job.ts";
import { truncateMessage } from "./text.ts";

const created = (pod: V1Pod) => {
  const t = pod.metadata?.creationTimestamp;
  return t === undefined ? "" : typeof t === "string" ? t : t.toISOString();
};

function timeOf(value: unknown): string | undefined {
  if (value instanceof Date) return value.toISOString();
  return typeof value === "string" && value ? value : undefined;
}

/** The pod's disruption, if it is a disruption target that did not finish its work first. */
export function disruptionOf(pod: V1Pod): Disruption | undefined {
  if (pod.status?.phase === "Succeeded") return undefined;
  const target = pod.status?.conditions?.find((c) => c.type === "DisruptionTarget" && c.status === "True");
  const { name, uid } = pod.metadata ?? {};
  if (!target || !name || !uid) return undefined;
  const time = timeOf(target.lastTransitionTime);
  return {
    pod: name,
    podUID: uid,
    reason: target.reason || "DisruptionTarget",
    ...(target.message ? { message: truncateMessage(target.message) } : {}),
    ...(time ? { time } : {}),
  };
}

/** The newest disrupted pod among `pods` (live, terminating, or remembered after deletion). */
export function latestDisruption(pods: readonly V1Pod[]): Disruption | undefined {
  const newest = pods
    .map((pod) => ({ pod, disruption: disruptionOf(pod) }))
    .filter((d) => d.disruption !== undefined)
    .sort(
      (a, b) =>
        created(b.pod).localeCompare(created(a.pod)) ||
        (b.disruption!.time ?? "").localeCompare(a.disruption!.time ?? ""),
    )[0];
  return newest?.disruption;
}

/**
 * The disruption to count now: the newest disrupted pod in view unless it is the one counted already (same UID),
 * or older than it (its condition turned True before the counted one's: an earlier pod still in view).
 */
export function newDisruption(
  counted: Disruption | undefined,
  pods: readonly V1Pod[],
): Disruption | undefined {
  const latest = latestDisruption(pods);
  if (!latest || latest.podUID === counted?.podUID) return undefined;
  if (latest.time && counted?.time && latest.time < counted.time) return undefined;
  return latest;
}

/** Where a restarted run resumes from, for this job's spec (said in the events of restarts and disruptions). */
export function resumesFrom(dj: OwnerJob): string {
  const uri = dj.spec.output.checkpoints.uri;
  if (uri) return `from its last checkpoint under ${uri}, if one was uploaded`;
  if (dj.spec.runtime.volumes.checkpoints)
    return "from its last checkpoint on the checkpoints volume, if one was written";
  return "from the start: its checkpoints were in the pod's emptyDir (set spec.output.checkpoints.uri or spec.runtime.volumes.checkpoints to keep them)";
}

/** The message of the Disrupted event and of the job's Running condition until the new pod starts. */
export function disruptionMessage(d: Disruption, resumes: string): string {
  const why = d.message ? `${d.reason}: ${d.message}` : d.reason;
  return truncateMessage(
    `pod ${d.pod} was disrupted (${why}); the Job starts a new pod, which resumes ${resumes}`,
  );
}
