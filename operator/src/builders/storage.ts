// What the trainer pod needs for object storage, kept apart from the rest of the Job builder: the `fetch` init
// container (the trainer image's initializer, `trainer fetch`) that downloads the spec's s3:// and http(s) inputs
// into a cache volume before the trainer starts; the credentials as environment variables from the referenced
// Secret (read by the kubelet, never by the operator); the CA bundle of a private endpoint; user env from
// Secret/ConfigMap keys.
import type { V1Container, V1EnvVar, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import {
  CREDENTIAL_SECRET_KEYS,
  isRemoteUri,
  STORAGE_CA_DIR,
  STORAGE_CA_ENV,
  type RuntimeSpec,
} from "../../../api/v1alpha1/index.ts";
import type { OwnerJob } from "./common.ts";

export const FETCH_CONTAINER = "fetch";
/** The cache volume: the init container downloads into it, the trainer reads from it. */
export const CACHE_DIR = "/mokd/cache";
const CACHE_VOLUME = "storage-cache";
const CA_VOLUME = "storage-ca";

/** Whether the spec names any input the init container must download. */
export function hasRemoteInputs(dj: OwnerJob): boolean {
  const { data, teacher, student } = dj.spec;
  return [data.path, teacher.model, student.model].some(isRemoteUri);
}

/** Whether the pod talks to object storage at all (inputs, outputs or checkpoints). */
export function usesStorage(dj: OwnerJob): boolean {
  const { output } = dj.spec;
  return hasRemoteInputs(dj) || output.uri !== undefined || output.checkpoints.uri !== undefined;
}

/** Volumes and mounts for storage: the cache (with remote inputs) and the CA bundle (when set). */
export function storageVolumes(dj: OwnerJob): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  if (hasRemoteInputs(dj)) {
    const claim = dj.spec.storage.cache?.claimName;
    // An emptyDir goes with the pod: only a claim lets a retry or a resume find the downloads.
    volumes.push(
      claim
        ? { name: CACHE_VOLUME, persistentVolumeClaim: { claimName: claim } }
        : { name: CACHE_VOLUME, emptyDir: {} },
    );
    mounts.push({ name: CACHE_VOLUME, mountPath: CACHE_DIR });
  }
  const ca = dj.spec.storage.caBundle;
  if (ca) {
    volumes.push({
      name: CA_VOLUME,
      configMap: { name: ca.configMap, items: [{ key: ca.key, path: ca.key }] },
    });
    mounts.push({ name: CA_VOLUME, mountPath: STORAGE_CA_DIR, readOnly: true });
  }
  return { volumes, mounts };
}

/** The operator's storage variables: the cache dir, the CA bundle, the credentials from the Secret. */
export function storageEnv(dj: OwnerJob): V1EnvVar[] {
  if (!usesStorage(dj)) return [];
  const { caBundle, credentialsSecret } = dj.spec.storage;
  return [
    ...(hasRemoteInputs(dj) ? [{ name: "MOKD_CACHE_DIR", value: CACHE_DIR }] : []),
    ...(caBundle ? [{ name: STORAGE_CA_ENV, value: `${STORAGE_CA_DIR}/${caBundle.key}` }] : []),
    ...(credentialsSecret
      ? CREDENTIAL_SECRET_KEYS.map((key) => ({
          name: key,
          valueFrom: {
            secretKeyRef: {
              name: credentialsSecret,
              key,
              ...(key === "AWS_SESSION_TOKEN" ? { optional: true } : {}),
            },
          },
        }))
      : []),
  ];
}

/** runtime.env as container env: plain values, or references to Secret/ConfigMap keys. */
export function userEnv(runtime: RuntimeSpec): V1EnvVar[] {
  return (runtime.env ?? []).map((e) =>
    e.valueFrom
      ? {
          name: e.name,
          valueFrom: {
            ...(e.valueFrom.secretKeyRef ? { secretKeyRef: e.valueFrom.secretKeyRef } : {}),
            ...(e.valueFrom.configMapKeyRef ? { configMapKeyRef: e.valueFrom.configMapKeyRef } : {}),
          },
        }
      : { name: e.name, value: e.value },
  );
}

/**
 * The init container: the trainer's image and environment running `trainer fetch`, with the config and the
 * cache mounted; the trainer container's security context (restricted PSS).
 */
export function fetchContainer(trainer: V1Container): V1Container {
  const keep = new Set(["config", "tmp", CACHE_VOLUME, CA_VOLUME]);
  return {
    name: FETCH_CONTAINER,
    image: trainer.image,
    ...(trainer.imagePullPolicy ? { imagePullPolicy: trainer.imagePullPolicy } : {}),
    command: ["node", "trainer/src/cli.ts", "fetch"],
    env: trainer.env,
    // Downloads are I/O: the trainer's requests, not its GPUs.
    resources: {
      ...(trainer.resources?.requests ? { requests: trainer.resources.requests } : {}),
      ...(trainer.resources?.limits
        ? {
            limits: Object.fromEntries(
              Object.entries(trainer.resources.limits).filter(([k]) => k === "cpu" || k === "memory"),
            ),
          }
        : {}),
    },
    volumeMounts: (trainer.volumeMounts ?? []).filter((m) => keep.has(m.name)),
    terminationMessagePolicy: "FallbackToLogsOnError",
    securityContext: trainer.securityContext,
  };
}
