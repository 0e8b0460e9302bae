import { describe, expect, it } from "vitest";
import type { DistillationJobStatus } from "../../../../api/v1alpha1/index.ts";
import { findCondition, setCondition } from "../../../../operator/src/status/conditions.ts";
import { deriveStatus, parseResult } from "../../../../operator/src/status/derive.ts";
import { distillationJob, job, jobCondition, pod, terminated } from "../../../fixtures/kube-objects.ts";

const T0 = "2025-01-01T00:00:05.000Z";
const T1 = "2025-01-01T00:05:00.000Z";

describe("setCondition", () => {
  it("keeps lastTransitionTime while the status stays, and moves it when the status flips", () => {
    let list = setCondition(undefined, { type: "Running", status: "False", reason: "A", message: "" }, T0, 1);
    list = setCondition(list, { type: "Running", status: "False", reason: "B", message: "m" }, T1, 2);
    expect(list).toEqual([
      {
        type: "Running",
        status: "False",
        reason: "B",
        message: "m",
        lastTransitionTime: T0,
        observedGeneration: 2,
      },
    ]);
    list = setCondition(list, { type: "Running", status: "True", reason: "C", message: "" }, T1, 2);
    expect(findCondition(list, "Running")?.lastTransitionTime).toBe(T1);
  });
});

describe("parseResult", () => {
  it("reads the Result keys of the termination message and ignores others", () => {
    expect(
      parseResult('{"studentAccuracy":0.88,"teacherAccuracy":0.9,"modelPath":"/output/student","x":1}'),
    ).toEqual({
      studentAccuracy: 0.88,
      teacherAccuracy: 0.9,
      modelPath: "/output/student",
    });
    expect(parseResult("Traceback: boom")).toBeUndefined();
    expect(parseResult('{"studentAccuracy":"high"}')).toBeUndefined();
    expect(parseResult(undefined)).toBeUndefined();
  });
});

