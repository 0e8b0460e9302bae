// The operator's side of object storage in the status: Initializing and the storage failure reasons (from the
// trainer or its initializer), the result's URIs and the last checkpoint from the trainer's progress document.
import { describe, expect, it } from "vitest";
import { ExitCode } from "../../../../api/v1alpha1/index.ts";
import { findCondition } from "../../../../operator/src/status/conditions.ts";
import { deriveStatus } from "../../../../operator/src/status/derive.ts";
import { progressFromDocument } from "../../../../operator/src/progress/status-from-document.ts";
import { PROGRESS_API_VERSION, PROGRESS_KIND, TrainerProgress } from "../../../../api/v1alpha1/index.ts";
import {
  containerStatus,
  job,
  jobCondition,
  objectStorageJob,
  pod,
  terminated,
} from "../../../fixtures/kube-objects.ts";

const T1 = "2025-01-01T00:05:00.000Z";
const remote = objectStorageJob();

describe("status of a job with object storage", () => {
  it("is Pending/Initializing while the initializer downloads, with where to see its bytes", () => {
    const fetching = pod("mnist-abc", {
      phase: "Pending",
      initContainerStatuses: [
        containerStatus({ running: { startedAt: new Date("2025-01-01T00:01:00Z") } }, "fetch"),
      ],
    });
    const s = deriveStatus(remote, { job: job({ active: 1 }), pods: [fetching] }, T1);
    expect(s.phase).toBe("Pending");
    expect(findCondition(s.conditions, "Initializing")).toMatchObject({
      status: "True",
      reason: "Initializing",
    });
    expect(findCondition(s.conditions, "Initializing")?.message).toContain("kubectl logs mnist-abc -c fetch");
  });

  it.each([
    [
      ExitCode.StorageAccessDenied,
      "StorageAccessDenied",
      "s3://models/teacher/model.json: access denied (InvalidAccessKeyId)",
    ],
    [ExitCode.StorageNotFound, "StorageNotFound", "s3://datasets/fashion-mnist/: not found (NoSuchBucket)"],
    [ExitCode.ChecksumMismatch, "ChecksumMismatch", "s3://models/teacher/model.json: sha256 0a, expected 0b"],
  ])("an initializer exiting %i fails the job with reason %s and its message", (code, reason, error) => {
    const failedInit = pod("mnist-abc", {
      phase: "Failed",
      initContainerStatuses: [
        {
          ...terminated(code, JSON.stringify({ error, reason })),
          name: "fetch",
        },
      ],
      // The never-started trainer reported as terminated too (the cluster e2e saw the Job reason win without this
      // fix; the exact trainer state the kubelet reported was not captured).
      containerStatuses: [
        containerStatus({ terminated: { exitCode: 137, reason: "ContainerStatusUnknown" } }),
      ],
    });
    const j = job({
      failed: 1,
      conditions: [jobCondition("Failed", "PodFailurePolicy", `Container fetch exited with ${code}`)],
    });
    const s = deriveStatus(remote, { job: j, pods: [failedInit] }, T1);
    expect(s.phase).toBe("Failed");
    const failed = findCondition(s.conditions, "Failed");
    expect(failed).toMatchObject({ status: "True", reason });
    expect(failed?.message).toContain(error);
  });

  it("the trainer's own storage failure (an upload) has the same reasons", () => {
    const error = "s3://results/runs/a/summary.json: access denied (AccessDenied)";
    const p = pod("mnist-abc", {
      phase: "Failed",
      containerStatuses: [
        terminated(ExitCode.StorageAccessDenied, JSON.stringify({ error, reason: "StorageAccessDenied" })),
      ],
    });
    const j = job({ failed: 1, conditions: [jobCondition("Failed", "PodFailurePolicy", "exited with 4")] });
    const failed = findCondition(deriveStatus(remote, { job: j, pods: [p] }, T1).conditions, "Failed");
    expect(failed).toMatchObject({ reason: "StorageAccessDenied" });
    expect(failed?.message).toContain(error);
  });

  it("status.result carries the output and checkpoint URIs of the termination message", () => {
    const message = JSON.stringify({
      studentAccuracy: 0.8,
      outputUri: "s3://results/runs/a",
      checkpointUri: "s3://results/ckpt/a/latest.json",
    });
    const done = pod("mnist-abc", {
      phase: "Succeeded",
      containerStatuses: [{ ...terminated(0, message) }],
    });
    const j = job({ succeeded: 1, conditions: [jobCondition("Complete", "")] });
    const s = deriveStatus(remote, { job: j, pods: [done] }, T1);
    expect(s.result).toMatchObject({
      outputUri: "s3://results/runs/a",
      checkpointUri: "s3://results/ckpt/a/latest.json",
    });
  });
});

describe("the last checkpoint in status.progress", () => {
  it("is copied from the trainer's progress document: stage, epoch, step, time and where", () => {
    const lastCheckpoint = {
      stage: "student" as const,
      epoch: 3,
      step: 2811,
      time: "2025-01-01T00:04:00.000Z",
      location: "s3://results/ckpt/a/latest.json",
    };
    const doc = TrainerProgress.parse({
      apiVersion: PROGRESS_API_VERSION,
      kind: PROGRESS_KIND,
      stage: "student",
      stages: ["teacher", "student"],
      epoch: 4,
      totalEpochs: 30,
      step: 2900,
      stepsPerEpoch: 937,
      totalSteps: 28110,
      losses: {},
      weights: {},
      progressPercentage: 10,
      updatedAt: "2025-01-01T00:04:30.000Z",
      lastCheckpoint,
    });
    expect(progressFromDocument(doc, T1).lastCheckpoint).toEqual(lastCheckpoint);
  });
});
