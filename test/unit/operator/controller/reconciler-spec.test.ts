// The reconciler against specs nothing can run and statuses nobody derived: every class
// of bad input ends with a status (Failed/InvalidSpec, naming the field or quoting the apiserver) and is not
// retried; a status the cluster contradicts is derived again; timers never exceed Node's limit.
import type { V1Job } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { DistillationJobStatus } from "../../../../api/v1alpha1/index.ts";
import { MAX_TIMER_MS } from "../../../../operator/src/controller/reconciler.ts";
import { KubeApiError } from "../../../../operator/src/lib/kube-http.ts";
import { findCondition } from "../../../../operator/src/status/conditions.ts";
import { INVALID_SPECS } from "../../../fixtures/invalid-specs.ts";
import { containerStatus, pod } from "../../../fixtures/kube-objects.ts";
import { fakeCluster } from "./fake-cluster.ts";

/** A job named `j`; the apiserver refuses a new Job with `refuseJob` (as it does an invalid pod template). */
const cluster = (spec: unknown, status?: DistillationJobStatus, refuseJob?: Error) =>
  fakeCluster(spec, { name: "j", ...(status ? { status } : {}), ...(refuseJob ? { refuseJob } : {}) });

const failedCondition = (s: DistillationJobStatus | undefined) => findCondition(s?.conditions, "Failed");

describe("no class of bad input leaves a job without a status", () => {
  it.each(INVALID_SPECS)("%s: Failed/InvalidSpec naming the field, no child", async (_what, spec, field) => {
    const c = cluster(spec);
    await c.reconciler.reconcile("ns/j");
    expect(c.status()?.phase).toBe("Failed");
    expect(failedCondition(c.status())).toMatchObject({ status: "True", reason: "InvalidSpec" });
    expect(failedCondition(c.status())!.message).toContain(field);
    expect(c.writes).toEqual(["status"]);
  });

  // What only the apiserver judges (the affinity is passed through; it checks the whole pod): its refusal of the
  // Job is final, with its own message.
  it.each<[string, unknown, string]>([
    [
      "an affinity the apiserver refuses",
      {
        runtime: {
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchExpressions: [{ key: "a b", operator: "In", values: ["x"] }] }],
              },
            },
          },
        },
      },
      'Job.batch "j" is invalid: spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key: Invalid value: "a b": name part must consist of alphanumeric characters',
    ],
    [
      "a cpu request above its limit",
      { runtime: { resources: { requests: { cpu: "2" }, limits: { cpu: "1" } } } },
      'Job.batch "j" is invalid: spec.template.spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1',
    ],
  ])("%s: Failed/InvalidSpec with the apiserver's message, not retried", async (_what, spec, message) => {
    const c = cluster(spec, undefined, new KubeApiError(422, message, "Invalid"));
    const result = await c.reconciler.reconcile("ns/j"); // resolves: nothing to retry
    expect(result).toEqual({});
    expect(c.status()?.phase).toBe("Failed");
    expect(failedCondition(c.status())).toMatchObject({ reason: "InvalidSpec" });
    expect(failedCondition(c.status())!.message).toContain(message);
    expect(findCondition(c.status()?.conditions, "Running")?.reason).toBe("InvalidSpec"); // the Reason column
    await c.reconciler.reconcile("ns/j");
    expect(c.writes).toEqual(["configMap", "status"]);
  });

  it("retries what may pass later (forbidden, conflicts, unavailable), with a status saying so", async () => {
    const c = cluster(
      {},
      undefined,
      new KubeApiError(503, "the server is currently unable to handle the request"),
    );
    await expect(c.reconciler.reconcile("ns/j")).rejects.toThrow(/unable to handle/);
    expect(c.status()?.phase).toBe("Pending");
  });
});

