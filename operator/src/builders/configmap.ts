// The ConfigMap holding the trainer's config: the whole defaulted DistillationJob (the trainer parses it with the
// same schema), so the trainer never needs API access to learn what to do.
import type { V1ConfigMap } from "@kubernetes/client-node";
import { API_VERSION, KIND } from "../../../api/v1alpha1/index.ts";
import { CONFIG_FILE, configMapNameFor } from "../names.ts";
import { SpecRefusal } from "../status/refusal.ts";
import { childMetadata, type OwnerJob } from "./common.ts";

/** The apiserver's limit on a ConfigMap's data (keys and values, in bytes). */
export const CONFIGMAP_MAX_BYTES = 1024 * 1024;

export function trainerConfig(dj: OwnerJob): string {
  const { name, namespace, uid, generation } = dj.metadata;
  const manifest = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, namespace, uid, generation },
    spec: dj.spec,
  };
  return JSON.stringify(manifest, null, 2) + "\n";
}

/** Throws a SpecRefusal when the trainer config would not fit a ConfigMap (the apiserver would refuse it). */
export function buildConfigMap(dj: OwnerJob): V1ConfigMap {
  const config = trainerConfig(dj);
  const bytes = Buffer.byteLength(CONFIG_FILE) + Buffer.byteLength(config);
  if (bytes > CONFIGMAP_MAX_BYTES) {
    throw new SpecRefusal(
      `spec: the trainer config would be ${bytes} bytes, over the ConfigMap limit of ${CONFIGMAP_MAX_BYTES} ` +
        "(large values in env, podAnnotations or affinity?)",
    );
  }
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: childMetadata(dj, configMapNameFor(dj.metadata.name), "config"),
    data: { [CONFIG_FILE]: config },
  };
}
