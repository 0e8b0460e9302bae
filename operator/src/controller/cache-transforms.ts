// What the informer caches keep of each child (controller-runtime's cache TransformFunc): only the fields the
// reconciler, status derivation (status/derive.ts), progress tracking and owner mapping read. The caches are
// most of the operator's memory: a pod is several KiB of spec the operator never looks at, a ConfigMap holds
// the whole trainer config. Reading a new field of a cached child means keeping it here.
import type { CoreV1Event, V1ConfigMap, V1Job, V1ObjectMeta, V1Pod } from "@kubernetes/client-node";
import { FIELD_MANAGER } from "../names.ts";
import { hashOf } from "./canonical.ts";
import { mutableSpecOf } from "./job-update.ts";

/** Metadata without the (potentially large) last-applied-configuration copy of kubectl's client-side apply. */
function slimMeta(meta: V1ObjectMeta | undefined): V1ObjectMeta | undefined {
  const annotations = meta?.annotations;
  if (!annotations || !("kubectl.kubernetes.io/last-applied-configuration" in annotations)) return meta;
  const { "kubectl.kubernetes.io/last-applied-configuration": _dropped, ...rest } = annotations;
  return { ...meta, annotations: rest };
}

/** Pod conditions status derivation reads: scheduling, and a lost node (Ready=False, eviction). */
const POD_CONDITIONS = new Set(["PodScheduled", "Ready", "DisruptionTarget"]);

/**
 * Pods: metadata, the node and its not-ready/unreachable tolerations, phase, IP, the conditions of
 * POD_CONDITIONS and each container's name and state.
 */
export function slimPod(pod: V1Pod): V1Pod {
  const status = pod.status;
  const tolerations = pod.spec?.tolerations?.filter((t) => t.key?.startsWith("node.kubernetes.io/"));
  return {
    metadata: slimMeta(pod.metadata),
    ...(pod.spec
      ? {
          spec: {
            containers: [],
            ...(pod.spec.nodeName ? { nodeName: pod.spec.nodeName } : {}),
            ...(tolerations?.length ? { tolerations } : {}),
          },
        }
      : {}),
    ...(status
      ? {
          status: {
            phase: status.phase,
            podIP: status.podIP,
            conditions: status.conditions
              ?.filter((c) => POD_CONDITIONS.has(c.type))
              // The time only of DisruptionTarget: status.lastDisruption.time (status/disruption.ts).
              .map(({ type, status: s, reason, message, lastTransitionTime }) => ({
                type,
                status: s,
                reason,
                message,
                ...(type === "DisruptionTarget" && lastTransitionTime ? { lastTransitionTime } : {}),
              })),
            containerStatuses: status.containerStatuses?.map(
              (c) =>
                ({ name: c.name, state: c.state }) as NonNullable<typeof status.containerStatuses>[number],
            ),
            // The `fetch` initializer's state: Initializing while it runs, its exit code when it fails.
            ...(status.initContainerStatuses
              ? {
                  initContainerStatuses: status.initContainerStatuses.map(
                    (c) =>
                      ({ name: c.name, state: c.state }) as NonNullable<
                        typeof status.initContainerStatuses
                      >[number],
                  ),
                }
              : {}),
          },
        }
      : {}),
  };
}

/**
 * Jobs: metadata, the spec fields the reconciler may patch (suspend, also for Kueue; backoffLimit;
 * activeDeadlineSeconds: job-update.ts) and the whole (small) status; not the pod template.
 */
export function slimJob(job: V1Job): V1Job {
  return {
    metadata: slimMeta(job.metadata),
    ...(job.spec ? { spec: mutableSpecOf(job) as V1Job["spec"] } : {}),
    ...(job.status ? { status: job.status } : {}),
  };
}

/**
 * Cache-only annotation, never written to the API: a hash of the live ConfigMap's data, kept when the data itself
 * is dropped, so a trainer config edited or emptied by hand is noticed and restored (the spec-hash annotation
 * alone says only what we last applied, not what is there now).
 */
export const OBSERVED_DATA_HASH = "mokd.io/observed-data-hash";

export const dataHashOf = (configMap: V1ConfigMap): string =>
  hashOf({ data: configMap.data ?? {}, binaryData: configMap.binaryData ?? {} });

/** ConfigMaps: metadata plus a hash of the data (see OBSERVED_DATA_HASH), not the config itself. */
export function slimConfigMap(configMap: V1ConfigMap): V1ConfigMap {
  const metadata = slimMeta(configMap.metadata);
  return {
    metadata: {
      ...metadata,
      annotations: { ...metadata?.annotations, [OBSERVED_DATA_HASH]: dataHashOf(configMap) },
    },
  };
}

/**
 * Of managedFields, only who else wrote which top-level status fields (status/trust.ts drops and removes them):
 * entries of other managers on the status subresource, each with just its top-level `f:status` keys.
 */
function foreignStatusEntries(meta: V1ObjectMeta | undefined): V1ObjectMeta["managedFields"] {
  return meta?.managedFields
    ?.filter((e) => e.manager !== FIELD_MANAGER && e.subresource === "status")
    .map((e) => {
      const status = (e.fieldsV1 as Record<string, object> | undefined)?.["f:status"] ?? {};
      const keys = Object.fromEntries(Object.keys(status).map((k) => [k, {}]));
      return { manager: e.manager, subresource: e.subresource, fieldsV1: { "f:status": keys } };
    });
}

/**
 * DistillationJobs are read whole (the spec is parsed); kubectl's last-applied copy is dropped, and of
 * managedFields (the informer keeps them for this cache only) only foreignStatusEntries.
 */
export function slimDistillationJob<T extends { metadata?: V1ObjectMeta }>(dj: T): T {
  const metadata = slimMeta(dj.metadata);
  if (!metadata?.managedFields) return metadata === dj.metadata ? dj : { ...dj, metadata };
  const managedFields = foreignStatusEntries(metadata);
  const { managedFields: _all, ...rest } = metadata;
  return { ...dj, metadata: managedFields?.length ? { ...rest, managedFields } : rest };
}

/** Events (FailedCreate of child Jobs): whom they are about, why, and when; not their source or series. */
export function slimEvent(event: CoreV1Event): CoreV1Event {
  const { name, namespace, uid, resourceVersion } = event.metadata ?? {};
  const { kind, name: objectName, namespace: objectNamespace, uid: objectUid } = event.involvedObject ?? {};
  return {
    metadata: { name, namespace, uid, resourceVersion },
    involvedObject: { kind, name: objectName, namespace: objectNamespace, uid: objectUid },
    reason: event.reason,
    message: event.message,
    type: event.type,
    ...(event.firstTimestamp ? { firstTimestamp: event.firstTimestamp } : {}),
    ...(event.lastTimestamp ? { lastTimestamp: event.lastTimestamp } : {}),
    ...(event.eventTime ? { eventTime: event.eventTime } : {}),
  } as CoreV1Event;
}