describe("deriveStatus", () => {
  const dj = distillationJob();

  it("is Pending/Creating before the Job exists", () => {
    const s = deriveStatus(dj, { pods: [] }, T0);
    expect(s.phase).toBe("Pending");
    expect(findCondition(s.conditions, "Created")).toMatchObject({ status: "False", reason: "Creating" });
    expect(s.observedGeneration).toBe(1);
  });

  it("reports an unschedulable pod as the Running condition's reason", () => {
    const p = pod("p1", {
      phase: "Pending",
      conditions: [
        {
          type: "PodScheduled",
          status: "False",
          reason: "Unschedulable",
          message: "0/3 nodes: Insufficient nvidia.com/gpu",
        },
      ],
    });
    const s = deriveStatus(dj, { job: job({ active: 1 }), pods: [p] }, T0);
    expect(s.phase).toBe("Pending");
    expect(findCondition(s.conditions, "Running")).toMatchObject({
      status: "False",
      reason: "Unschedulable",
    });
    expect(findCondition(s.conditions, "Running")?.message).toContain("nvidia.com/gpu");
  });

  it.each(["ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff"])("reports %s as a reason", (reason) => {
    const p = pod("p1", {
      phase: "Pending",
      containerStatuses: [
        {
          name: "trainer",
          image: "x",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { waiting: { reason, message: "nope" } },
        },
      ],
    });
    const s = deriveStatus(dj, { job: job({ active: 1 }), pods: [p] }, T0);
    expect(findCondition(s.conditions, "Running")).toMatchObject({
      status: "False",
      reason,
      message: "nope",
    });
  });

  it("is Running with the start time, job name and progress while a pod runs", () => {
    const s = deriveStatus(
      dj,
      { job: job({ active: 1 }), pods: [pod("p1", { phase: "Running", podIP: "10.0.0.1" })] },
      T0,
      {
        epoch: 2,
        lastUpdateTime: T0,
      },
    );
    expect(s).toMatchObject({
      phase: "Running",
      jobName: "mnist",
      startTime: "2025-01-01T00:00:00.000Z",
      attempts: 1,
    });
    expect(s.progress).toEqual({ epoch: 2, lastUpdateTime: T0 });
    expect(findCondition(s.conditions, "Created")?.status).toBe("True");
    expect(findCondition(s.conditions, "Running")?.status).toBe("True");
  });

  it("is Succeeded with the result from the termination message", () => {
    const p = pod("p1", {
      phase: "Succeeded",
      containerStatuses: [terminated(0, '{"studentAccuracy":0.87,"bestEpoch":3}')],
    });
    const j = job({
      succeeded: 1,
      completionTime: new Date(T1),
      conditions: [jobCondition("Complete", "CompletionsReached")],
    });
    const s = deriveStatus(dj, { job: j, pods: [p] }, T1);
    expect(s).toMatchObject({
      phase: "Succeeded",
      completionTime: T1,
      result: { studentAccuracy: 0.87, bestEpoch: 3 },
    });
    expect(findCondition(s.conditions, "Succeeded")).toMatchObject({ status: "True", reason: "Completed" });
    expect(findCondition(s.conditions, "Running")?.status).toBe("False");
  });

  it("shows the final test accuracy where the printer column reads it, and the reason of the end", () => {
    const p = pod("p1", {
      phase: "Succeeded",
      containerStatuses: [terminated(0, '{"studentAccuracy":0.87,"conflictRate":0.2}')],
    });
    const j = job({ succeeded: 1, conditions: [jobCondition("Complete", "CompletionsReached")] });
    const running = {
      ...dj,
      status: { phase: "Running" as const, progress: { epoch: 5, studentAccuracy: 0.8 } },
    };
    const s = deriveStatus(running, { job: j, pods: [p] }, T1);
    // additionalPrinterColumns Student-Acc = .status.progress.studentAccuracy, Reason = the Running condition's.
    expect(s.progress).toMatchObject({ epoch: 5, studentAccuracy: 0.87, conflictRate: 0.2 });
    expect(findCondition(s.conditions, "Running")?.reason).toBe("Completed");
  });

  it("never lowers attempts: a suspend deletes the pods but not the attempts made", () => {
    const before = { ...dj, status: { phase: "Running" as const, attempts: 2 } };
    const suspended = distillationJob({ runPolicy: { suspend: true } });
    const s = deriveStatus({ ...suspended, status: before.status }, { job: job({}, true), pods: [] }, T1);
    expect(s.phase).toBe("Suspended");
    expect(s.attempts).toBe(2);
  });

  it("names a bad-config failure by the trainer's exit code, with its message", () => {
    const p = pod("p1", {
      phase: "Failed",
      containerStatuses: [terminated(2, "spec.training.epochs: too big")],
    });
    const j = job({
      failed: 1,
      conditions: [jobCondition("Failed", "PodFailurePolicy", "Container trainer exited with 2")],
    });
    const s = deriveStatus(dj, { job: j, pods: [p] }, T1);
    expect(s.phase).toBe("Failed");
    const failed = findCondition(s.conditions, "Failed");
    expect(failed).toMatchObject({ status: "True", reason: "BadConfig" });
    expect(failed?.message).toContain("spec.training.epochs: too big");
    expect(s.completionTime).toBe("2025-01-01T00:10:00.000Z");
  });

  it("shows the error of the trainer's {error, reason} termination message, not its JSON", () => {
    const message = JSON.stringify({
      error: "invalid DistillationJob:\n  spec.training.epochs: too big",
      reason: "BadConfig",
    });
    const failed = deriveStatus(
      dj,
      {
        job: job({ failed: 1, conditions: [jobCondition("Failed", "PodFailurePolicy", "exited with 2")] }),
        pods: [pod("p1", { phase: "Failed", containerStatuses: [terminated(2, message)] })],
      },
      T1,
    );
    const condition = findCondition(failed.conditions, "Failed");
    expect(condition).toMatchObject({ status: "True", reason: "BadConfig" });
    expect(condition?.message).toContain(
      "trainer (exit code 2): invalid DistillationJob:\n  spec.training.epochs",
    );
    expect(condition?.message).not.toContain('"reason"');
    expect(failed.result).toBeUndefined();

    const internal = JSON.stringify({ error: "internal error: boom", reason: "InternalError" });
    const retrying = deriveStatus(
      dj,
      {
        job: job({ failed: 1 }),
        pods: [pod("p1", { phase: "Failed", containerStatuses: [terminated(1, internal)] })],
      },
      T0,
    );
    expect(findCondition(retrying.conditions, "Running")?.message).toBe(
      "retrying after 1 failed attempt(s); trainer: internal error: boom",
    );
  });

  it("keeps the Job's reason for exhausted retries and deadlines", () => {
    const failedPods = [1, 2, 3].map((i) =>
      pod(`p${i}`, { phase: "Failed", containerStatuses: [terminated(1, "oom")] }, `2025-01-01T00:0${i}:00Z`),
    );
    const retries = job({
      failed: 3,
      conditions: [
        jobCondition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
      ],
    });
    const s = deriveStatus(dj, { job: retries, pods: failedPods }, T1);
    expect(findCondition(s.conditions, "Failed")?.reason).toBe("BackoffLimitExceeded");
    expect(s.attempts).toBe(3);
    const deadline = job({ conditions: [jobCondition("Failed", "DeadlineExceeded")] });
    expect(
      findCondition(deriveStatus(dj, { job: deadline, pods: [] }, T1).conditions, "Failed")?.reason,
    ).toBe("DeadlineExceeded");
  });

  it("says Retrying between attempts, with the last trainer message", () => {
    const s = deriveStatus(
      dj,
      {
        job: job({ failed: 1 }),
        pods: [pod("p1", { phase: "Failed", containerStatuses: [terminated(1, "boom")] })],
      },
      T0,
    );
    expect(s.phase).toBe("Pending");
    expect(findCondition(s.conditions, "Running")).toMatchObject({ reason: "Retrying" });
    expect(findCondition(s.conditions, "Running")?.message).toContain("boom");
  });

  it("is Suspended when runPolicy.suspend is set, and WaitingForAdmission under Kueue", () => {
    const suspended = deriveStatus(
      distillationJob({ runPolicy: { suspend: true } }),
      { job: job({}, true), pods: [] },
      T0,
    );
    expect(suspended.phase).toBe("Suspended");
    expect(findCondition(suspended.conditions, "Suspended")).toMatchObject({
      status: "True",
      reason: "Suspended",
    });
    const queued = deriveStatus(distillationJob({ queueName: "q" }), { job: job({}, true), pods: [] }, T0);
    expect(findCondition(queued.conditions, "Suspended")?.reason).toBe("WaitingForAdmission");
    // Resumed: Suspended stays in the list, now False.
    const resumed = deriveStatus(
      { ...distillationJob(), status: suspended },
      { job: job({ active: 1 }), pods: [pod("p", { phase: "Running" })] },
      T1,
    );
    expect(findCondition(resumed.conditions, "Suspended")).toMatchObject({
      status: "False",
      lastTransitionTime: T1,
    });
  });

  it("is Suspended/Preempted when Kueue suspends a Job whose trainer ran, until it runs again", () => {
    const running = deriveStatus(
      distillationJob({ queueName: "q" }),
      { job: job({ active: 1 }), pods: [pod("p", { phase: "Running" })] },
      T0,
    );
    const evicted = deriveStatus(
      { ...distillationJob({ queueName: "q" }), status: running },
      { job: job({}, true), pods: [] },
      T1,
    );
    expect(evicted.phase).toBe("Suspended");
    expect(findCondition(evicted.conditions, "Suspended")).toMatchObject({
      status: "True",
      reason: "Preempted",
    });
    expect(findCondition(evicted.conditions, "Suspended")?.message).toContain("checkpoint");
    // Still waiting to be re-admitted: still Preempted, not WaitingForAdmission.
    const waiting = deriveStatus(
      { ...distillationJob({ queueName: "q" }), status: evicted },
      { job: job({}, true), pods: [] },
      T1,
    );
    expect(findCondition(waiting.conditions, "Suspended")?.reason).toBe("Preempted");
  });

  it("never leaves a terminal phase, even when the Job is gone", () => {
    const done: DistillationJobStatus = {
      phase: "Succeeded",
      completionTime: T1,
      result: { studentAccuracy: 0.9 },
    };
    expect(deriveStatus({ ...dj, status: done }, { pods: [] }, T1)).toBe(done);
  });

  it("is stable: deriving twice from the same observation gives an identical status", () => {
    const obs = { job: job({ active: 1 }), pods: [pod("p1", { phase: "Running" })] };
    const first = deriveStatus(dj, obs, T0);
    const second = deriveStatus({ ...dj, status: first }, obs, T1);
    expect(second).toEqual(first);
  });
});