describe("a status the cluster contradicts", () => {
  it("is derived again: a user-written Succeeded with a made-up accuracy is corrected while the trainer runs", async () => {
    const spoofed: DistillationJobStatus = {
      phase: "Succeeded",
      completionTime: "2025-01-01T00:00:05Z",
      result: { studentAccuracy: 0.999 },
      progress: { studentAccuracy: 0.999 },
      conditions: [
        {
          type: "Succeeded",
          status: "True",
          reason: "Completed",
          message: "",
          lastTransitionTime: "2025-01-01T00:00:05Z",
        },
      ],
    };
    const c = cluster({}, spoofed);
    const owner = { apiVersion: "v1", kind: "DistillationJob", name: "j", uid: "u1", controller: true };
    c.state.job = {
      metadata: { name: "j", namespace: "ns", ownerReferences: [owner] },
      spec: { template: {} },
      status: { active: 1 },
    };
    c.state.pods = [pod("p", { phase: "Running" })];
    await c.reconciler.reconcile("ns/j");
    const s = c.status()!;
    expect(s.phase).toBe("Running");
    expect(s.result).toBeUndefined();
    expect(s.completionTime).toBeUndefined();
    expect(s.progress?.studentAccuracy).toBeUndefined();
    expect(findCondition(s.conditions, "Succeeded")?.status).toBe("False");
    // Server-side apply keeps fields of other managers: the made-up ones are removed explicitly.
    expect(c.writes[0]).toBe("clear:result,completionTime,progress");
  });

  it("is kept when the Job has finished or is gone (TTL, deleted by hand)", async () => {
    const done: DistillationJobStatus = { phase: "Succeeded", completionTime: "2025-01-01T00:00:05Z" };
    const c = cluster({}, done);
    await c.reconciler.reconcile("ns/j");
    expect(c.writes).toEqual([]);
  });
});

describe("ttlSecondsAfterFinished", () => {
  it("never asks for a timer longer than Node's 2^31-1 ms (it comes back and waits again)", async () => {
    const done: DistillationJobStatus = { phase: "Succeeded", completionTime: "2025-01-01T00:00:00Z" };
    const c = cluster({ runPolicy: { ttlSecondsAfterFinished: 30 * 24 * 3600 } }, done);
    expect(await c.reconciler.reconcile("ns/j")).toEqual({ requeueAfterMs: MAX_TIMER_MS });
    expect(c.writes).toEqual([]);
  });
});

describe("runPolicy.pendingDeadlineSeconds", () => {
  it("comes back at the deadline, then fails the job with the stuck reason and suspends its Job", async () => {
    const c = cluster({ runPolicy: { pendingDeadlineSeconds: 60 } });
    await c.reconciler.reconcile("ns/j"); // creates the Job
    c.state.pods = [
      pod("p", {
        phase: "Pending",
        conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "no gpu" }],
      }),
    ];
    expect(await c.reconciler.reconcile("ns/j")).toEqual({ requeueAfterMs: 60_001 });
    expect(c.status()?.phase).toBe("Pending");
    c.setNow("2025-01-01T00:01:10Z");
    await c.reconciler.reconcile("ns/j");
    expect(c.status()?.phase).toBe("Failed");
    expect(findCondition(c.status()?.conditions, "Failed")?.reason).toBe("Unschedulable");
    expect(c.patches).toEqual([{ suspend: true }]); // the Job controller deletes the pending pod
    await c.reconciler.reconcile("ns/j"); // final: the suspended Job does not reopen it
    expect(c.status()?.phase).toBe("Failed");
    expect(c.patches).toHaveLength(1);
  });

  it("under Kueue ends the Job instead (activeDeadlineSeconds 1): Kueue un-suspends a Job it admitted", async () => {
    const c = cluster({ queueName: "q", runPolicy: { pendingDeadlineSeconds: 60 } });
    await c.reconciler.reconcile("ns/j"); // creates the Job, suspended until Kueue admits it
    c.state.job = { ...c.state.job!, spec: { ...c.state.job!.spec!, suspend: false } }; // admitted
    c.state.pods = [
      pod("p", {
        phase: "Pending",
        conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "no gpu" }],
      }),
    ];
    await c.reconciler.reconcile("ns/j");
    c.setNow("2025-01-01T00:01:10Z");
    await c.reconciler.reconcile("ns/j");
    expect(c.status()?.phase).toBe("Failed");
    expect(c.patches).toEqual([{ activeDeadlineSeconds: 1 }]);
  });

  it("shows a quota refusing the pod (the Job's FailedCreate event) at once", async () => {
    const c = cluster({});
    await c.reconciler.reconcile("ns/j");
    const event = {
      metadata: { name: "e1" },
      involvedObject: { kind: "Job", name: "j", namespace: "ns" },
      reason: "FailedCreate",
      message: 'pods "j-abc" is forbidden: exceeded quota: compute, requested: limits.cpu=2',
      lastTimestamp: new Date("2025-01-01T00:00:09Z"),
    };
    c.reader.jobEvents = () => [event];
    await c.reconciler.reconcile("ns/j");
    expect(c.events.at(-1)).toBe("Warning/ExceededQuota");
    expect(findCondition(c.status()?.conditions, "Running")).toMatchObject({
      reason: "ExceededQuota",
      message: event.message,
    });
  });
});

