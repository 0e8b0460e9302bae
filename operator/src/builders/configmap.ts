// The ConfigMap holding the trainer's config: the trainer's part of the defaulted spec (TrainerSpec: teacher,
// student, data, objectives, strategy, training, output, metrics) plus the job's identity, so the trainer never
// needs API access to learn what to do and parses only its own contract (runtime, runPolicy and queueName are
// the operator's).
import type { V1ConfigMap } from "@kubernetes/client-node";
import { API_VERSION, KIND, TRAINER_SPEC_FIELDS } from "../../../api/v1alpha1/index.ts";
import { CONFIG_FILE, configMapNameFor } from "../names.ts";
import { SpecRefusal } from "./spec-refusal.ts";
import { childMetadata, type OwnerJob } from "./common.ts";

/** The apiserver's limit on a ConfigMap's data (keys and values, in bytes). */
export const CONFIGMAP_MAX_BYTES = 1024 * 1024;

export function trainerConfig(dj: OwnerJob): string {
  const { name, namespace, uid, generation } = dj.metadata;
  const spec = Object.fromEntries(TRAINER_SPEC_FIELDS.map((field) => [field, dj.spec[field]]));
  const manifest = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, namespace, uid, generation },
    spec,
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
        "(very long paths or layer names?)",
    );
  }
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: childMetadata(dj, configMapNameFor(dj.metadata.name), "config"),
    data: { [CONFIG_FILE]: config },
  };
}
