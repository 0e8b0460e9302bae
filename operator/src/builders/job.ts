// The child batch/v1 Job that runs the trainer: a pure function of the DistillationJob (and, for Kueue, of the
// suspend flag already on the cluster).
import type {
  V1Container,
  V1Job,
  V1PodSpec,
  V1PodTemplateSpec,
  V1ResourceRequirements,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node";
import {
  DEFAULT_TRAINER_IMAGE,
  NON_RETRYABLE_EXIT_CODES,
  quantityValue,
  RESERVED_ENV_NAMES,
  type RuntimeSpec,
} from "../../../api/v1alpha1/index.ts";
import {
  CONFIG_FILE,
  CONFIG_MOUNT_DIR,
  LABEL_KUEUE_QUEUE,
  TRAINER_CONTAINER,
  configMapNameFor,
  jobNameFor,
} from "../names.ts";
import { childLabels, childMetadata, type OwnerJob } from "./common.ts";
import {
  FETCH_CONTAINER,
  fetchContainer,
  hasRemoteInputs,
  storageEnv,
  storageVolumes,
  userEnv,
} from "./storage.ts";

export const GPU_RESOURCE = "nvidia.com/gpu";
/** A fixed non-root UID: runAsNonRoot cannot verify a named USER, and fsGroup makes PVCs writable for it. */
export const TRAINER_UID = 1000;
const TMP_SIZE_LIMIT = "1Gi";

/**
 * CPU and memory the trainer container gets for what its spec leaves out (operator flags --trainer-*-request /
 * --trainer-*-limit): a namespace whose ResourceQuota covers requests or limits refuses a pod without them.
 */
export interface ResourceDefaults {
  requests: { cpu?: string; memory?: string };
  limits: { cpu?: string; memory?: string };
}

export const DEFAULT_RESOURCES: ResourceDefaults = {
  requests: { cpu: "1", memory: "2Gi" },
  limits: { cpu: "4", memory: "8Gi" },
};

export interface JobBuildOptions {
  /** Requests and limits for what the spec leaves unset (default DEFAULT_RESOURCES). */
  resourceDefaults?: ResourceDefaults;
  /** Replaces the schema's default image (ghcr.io/mokd/trainer), e.g. with a mirror. */
  trainerImage?: string;
  /** spec.suspend of the existing child Job, if any (see `desiredSuspend`). */
  observedSuspend?: boolean;
  /** Pull secrets of every trainer pod (operator flag --trainer-image-pull-secrets), before the job's own. */
  trainerImagePullSecrets?: string[];
  /** The ConfigMap mounted at CONFIG_MOUNT_DIR (default: the DistillationJob's, configMapNameFor). */
  configMapName?: string;
}

/**
 * The Kueue LocalQueue of a job: spec.queueName, else Kueue's own convention, a `kueue.x-k8s.io/queue-name`
 * label on the DistillationJob (as on any workload Kueue manages).
 */
export function queueNameOf(dj: OwnerJob): string | undefined {
  return dj.spec.queueName ?? (dj.metadata.labels?.[LABEL_KUEUE_QUEUE] || undefined);
}

/**
 * runPolicy.suspend wins. Under Kueue a new Job starts suspended and Kueue un-suspends it on admission, so for an
 * existing Job we re-apply what is on the cluster instead of fighting Kueue over the field.
 */
export function desiredSuspend(dj: OwnerJob, observedSuspend: boolean | undefined): boolean {
  if (dj.spec.runPolicy.suspend) return true;
  if (!queueNameOf(dj)) return false;
  return observedSuspend ?? true;
}

interface Mount {
  key: keyof RuntimeSpec["volumes"];
  path: string;
  readOnly: boolean;
  /** Without a PVC: an emptyDir (output and checkpoints), or nothing (data and teacher come with the image). */
  emptyDirWhenUnset: boolean;
}

const MOUNTS: Mount[] = [
  { key: "data", path: "/data", readOnly: true, emptyDirWhenUnset: false },
  { key: "teacher", path: "/teacher", readOnly: true, emptyDirWhenUnset: false },
  { key: "output", path: "/output", readOnly: false, emptyDirWhenUnset: true },
  { key: "checkpoints", path: "/checkpoints", readOnly: false, emptyDirWhenUnset: true },
];

function volumes(
  dj: OwnerJob,
  configMapName = configMapNameFor(dj.metadata.name),
): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const volumes: V1Volume[] = [
    { name: "config", configMap: { name: configMapName } },
    // The root filesystem is read-only: scratch space for the runtime and libraries that expect one.
    { name: "tmp", emptyDir: { sizeLimit: TMP_SIZE_LIMIT } },
  ];
  const mounts: V1VolumeMount[] = [
    { name: "config", mountPath: CONFIG_MOUNT_DIR, readOnly: true },
    { name: "tmp", mountPath: "/tmp" },
  ];
  for (const m of MOUNTS) {
    const source = dj.spec.runtime.volumes[m.key];
    if (source) {
      volumes.push({
        name: m.key,
        persistentVolumeClaim: { claimName: source.claimName, readOnly: m.readOnly },
      });
      mounts.push({
        name: m.key,
        mountPath: m.path,
        readOnly: m.readOnly,
        ...(source.subPath ? { subPath: source.subPath } : {}),
      });
    } else if (m.emptyDirWhenUnset) {
      volumes.push({ name: m.key, emptyDir: {} });
      mounts.push({ name: m.key, mountPath: m.path });
    }
  }
  const storage = storageVolumes(dj);
  return { volumes: [...volumes, ...storage.volumes], mounts: [...mounts, ...storage.mounts] };
}