describe("ownership before trust", () => {
  const ownedBy = (uid: string, name = "j") => [
    { apiVersion: "distillation.mokd.io/v1alpha1", kind: "DistillationJob", name, uid, controller: true },
  ];

  it("fails NameConflict and touches nothing when a Job of its name is not its own (labels copied or not)", async () => {
    const c = cluster({});
    const userJob: V1Job = {
      metadata: { name: "j", namespace: "ns", labels: { "app.kubernetes.io/managed-by": "mokd-operator" } },
      spec: { template: {} },
      status: { succeeded: 1, conditions: [{ type: "Complete", status: "True" }] },
    };
    c.state.job = userJob;
    c.state.pods = [pod("p", { phase: "Succeeded" })];
    await c.reconciler.reconcile("ns/j");
    expect(c.status()?.phase).toBe("Failed");
    expect(findCondition(c.status()?.conditions, "Failed")?.reason).toBe("NameConflict");
    expect(findCondition(c.status()?.conditions, "Failed")?.message).toMatch(/a Job named j already exists/);
    expect(c.status()?.result).toBeUndefined();
    expect(c.writes).toEqual(["status"]);
    expect(c.state.job).toBe(userJob);
  });

  it("fails NameConflict for a ConfigMap of its config's name controlled by another DistillationJob", async () => {
    const c = cluster({});
    c.state.cm = { metadata: { name: "j-config", namespace: "ns", ownerReferences: ownedBy("other", "x") } };
    await c.reconciler.reconcile("ns/j");
    expect(findCondition(c.status()?.conditions, "Failed")?.reason).toBe("NameConflict");
    expect(c.writes).toEqual(["status"]);
  });

  it("fails NameConflict when the apiserver shows a child the cache does not (no adoption by apply)", async () => {
    const { NameConflictError } = await import("../../../../operator/src/controller/ownership.ts");
    const c = cluster({}, undefined, new NameConflictError("Job", "j", "ns", undefined) as never);
    await c.reconciler.reconcile("ns/j");
    expect(findCondition(c.status()?.conditions, "Failed")?.reason).toBe("NameConflict");
  });

  it("waits while the Job of an earlier DistillationJob of the same name is garbage-collected", async () => {
    const c = cluster({});
    c.state.job = { metadata: { name: "j", namespace: "ns", ownerReferences: ownedBy("old-uid") } };
    await c.reconciler.reconcile("ns/j");
    expect(c.status()?.phase).toBe("Pending");
    expect(findCondition(c.status()?.conditions, "Running")?.reason).toBe("PreviousChildDeleting");
    expect(c.writes).toEqual(["status"]);
  });

  it("reads only the pods of its own Job", async () => {
    const c = cluster({});
    const pods: string[] = [];
    c.reader.pods = (_ns, job) => (pods.push(job.metadata!.uid ?? "none"), []);
    await c.reconciler.reconcile("ns/j");
    expect(pods.length).toBeGreaterThan(0);
  });
});