describe("jobs stuck before running", () => {
  const dj = distillationJob();
  const failedCreate = (message: string, at = "2025-01-01T00:00:03Z") => ({
    metadata: { name: "e" },
    involvedObject: { kind: "Job", name: "mnist" },
    reason: "FailedCreate",
    type: "Warning",
    message,
    lastTimestamp: new Date(at),
  });

  it.each([
    [
      "ExceededQuota",
      'pods "mnist-x" is forbidden: exceeded quota: q, requested: cpu=2, used: cpu=0, limited: cpu=1',
    ],
    ["PriorityClassNotFound", 'pods "mnist-x" is forbidden: no PriorityClass with name urgent was found'],
    ["FailedCreate", "Error creating: something else"],
  ])("shows the Job's FailedCreate as %s at once", (reason, message) => {
    const s = deriveStatus(dj, { job: job({}), pods: [], events: [failedCreate(message)] }, T0);
    expect(s.phase).toBe("Pending");
    expect(findCondition(s.conditions, "Running")).toMatchObject({ reason, message });
  });

  it("ignores a FailedCreate older than the pod created since", () => {
    const p = pod("p1", { phase: "Pending" }, "2025-01-01T00:00:04Z");
    const s = deriveStatus(
      dj,
      { job: job({ active: 1 }), pods: [p], events: [failedCreate("exceeded quota")] },
      T0,
    );
    expect(findCondition(s.conditions, "Running")?.reason).toBe("PodPending");
  });

  const pulling = () =>
    pod("p1", {
      phase: "Pending",
      containerStatuses: [
        {
          name: "trainer",
          image: "x",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: "ImagePullBackOff", message: "Back-off pulling image" } },
        },
      ],
    });
  const at = (seconds: number) => new Date(Date.parse(T0) + seconds * 1000).toISOString();

  it("fails with the stuck reason once runPolicy.pendingDeadlineSeconds (default 600) has passed", () => {
    const obs = { job: job({ active: 1 }), pods: [pulling()] };
    const first = deriveStatus(dj, obs, T0);
    expect(first.phase).toBe("Pending");
    const before = deriveStatus({ ...dj, status: first }, obs, at(599));
    expect(before.phase).toBe("Pending");
    const after = deriveStatus({ ...dj, status: before }, obs, at(600));
    expect(after.phase).toBe("Failed");
    expect(findCondition(after.conditions, "Failed")).toMatchObject({
      status: "True",
      reason: "ImagePullBackOff",
    });
    expect(findCondition(after.conditions, "Failed")!.message).toContain("pendingDeadlineSeconds (600 s)");
  });

  it("does not count suspension (or waiting for Kueue) against the deadline, and 0 disables it", () => {
    const suspendedDj = distillationJob({ runPolicy: { suspend: true } });
    const obs = { job: job({ active: 1 }), pods: [pulling()] };
    const pending = deriveStatus(dj, obs, T0);
    const suspended = deriveStatus(
      { ...suspendedDj, status: pending },
      { job: job({}, true), pods: [] },
      at(100),
    );
    expect(suspended.phase).toBe("Suspended");
    const resumed = deriveStatus({ ...dj, status: suspended }, obs, at(500));
    expect(deriveStatus({ ...dj, status: resumed }, obs, at(1000)).phase).toBe("Pending");
    expect(deriveStatus({ ...dj, status: resumed }, obs, at(1100)).phase).toBe("Failed");
    const never = distillationJob({ runPolicy: { pendingDeadlineSeconds: 0 } });
    expect(deriveStatus({ ...never, status: pending }, obs, at(100_000)).phase).toBe("Pending");
  });
});
