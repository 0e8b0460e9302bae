// The desired children (ConfigMap, Job) and how they are applied: a new Job whole, an existing one only in its
// mutable fields (job-update.ts); an unchanged child (same spec hash) is not sent at all.
import type { V1ConfigMap, V1Job } from "@kubernetes/client-node";
import { buildConfigMap } from "../builders/configmap.ts";
import { buildJob, type ResourceDefaults } from "../builders/job.ts";
import { LABEL_KUEUE_QUEUE } from "../names.ts";
import type { OwnerJob } from "../owner-job.ts";
import { jobFinished } from "../status/derive.ts";
import { dataHashOf, OBSERVED_DATA_HASH } from "./cache-transforms.ts";
import { hashOf } from "./canonical.ts";
import { jobSpecUpdate } from "./job-update.ts";
import type { ClusterWriter } from "./kube.ts";

/** Annotation on each child: hash of what we last applied, so an unchanged child is not re-applied. */
export const SPEC_HASH_ANNOTATION = "mokd.io/spec-hash";

export interface ChildOptions {
  trainerImage?: string;
  /** Pull secrets of every trainer pod (operator flag), merged with a job's runtime.imagePullSecrets. */
  trainerImagePullSecrets?: string[];
  /** tolerationSeconds for the not-ready/unreachable NoExecute taints on trainer pods (unset or 0: none). */
  nodeLossTolerationSeconds?: number;
  /** CPU/memory for trainer containers whose spec leaves them out (builders/job.ts DEFAULT_RESOURCES). */
  resourceDefaults?: ResourceDefaults;
}

export function withHash<T extends { metadata?: { annotations?: Record<string, string> } }>(obj: T): T {
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

/** The taints the node lifecycle controller puts on a node that stopped responding. */
export const NODE_LOSS_TAINTS = ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] as const;

/** Tolerates a lost node for `seconds` (not the 300 s default), unless the spec sets its own for that taint. */
export function withNodeLossTolerations(job: V1Job, seconds: number | undefined): void {
  const pod = job.spec?.template.spec;
  if (!pod || !seconds) return;
  const own = new Set((pod.tolerations ?? []).map((t) => t.key));
  const added = NODE_LOSS_TAINTS.filter((key) => !own.has(key)).map((key) => ({
    key,
    operator: "Exists",
    effect: "NoExecute",
    tolerationSeconds: seconds,
  }));
  if (added.length) pod.tolerations = [...(pod.tolerations ?? []), ...added];
}

export const desiredConfigMap = (dj: OwnerJob) => withHash(buildConfigMap(dj));

/** The desired Job; `name` keeps the name an existing Job of this DistillationJob has (legacyJobNameFor). */
export function desiredJob(
  dj: OwnerJob,
  options: ChildOptions,
  observedSuspend?: boolean,
  name?: string,
): V1Job {
  const job = buildJob(dj, {
    trainerImage: options.trainerImage,
    trainerImagePullSecrets: options.trainerImagePullSecrets,
    observedSuspend,
    ...(options.resourceDefaults ? { resourceDefaults: options.resourceDefaults } : {}),
  });
  if (name) job.metadata = { ...job.metadata, name };
  withNodeLossTolerations(job, options.nodeLossTolerationSeconds);
  return withHash(job);
}

export async function applyConfigMap(
  writer: ClusterWriter,
  desired: V1ConfigMap,
  cached: V1ConfigMap | undefined,
): Promise<void> {
  if (!configMapCurrent(desired, cached)) await writer.applyConfigMap(desired);
}

/**
 * A new Job is applied whole; an existing one gets only its mutable fields (job-update.ts): it keeps the pod
 * template it was created with, also when this operator would build another one (a new trainer image).
 */
export async function applyJob(
  writer: ClusterWriter,
  desired: V1Job,
  cached: V1Job | undefined,
): Promise<V1Job> {
  if (!cached) return writer.applyJob(desired);
  const update = jobSpecUpdate(desired, cached);
  if (!update) return cached;
  const { namespace, name } = desired.metadata as { namespace: string; name: string };
  return writer.patchJob(namespace, name, update);
}

/**
 * Stops the unfinished Job of a run that ended without it (its pending deadline passed): suspended, so the Job
 * controller deletes its pods and the Job stays as the record. Kueue undoes that suspend while the Job's Workload
 * is admitted (it un-suspends the Jobs it admitted), so a queued Job is ended instead: activeDeadlineSeconds 1
 * has the Job controller fail it (DeadlineExceeded) and delete its pods, and Kueue then releases its quota.
 */
export async function stopUnfinishedJob(
  writer: Pick<ClusterWriter, "patchJob">,
  job: V1Job | undefined,
): Promise<void> {
  const { namespace, name, labels } = job?.metadata ?? {};
  if (!job || !namespace || !name || jobFinished(job) || job.spec?.suspend) return;
  const queued = Boolean(labels?.[LABEL_KUEUE_QUEUE]);
  await writer.patchJob(namespace, name, queued ? { activeDeadlineSeconds: 1 } : { suspend: true });
}