describe("status is ours", () => {
  const spoofer = { manager: "kubectl-edit", operation: "Update", subresource: "status" };
  const managed = (...fields: string[]) => [
    { ...spoofer, fieldsV1: { "f:status": Object.fromEntries(fields.map((f) => [`f:${f}`, {}])) } },
  ];
  const metadataOf = (c: ReturnType<typeof cluster>) => c.state.dj!.metadata as Record<string, unknown>;

  it("drops and removes every status field another manager wrote: a spoofed Succeeded on a suspended job", async () => {
    const c = cluster({ runPolicy: { suspend: true } });
    await c.reconciler.reconcile("ns/j");
    c.state.job = { ...c.state.job!, status: {} };
    expect(c.status()?.phase).toBe("Suspended");
    c.state.dj = {
      ...c.state.dj,
      metadata: { ...metadataOf(c), managedFields: managed("phase", "result", "progress") },
      status: {
        ...c.status(),
        phase: "Succeeded",
        result: { studentAccuracy: 0.999 },
        progress: { epoch: 9 },
      },
    };
    c.writes.length = 0;
    await c.reconciler.reconcile("ns/j");
    expect(c.writes[0]).toBe("clear:phase,progress,result");
    expect(c.status()?.phase).toBe("Suspended");
    expect(c.status()?.result).toBeUndefined();
    expect(c.status()?.progress).toBeUndefined();
  });

  it("removes a result someone wrote into a final status, once, and writes nothing after", async () => {
    const done: DistillationJobStatus = {
      phase: "Succeeded",
      completionTime: "2025-01-01T00:00:05Z",
      result: { studentAccuracy: 0.999 },
    };
    const c = cluster({}, done);
    c.state.dj = { ...c.state.dj, metadata: { ...metadataOf(c), managedFields: managed("result") } };
    await c.reconciler.reconcile("ns/j");
    expect(c.writes).toEqual(["clear:result", "status"]);
    expect(c.status()).toEqual({ phase: "Succeeded", completionTime: "2025-01-01T00:00:05Z" });
    c.state.dj = { ...c.state.dj, metadata: { ...metadataOf(c), managedFields: [] } };
    await c.reconciler.reconcile("ns/j");
    expect(c.writes).toEqual(["clear:result", "status"]);
  });

  it.each([
    ["garbage", "garbage"],
    ["the year 2999", "2999-01-01T00:00:00Z"],
  ])(
    "checks times: a lastTransitionTime of %s neither fails nor disables the pending deadline",
    async (_, time) => {
      const c = cluster({ runPolicy: { pendingDeadlineSeconds: 60 } });
      await c.reconciler.reconcile("ns/j");
      const conditions = c.status()!.conditions!.map((x) => ({ ...x, lastTransitionTime: time }));
      c.state.dj = { ...c.state.dj, status: { ...c.status(), conditions, startTime: time } };
      const result = await c.reconciler.reconcile("ns/j");
      expect(c.status()?.phase).toBe("Pending");
      expect(c.status()?.startTime).not.toBe(time);
      expect(c.status()?.conditions?.every((x) => x.lastTransitionTime === "2025-01-01T00:00:10.000Z")).toBe(
        true,
      );
      expect(result.requeueAfterMs).toBe(60_001);
      c.setNow("2025-01-01T00:01:11Z");
      await c.reconciler.reconcile("ns/j");
      expect(c.status()?.phase).toBe("Failed");
    },
  );

  it("drops condition types that are not the operator's", async () => {
    const c = cluster({});
    await c.reconciler.reconcile("ns/j");
    const fake = {
      type: "Ready",
      status: "True" as const,
      reason: "X",
      message: "",
      lastTransitionTime: "2025-01-01T00:00:00Z",
    };
    c.state.dj = { ...c.state.dj, status: { ...c.status(), conditions: [...c.status()!.conditions!, fake] } };
    await c.reconciler.reconcile("ns/j");
    expect(findCondition(c.status()?.conditions, "Ready")).toBeUndefined();
  });

  it("truncates a 600-emoji trainer message on a code point boundary and keeps deriving", async () => {
    const c = cluster({});
    await c.reconciler.reconcile("ns/j");
    c.state.job = {
      ...c.state.job!,
      status: { failed: 1, conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded" }] },
    };
    const message = "\u{1F600}".repeat(600) + "\ud800"; // and a lone surrogate
    c.state.pods = [
      pod("p", {
        phase: "Failed",
        containerStatuses: [containerStatus({ terminated: { exitCode: 1, message } })],
      }),
    ];
    await c.reconciler.reconcile("ns/j");
    const failed = findCondition(c.status()?.conditions, "Failed")!;
    expect(c.status()?.phase).toBe("Failed");
    expect(failed.message.length).toBeLessThanOrEqual(1024);
    expect(failed.message.isWellFormed()).toBe(true);
  });

  it("falls back to a minimal status and a StatusRefused event when the apiserver refuses the status", async () => {
    const c = cluster({});
    const apply = c.writer.applyStatus;
    let refusals = 1;
    c.writer.applyStatus = async (ns, name, s) => {
      if (refusals-- > 0) throw new KubeApiError(422, "status.conditions[1].message: Invalid value");
      return apply(ns, name, s);
    };
    await c.reconciler.reconcile("ns/j");
    expect(c.events).toContain("Warning/StatusRefused");
    expect(c.status()?.phase).toBe("Pending");
    expect(findCondition(c.status()?.conditions, "Running")?.message).toMatch(
      /details refused by the apiserver/,
    );
  });

  it("never shows a finished trainer as creating its pod while the Job controller completes the Job", async () => {
    const c = cluster({});
    await c.reconciler.reconcile("ns/j");
    c.state.job = { ...c.state.job!, status: { succeeded: 1 } };
    c.state.pods = [pod("p", { phase: "Succeeded" })];
    await c.reconciler.reconcile("ns/j");
    expect(c.status()?.phase).toBe("Running");
    expect(findCondition(c.status()?.conditions, "Running")?.reason).toBe("TrainerFinished");
  });

  it("never says 'children applied' when no Job could be created: ApplyFailed, then failed by the deadline", async () => {
    const c = cluster(
      { runPolicy: { pendingDeadlineSeconds: 60 } },
      undefined,
      new KubeApiError(403, 'jobs "j" is forbidden: exceeded quota: jobs'),
    );
    await expect(c.reconciler.reconcile("ns/j")).rejects.toThrow(/exceeded quota/);
    expect(findCondition(c.status()?.conditions, "Running")?.reason).toBe("ApplyFailed");
    expect(findCondition(c.status()?.conditions, "Synced")?.status).toBe("False");
    c.setNow("2025-01-01T00:01:11Z");
    await c.reconciler.reconcile("ns/j");
    expect(c.status()?.phase).toBe("Failed");
    expect(findCondition(c.status()?.conditions, "Failed")?.reason).toBe("ApplyFailed");
    expect(findCondition(c.status()?.conditions, "Failed")?.message).toMatch(/exceeded quota/);
    expect(findCondition(c.status()?.conditions, "Synced")?.status).toBe("False");
  });

  it("keeps an honest status while a finalizer holds a deleted DistillationJob, and applies nothing", async () => {
    const c = cluster({});
    await c.reconciler.reconcile("ns/j");
    c.state.dj = { ...c.state.dj, metadata: { ...metadataOf(c), deletionTimestamp: "2025-01-01T00:00:09Z" } };
    c.state.job = {
      ...c.state.job!,
      status: { succeeded: 1, conditions: [{ type: "Complete", status: "True" }] },
    };
    c.state.pods = [pod("p", { phase: "Succeeded" })];
    c.writes.length = 0;
    await c.reconciler.reconcile("ns/j");
    expect(c.status()?.phase).toBe("Succeeded");
    expect(c.writes).toEqual(["status"]);
  });

  it("counts a Job deleted by hand as a restart: an event, a new Job, one more attempt", async () => {
    const c = cluster({});
    await c.reconciler.reconcile("ns/j");
    c.state.job = { ...c.state.job!, status: { active: 1 } };
    c.state.pods = [pod("p", { phase: "Running" })];
    await c.reconciler.reconcile("ns/j");
    expect(c.status()?.attempts).toBe(1);
    c.state.job = undefined;
    c.state.pods = [];
    await c.reconciler.reconcile("ns/j");
    expect(c.events).toContain("Warning/Restarted");
    expect(c.status()?.attempts).toBe(2);
  });

  it("counts a suspend flipped by someone else as a restart and resumes the Job", async () => {
    const c = cluster({});
    await c.reconciler.reconcile("ns/j");
    c.state.job = { ...c.state.job!, status: { active: 1 } };
    c.state.pods = [pod("p", { phase: "Running" })];
    await c.reconciler.reconcile("ns/j");
    c.state.job = { ...c.state.job!, spec: { ...c.state.job!.spec!, suspend: true }, status: {} };
    c.state.pods = [];
    await c.reconciler.reconcile("ns/j");
    expect(c.patches).toContainEqual({ suspend: false });
    expect(c.events).toContain("Warning/Restarted");
    expect(c.status()?.attempts).toBe(2);
  });
});