type Quantity = string | number;

/**
 * One resource (cpu or memory): the spec's values, else the defaults, kept consistent the way the apiserver
 * needs them (request <= limit). A limit set alone stays alone (Kubernetes then takes it as the request); a
 * request set alone gets the default limit, raised to the request when the request is larger.
 */
function oneResource(
  request: Quantity | undefined,
  limit: Quantity | undefined,
  defaults: { request?: string; limit?: string },
): { request?: string; limit?: string } {
  if (request !== undefined && limit !== undefined) return { request: String(request), limit: String(limit) };
  if (limit !== undefined) return { limit: String(limit) };
  if (request !== undefined) {
    const d = defaults.limit;
    const raised = d === undefined || quantityValue(request) > quantityValue(d) ? String(request) : d;
    return { request: String(request), limit: raised };
  }
  const { request: dr, limit: dl } = defaults;
  if (dr !== undefined && dl !== undefined && quantityValue(dr) > quantityValue(dl))
    return { request: dl, limit: dl };
  return { ...(dr !== undefined ? { request: dr } : {}), ...(dl !== undefined ? { limit: dl } : {}) };
}

function resources(runtime: RuntimeSpec, defaults: ResourceDefaults): V1ResourceRequirements {
  const limits: Record<string, string> = {};
  const requests: Record<string, string> = {};
  for (const name of ["cpu", "memory"] as const) {
    const r = oneResource(runtime.resources?.requests?.[name], runtime.resources?.limits?.[name], {
      request: defaults.requests[name],
      limit: defaults.limits[name],
    });
    if (r.request !== undefined) requests[name] = r.request;
    if (r.limit !== undefined) limits[name] = r.limit;
  }
  // Extended resources are limits only: their requests default to the limit.
  if (runtime.gpus > 0) limits[GPU_RESOURCE] = String(runtime.gpus);
  return {
    ...(Object.keys(limits).length ? { limits } : {}),
    ...(Object.keys(requests).length ? { requests } : {}),
  };
}

/** The operator's own variables; the schema refuses user env with these names (RESERVED_ENV_NAMES). */
function operatorEnv(dj: OwnerJob): { name: (typeof RESERVED_ENV_NAMES)[number]; value: string }[] {
  return [
    { name: "MOKD_CONFIG", value: `${CONFIG_MOUNT_DIR}/${CONFIG_FILE}` },
    { name: "MOKD_JOB_NAME", value: dj.metadata.name },
    { name: "MOKD_JOB_NAMESPACE", value: dj.metadata.namespace },
    // runtime is the operator's section, not in the trainer's config: the two fields the trainer acts on.
    { name: "MOKD_BACKEND", value: dj.spec.runtime.backend },
    { name: "MOKD_GPUS", value: String(dj.spec.runtime.gpus) },
  ];
}

function trainerContainer(dj: OwnerJob, options: JobBuildOptions, mounts: V1VolumeMount[]): V1Container {
  const { runtime, metrics } = dj.spec;
  const image =
    runtime.image === DEFAULT_TRAINER_IMAGE && options.trainerImage ? options.trainerImage : runtime.image;
  return {
    name: TRAINER_CONTAINER,
    image,
    ...(runtime.imagePullPolicy ? { imagePullPolicy: runtime.imagePullPolicy } : {}),
    env: [...operatorEnv(dj), ...storageEnv(dj), ...userEnv(runtime)],
    ...(metrics.port > 0
      ? { ports: [{ name: "metrics", containerPort: metrics.port, protocol: "TCP" }] }
      : {}),
    resources: resources(runtime, options.resourceDefaults ?? DEFAULT_RESOURCES),
    volumeMounts: mounts,
    // The trainer writes its Result JSON to /dev/termination-log; a crash leaves the log tail instead.
    terminationMessagePolicy: "FallbackToLogsOnError",
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      // Writable: only its volumes (/output, /checkpoints, /tmp); the image cannot be changed under it.
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      seccompProfile: { type: "RuntimeDefault" },
    },
  };
}

