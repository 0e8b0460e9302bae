// The ConfigMap holding the trainer's config: the whole defaulted DistillationJob (the trainer parses it with the
// same schema), so the trainer never needs API access to learn what to do.
import type { V1ConfigMap } from "@kubernetes/client-node";
import { API_VERSION, KIND } from "../../../api/v1alpha1/index.ts";
import { CONFIG_FILE, configMapNameFor } from "../names.ts";
import { childMetadata, type OwnerJob } from "./common.ts";

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

export function buildConfigMap(dj: OwnerJob): V1ConfigMap {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: childMetadata(dj, configMapNameFor(dj.metadata.name), "config"),
    data: { [CONFIG_FILE]: trainerConfig(dj) },
  };
}
