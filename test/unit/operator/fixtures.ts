// Shared fixtures for the operator's unit tests: a defaulted DistillationJob, Jobs and pods in given states.
import type { V1ContainerState, V1Job, V1Pod } from "@kubernetes/client-node";
import { parseDistillationJob, type DistillationJobInput } from "../../../api/v1alpha1/index.ts";
import type { OwnerJob } from "../../../operator/src/builders/common.ts";

export function distillationJob(spec: DistillationJobInput["spec"] = {}, name = "mnist"): OwnerJob {
  const dj = parseDistillationJob({
    apiVersion: "distillation.mokd.io/v1alpha1",
    kind: "DistillationJob",
    metadata: { name, namespace: "team-a", uid: "uid-1", generation: 1, resourceVersion: "10" },
    spec,
  });
  return dj as OwnerJob;
}

export function job(status: V1Job["status"] = {}, suspend = false): V1Job {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: "mnist", namespace: "team-a", creationTimestamp: new Date("2025-01-01T00:00:00Z") },
    spec: { suspend, template: {} },
    status,
  };
}

export const jobCondition = (type: string, reason: string, message = "") => ({
  type,
  status: "True",
  reason,
  message,
  lastTransitionTime: new Date("2025-01-01T00:10:00Z"),
});

export function pod(name: string, status: V1Pod["status"], created = "2025-01-01T00:00:01Z"): V1Pod {
  return { metadata: { name, namespace: "team-a", creationTimestamp: new Date(created) }, status };
}

/** A container status as the kubelet reports it (the trainer's unless `name` says otherwise). */
export const containerStatus = (state: V1ContainerState, name = "trainer", ready = false) => ({
  name,
  image: "x",
  imageID: "",
  ready,
  restartCount: 0,
  state,
});

export const terminated = (exitCode: number, message?: string) =>
  containerStatus({ terminated: { exitCode, ...(message ? { message } : {}) } });
