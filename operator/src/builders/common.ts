// Labels and owner references shared by every child of a DistillationJob.
import type { V1ObjectMeta, V1OwnerReference } from "@kubernetes/client-node";
import { API_VERSION, KIND } from "../../../api/v1alpha1/index.ts";
import {
  COMPONENT,
  LABEL_APP_NAME,
  LABEL_COMPONENT,
  LABEL_INSTANCE,
  LABEL_JOB_NAME,
  LABEL_MANAGED_BY,
  boundedName,
} from "../names.ts";
import type { OwnerJob } from "../owner-job.ts";

export type { OwnerJob };

export function childLabels(dj: OwnerJob, component: string): Record<string, string> {
  return {
    [LABEL_APP_NAME]: "mokd-trainer",
    [LABEL_INSTANCE]: boundedName(dj.metadata.name),
    [LABEL_COMPONENT]: component,
    [LABEL_MANAGED_BY]: COMPONENT,
    [LABEL_JOB_NAME]: boundedName(dj.metadata.name),
  };
}

/** controller=true lets the garbage collector delete children with their owner and marks who reconciles them. */
export function ownerReference(dj: OwnerJob): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: dj.metadata.name,
    uid: dj.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function childMetadata(dj: OwnerJob, name: string, component: string): V1ObjectMeta {
  return {
    name,
    namespace: dj.metadata.namespace,
    labels: childLabels(dj, component),
    ownerReferences: [ownerReference(dj)],
  };
}
