import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { buildJob } from "../../../../operator/src/builders/job.ts";
import { FETCH_CONTAINER } from "../../../../operator/src/builders/storage.ts";
import {
  OBSERVED_DATA_HASH,
  slimConfigMap,
  slimDistillationJob,
  slimEvent,
  slimJob,
  slimPod,
} from "../../../../operator/src/controller/cache-transforms.ts";
import { deriveStatus } from "../../../../operator/src/status/derive.ts";
import { distillationJob, jobCondition, terminated } from "../../../fixtures/kube-objects.ts";

const NOW = "2025-01-01T00:20:00.000Z";
const dj = distillationJob();
const built = buildJob(dj, {});
const fullJob = (status: object, suspend = false) => ({
  ...built,
  metadata: { ...built.metadata, creationTimestamp: new Date("2025-01-01T00:00:00Z"), resourceVersion: "7" },
  spec: { ...built.spec!, suspend },
  status,
});
/** A pod as the apiserver returns it: the Job's whole template, plus a status. */
const fullPod = (name: string, status: V1Pod["status"], created = "2025-01-01T00:00:01Z"): V1Pod => ({
  metadata: {
    ...built.spec!.template.metadata,
    name,
    namespace: "team-a",
    creationTimestamp: new Date(created),
    ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: "mnist", uid: "j", controller: true }],
  },
  spec: { ...built.spec!.template.spec!, nodeName: "kwok-gpu-0" },
  status: { hostIP: "10.0.0.1", qosClass: "Burstable", startTime: new Date(created), ...status },
});

const running = {
  name: "trainer",
  image: "x",
  imageID: "",
  ready: true,
  restartCount: 0,
  state: { running: {} },
};
const waiting = (reason: string) => ({
  ...running,
  ready: false,
  state: { waiting: { reason, message: "m" } },
});
const scheduled = (ok: boolean) => ({
  type: "PodScheduled",
  status: ok ? "True" : "False",
  ...(ok ? {} : { reason: "Unschedulable", message: "0/3 nodes have nvidia.com/gpu" }),
});
const ready = { type: "Ready", status: "True" };

const scenarios: [string, ReturnType<typeof fullJob>, V1Pod[]][] = [
  ["no pod yet", fullJob({}), []],
  [
    "unschedulable",
    fullJob({ active: 1 }),
    [fullPod("p", { phase: "Pending", conditions: [scheduled(false)] })],
  ],
  [
    "image pull",
    fullJob({ active: 1 }),
    [
      fullPod("p", {
        phase: "Pending",
        conditions: [scheduled(true)],
        containerStatuses: [waiting("ErrImagePull")],
      }),
    ],
  ],
  [
    "running",
    fullJob({ active: 1 }),
    [
      fullPod("p", {
        phase: "Running",
        podIP: "10.244.0.9",
        conditions: [scheduled(true), ready],
        containerStatuses: [running],
      }),
    ],
  ],
  [
    "retrying",
    fullJob({ failed: 1 }),
    [fullPod("p", { phase: "Failed", containerStatuses: [terminated(1, "out of memory")] })],
  ],
  [
    "bad config",
    fullJob({ failed: 1, conditions: [jobCondition("Failed", "PodFailurePolicy", "exit 2")] }),
    [fullPod("p", { phase: "Failed", containerStatuses: [terminated(2, "spec.data: bad")] })],
  ],
  [
    "succeeded",
    fullJob({
      succeeded: 1,
      completionTime: new Date("2025-01-01T00:10:00Z"),
      conditions: [jobCondition("Complete", "Completed")],
    }),
    [fullPod("p", { phase: "Succeeded", containerStatuses: [terminated(0, '{"studentAccuracy":0.9}')] })],
  ],
  [
    "initializing (the fetch init container downloading)",
    fullJob({ active: 1 }),
    [
      fullPod("p", {
        phase: "Pending",
        conditions: [scheduled(true)],
        initContainerStatuses: [{ ...running, name: FETCH_CONTAINER }],
      }),
    ],
  ],
  [
    "initializer failed (storage access denied)",
    fullJob({ failed: 1, conditions: [jobCondition("Failed", "PodFailurePolicy", "exit 4")] }),
    [
      fullPod("p", {
        phase: "Failed",
        initContainerStatuses: [{ ...terminated(4, "s3://b/k: access denied"), name: FETCH_CONTAINER }],
      }),
    ],
  ],
  ["suspended", fullJob({}, true), []],
  [
    "node lost",
    fullJob({ active: 1 }),
    [
      fullPod("p", {
        phase: "Running",
        podIP: "10.244.0.9",
        conditions: [scheduled(true), { ...ready, status: "False" }],
        containerStatuses: [running],
      }),
    ],
  ],
];