function podSpec(dj: OwnerJob, options: JobBuildOptions): V1PodSpec {
  const { runtime } = dj.spec;
  const { volumes: vols, mounts } = volumes(dj, options.configMapName);
  const trainer = trainerContainer(dj, options, mounts);
  return {
    restartPolicy: "Never",
    // No API token even with a service account: workload identity webhooks (EKS, AKS) project their own token
    // volume, and GKE's uses the metadata server; the trainer never talks to the API server.
    automountServiceAccountToken: false,
    ...(runtime.serviceAccountName ? { serviceAccountName: runtime.serviceAccountName } : {}),
    enableServiceLinks: false,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: TRAINER_UID,
      runAsGroup: TRAINER_UID,
      fsGroup: TRAINER_UID,
      seccompProfile: { type: "RuntimeDefault" },
    },
    ...(hasRemoteInputs(dj) ? { initContainers: [fetchContainer(trainer)] } : {}),
    containers: [trainer],
    volumes: vols,
    ...(runtime.nodeSelector ? { nodeSelector: runtime.nodeSelector } : {}),
    ...(runtime.tolerations ? { tolerations: runtime.tolerations } : {}),
    ...(runtime.affinity ? { affinity: runtime.affinity } : {}),
    ...(runtime.priorityClassName ? { priorityClassName: runtime.priorityClassName } : {}),
    ...pullSecrets([...(options.trainerImagePullSecrets ?? []), ...(runtime.imagePullSecrets ?? [])]),
  };
}

/** The operator's and the job's pull secrets, once each. */
function pullSecrets(names: string[]): Pick<V1PodSpec, "imagePullSecrets"> {
  const unique = [...new Set(names)];
  return unique.length > 0 ? { imagePullSecrets: unique.map((name) => ({ name })) } : {};
}

/**
 * The trainer pod template of a job's spec: what every pod the operator runs is built from (a DistillationJob's
 * and, with its own labels, env and command on top, each stage of a DistillationStudy: builders/study.ts).
 */
export function buildPodTemplate(
  dj: OwnerJob,
  options: JobBuildOptions,
  labels: Record<string, string>,
): V1PodTemplateSpec {
  const { runtime } = dj.spec;
  return {
    metadata: {
      labels: { ...runtime.podLabels, ...labels },
      ...(runtime.podAnnotations ? { annotations: runtime.podAnnotations } : {}),
    },
    spec: podSpec(dj, options),
  };
}

export function buildJob(dj: OwnerJob, options: JobBuildOptions = {}): V1Job {
  const { runPolicy } = dj.spec;
  const queueName = queueNameOf(dj);
  const metadata = childMetadata(dj, jobNameFor(dj.metadata.name), "trainer");
  if (queueName) metadata.labels = { ...metadata.labels, [LABEL_KUEUE_QUEUE]: queueName };
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata,
    spec: {
      backoffLimit: runPolicy.backoffLimit,
      ...(runPolicy.activeDeadlineSeconds ? { activeDeadlineSeconds: runPolicy.activeDeadlineSeconds } : {}),
      suspend: desiredSuspend(dj, options.observedSuspend),
      completions: 1,
      parallelism: 1,
      podFailurePolicy: {
        rules: [
          {
            action: "FailJob",
            onExitCodes: {
              containerName: TRAINER_CONTAINER,
              operator: "In",
              values: [...NON_RETRYABLE_EXIT_CODES],
            },
          },
          // The initializer fails the same way on bad config, access denied, not found, checksum mismatch.
          ...(hasRemoteInputs(dj)
            ? [
                {
                  action: "FailJob",
                  onExitCodes: {
                    containerName: FETCH_CONTAINER,
                    operator: "In",
                    values: [...NON_RETRYABLE_EXIT_CODES],
                  },
                },
              ]
            : []),
          // Evictions, preemption and node drains are not the trainer's fault: do not count them as retries.
          { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
        ],
      },
      template: buildPodTemplate(dj, options, childLabels(dj, "trainer")),
    },
  };
}
