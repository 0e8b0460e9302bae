// The reconciler against specs nothing can run and statuses nobody derived (issue 10 points 2 and 5): every class
// of bad input ends with a status (Failed/InvalidSpec, naming the field or quoting the apiserver) and is not
// retried; a status the cluster contradicts is derived again; timers never exceed Node's limit.
import type { V1ConfigMap, V1Job, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { DistillationJobStatus } from "../../../api/v1alpha1/index.ts";
import type { ClusterWriter } from "../../../operator/src/controller/kube.ts";
import { MAX_TIMER_MS, Reconciler, type ClusterReader } from "../../../operator/src/controller/reconciler.ts";
import { KubeApiError } from "../../../operator/src/lib/kube-http.ts";
import { findCondition } from "../../../operator/src/status/conditions.ts";
import { INVALID_SPECS } from "../api/invalid-specs.ts";
import { pod } from "./fixtures.ts";

/** A cluster whose apiserver refuses a new Job with `refuseJob` (as it does an invalid pod template). */
function cluster(spec: unknown, initial?: DistillationJobStatus, refuseJob?: KubeApiError) {
  const state = {
    dj: {
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationJob",
      metadata: { name: "j", namespace: "ns", uid: "u1", generation: 1, resourceVersion: "10" },
      spec,
      ...(initial ? { status: initial } : {}),
    } as Record<string, unknown>,
    job: undefined as V1Job | undefined,
    cm: undefined as V1ConfigMap | undefined,
    pods: [] as V1Pod[],
  };
  const writes: string[] = [];
  const patches: unknown[] = [];
  const events: string[] = [];
  let rv = 10;
  const writer: ClusterWriter = {
    applyConfigMap: async (cm) => (writes.push("configMap"), (state.cm = cm)),
    applyJob: async (job) => {
      if (refuseJob) throw refuseJob;
      writes.push("job");
      return (state.job = { ...job, status: {} });
    },
    patchJob: async (_ns, _name, spec) => {
      writes.push("patchJob");
      patches.push(spec);
      state.job = { ...state.job!, spec: { ...state.job!.spec!, ...spec } as V1Job["spec"] };
      return state.job;
    },
    applyStatus: async (_ns, _name, s) => {
      writes.push("status");
      rv++;
      state.dj = {
        ...state.dj,
        status: s,
        metadata: { ...(state.dj.metadata as object), resourceVersion: `${rv}` },
      };
      return `${rv}`;
    },
    clearStatus: async (_ns, _name, fields) => {
      writes.push(`clear:${fields.join(",")}`);
      const status = Object.entries(state.dj.status as Record<string, unknown>).filter(
        ([k]) => !fields.includes(k),
      );
      state.dj = { ...state.dj, status: Object.fromEntries(status) };
    },
    deleteDistillationJob: async () => void writes.push("delete"),
  };
  let now = new Date("2025-01-01T00:00:10Z");
  const reader: ClusterReader = {
    distillationJob: () => state.dj,
    job: () => state.job,
    configMap: () => state.cm,
    pods: () => state.pods,
  };
  const reconciler = new Reconciler({
    reader,
    writer,
    events: { record: (_o, type, reason) => void events.push(`${type}/${reason}`) },
    now: () => now,
    transientHoldMs: 0,
  });
  const status = () => state.dj.status as DistillationJobStatus | undefined;
  const setNow = (iso: string) => (now = new Date(iso));
  return { state, writes, patches, events, reader, reconciler, status, setNow };
}

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
    const { NameConflictError } = await import("../../../operator/src/controller/ownership.ts");
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