describe("cache transforms", () => {
  it.each(scenarios)(
    "derive the same status from slim children as from full ones: %s",
    (_name, job, pods) => {
      const full = deriveStatus(dj, { job, pods }, NOW);
      const slim = deriveStatus(dj, { job: slimJob(job), pods: pods.map(slimPod) }, NOW);
      expect(slim).toEqual(full);
    },
  );

  it("derive the same status from a slim FailedCreate event as from the full one", () => {
    const event = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: "x.1", namespace: "team-a", uid: "e1", resourceVersion: "9", managedFields: [] },
      involvedObject: { apiVersion: "batch/v1", kind: "Job", name: "mnist", namespace: "team-a", uid: "j1" },
      reason: "FailedCreate",
      message: 'Error creating: pods "mnist-a" is forbidden: exceeded quota: q',
      type: "Warning",
      source: { component: "job-controller" },
      count: 3,
      firstTimestamp: new Date("2025-01-01T00:00:01Z"),
      lastTimestamp: new Date("2025-01-01T00:00:09Z"),
    };
    const job = fullJob({});
    const full = deriveStatus(dj, { job, pods: [], events: [event] }, NOW);
    const slim = deriveStatus(dj, { job: slimJob(job), pods: [], events: [slimEvent(event)] }, NOW);
    expect(slim).toEqual(full);
    expect(slimEvent(event).involvedObject.uid).toBe("j1"); // the reconciler matches events by the Job's uid
  });

  it("keep the fetch initializer's state: Initializing while it runs, its storage reason when it fails", () => {
    const derived = (name: string) => {
      const [, job, pods] = scenarios.find(([n]) => n.startsWith(name))!;
      return deriveStatus(dj, { job: slimJob(job), pods: pods.map(slimPod), events: [] }, NOW);
    };
    expect(derived("initializing").conditions?.find((c) => c.type === "Initializing")?.status).toBe("True");
    const failed = derived("initializer failed").conditions?.find((c) => c.type === "Failed");
    expect(failed?.reason).toBe("StorageAccessDenied");
    expect(failed?.message).toMatch(/access denied/);
  });

  it("keep what owner mapping, the pod index and progress read, and drop most of the bytes", () => {
    const pod = scenarios[3]![2][0]!;
    const slim = slimPod(pod);
    expect(slim.metadata).toEqual(pod.metadata);
    expect(slim.status?.podIP).toBe("10.244.0.9");
    // Of the spec only the node (and its lost-node tolerations): for the NodeUnreachable message.
    expect(slim.spec).toEqual({ containers: [], nodeName: "kwok-gpu-0" });
    expect(JSON.stringify(slim).length).toBeLessThan(JSON.stringify(pod).length / 2);
    const job = slimJob(scenarios[0]![1]);
    expect(job.metadata).toEqual(scenarios[0]![1].metadata);
    expect(job.spec).toEqual({ suspend: false, backoffLimit: 3 }); // what job-update.ts may patch
  });

  it("drop a ConfigMap's data and kubectl's last-applied copy of a DistillationJob", () => {
    const meta = {
      name: "a",
      namespace: "n",
      resourceVersion: "1",
      annotations: { "mokd.io/spec-hash": "h" },
    };
    const slimCm = slimConfigMap({ metadata: meta, data: { "job.json": "{}" } });
    expect(slimCm.data).toBeUndefined();
    // What remains of the data is its hash (cache-only), which changes with the data.
    const { [OBSERVED_DATA_HASH]: dataHash, ...annotations } = slimCm.metadata!.annotations!;
    expect({ ...slimCm.metadata, annotations }).toEqual(meta);
    expect(dataHash).toMatch(/^[0-9a-f]{16}$/);
    expect(slimConfigMap({ metadata: meta, data: { "job.json": "{ }" } }).metadata!.annotations).not.toEqual(
      slimCm.metadata!.annotations,
    );
    const applied = {
      metadata: {
        ...meta,
        annotations: { ...meta.annotations, "kubectl.kubernetes.io/last-applied-configuration": "{}" },
      },
      spec: { x: 1 },
    };
    expect(slimDistillationJob(applied)).toEqual({ metadata: meta, spec: { x: 1 } });
    const plain = { metadata: meta, spec: { x: 1 } };
    expect(slimDistillationJob(plain)).toBe(plain);
  });
});
