import { describe, expect, it } from "vitest";
import type { DistillationJobStatus } from "../../../../api/v1alpha1/index.ts";
import { slimConfigMap } from "../../../../operator/src/controller/cache-transforms.ts";
import { KubeApiError } from "../../../../operator/src/lib/kube-http.ts";
import { findCondition } from "../../../../operator/src/status/conditions.ts";
import { containerStatus, jobCondition, pod, terminated } from "../../../fixtures/kube-objects.ts";
import { fakeCluster } from "./fake-cluster.ts";

describe("Reconciler", () => {
  it("creates the ConfigMap and Job, then makes no writes while nothing changes", async () => {
    const c = fakeCluster();
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls).toEqual({ configMap: 1, job: 1, status: 1, delete: 0 });
    expect((c.state.dj!.status as DistillationJobStatus).phase).toBe("Pending");
    await c.reconciler.reconcile("ns/mnist");
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls).toEqual({ configMap: 1, job: 1, status: 1, delete: 0 });
  });

  it("does not create its Job again while the cache has not shown the one it created (expectations)", async () => {
    const c = fakeCluster();
    await c.reconciler.reconcile("ns/mnist");
    const created = c.state.job;
    c.state.job = undefined; // the Job watch lags: e.g. its pod's event came first
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls.job).toBe(1);
    c.state.job = created; // the cache catches up; then it loses the Job (deleted by someone): created again
    await c.reconciler.reconcile("ns/mnist");
    c.state.job = undefined;
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls.job).toBe(2);
  });

  it("patches status and records an event when the phase changes", async () => {
    const c = fakeCluster();
    await c.reconciler.reconcile("ns/mnist");
    c.state.job!.status = { active: 1 };
    c.state.pods = [pod("p", { phase: "Running" })];
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls.status).toBe(2);
    expect((c.state.dj!.status as DistillationJobStatus).phase).toBe("Running");
    expect(c.events).toEqual(["Normal/JobCreated", "Normal/TrainerRunning"]);
  });

  it("restores a trainer config edited or emptied by hand, also when the cache keeps only its hash", async () => {
    const c = fakeCluster();
    await c.reconciler.reconcile("ns/mnist");
    const applied = c.state.cm!.data!["job.json"];
    c.state.cm = { ...c.state.cm!, data: { "job.json": '{"spec":{"training":{"epochs":999}}}' } };
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls.configMap).toBe(2);
    expect(c.state.cm.data!["job.json"]).toBe(applied);
    c.state.cm = slimConfigMap({ ...c.state.cm, data: {} }); // as the informer caches an emptied one
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls.configMap).toBe(3);
    c.state.cm = slimConfigMap(c.state.cm); // as the informer caches the restored one
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls.configMap).toBe(3);
  });

  it("patches only the mutable fields of the existing Job when runPolicy changes", async () => {
    const c = fakeCluster({ runPolicy: { activeDeadlineSeconds: 600 } });
    await c.reconciler.reconcile("ns/mnist");
    (c.state.dj!.spec as Record<string, unknown>) = { runPolicy: { suspend: true, backoffLimit: 5 } };
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls.job).toBe(1);
    expect(c.patches).toEqual([{ suspend: true, backoffLimit: 5, activeDeadlineSeconds: null }]);
    expect(c.state.job!.spec!.suspend).toBe(true);
    expect(c.state.job!.spec!.activeDeadlineSeconds).toBeUndefined();
    await c.reconciler.reconcile("ns/mnist"); // in place now: nothing more to patch
    expect(c.patches).toHaveLength(1);
  });

  it("keeps the running Job under an operator with another trainer image, and still reports Succeeded", async () => {
    const c = fakeCluster();
    await c.operator("ghcr.io/mokd/trainer:old").reconcile("ns/mnist");
    c.state.job!.status = { active: 1 };
    c.state.pods = [pod("p", { phase: "Running" })];
    const upgraded = c.operator("ghcr.io/mokd/trainer:new"); // the operator restarted with a new image
    await upgraded.reconcile("ns/mnist");
    expect((c.state.dj!.status as DistillationJobStatus).phase).toBe("Running");
    c.state.job!.status = { succeeded: 1, conditions: [jobCondition("Complete", "Completed")] };
    c.state.pods = [pod("p", { phase: "Succeeded", containerStatuses: [terminated(0)] })];
    await upgraded.reconcile("ns/mnist");
    expect((c.state.dj!.status as DistillationJobStatus).phase).toBe("Succeeded");
    expect(c.calls.job).toBe(1);
    expect(c.state.job!.spec!.template.spec!.containers[0]!.image).toBe("ghcr.io/mokd/trainer:old");
  });

  it("writes the derived status with Synced=False when an apply fails, retries, and sets Synced=True after", async () => {
    const c = fakeCluster();
    await c.reconciler.reconcile("ns/mnist");
    c.state.job!.status = { active: 1 };
    c.state.pods = [pod("p", { phase: "Running" })];
    c.state.cm = { ...c.state.cm!, data: {} }; // needs a re-apply, which the apiserver refuses
    c.failures.configMap = new KubeApiError(403, 'configmaps "mnist-config" is forbidden');
    await expect(c.reconciler.reconcile("ns/mnist")).rejects.toThrow(/forbidden/);
    let status = c.state.dj!.status as DistillationJobStatus;
    expect(status.phase).toBe("Running"); // still derived from what the cluster shows
    expect(findCondition(status.conditions, "Synced")).toMatchObject({
      status: "False",
      reason: "ApplyFailed",
    });
    expect(findCondition(status.conditions, "Synced")!.message).toContain("forbidden");
    expect(c.events.at(-1)).toBe("Warning/ApplyFailed");
    c.failures.configMap = undefined;
    await c.reconciler.reconcile("ns/mnist");
    status = c.state.dj!.status as DistillationJobStatus;
    expect(findCondition(status.conditions, "Synced")).toMatchObject({ status: "True", reason: "Applied" });
    expect(c.events.at(-1)).toBe("Normal/Applied");
  });

  it("shows a failing first apply on a new job at once, without the transient hold", async () => {
    const c = fakeCluster({}, { transientHoldMs: 2000 });
    // Retryable (not an invalid child, which ends the job Failed/InvalidSpec): e.g. a full ResourceQuota.
    c.failures.configMap = new KubeApiError(403, 'configmaps "mnist-config" is forbidden: exceeded quota');
    await expect(c.reconciler.reconcile("ns/mnist")).rejects.toThrow(/exceeded quota/);
    const status = c.state.dj!.status as DistillationJobStatus;
    expect(status.phase).toBe("Pending");
    expect(findCondition(status.conditions, "Synced")!.message).toContain("exceeded quota");
  });

  it("does not touch children of a finished job and deletes it after ttlSecondsAfterFinished", async () => {
    const done: DistillationJobStatus = { phase: "Succeeded", completionTime: "2025-01-01T00:00:00Z" };
    const c = fakeCluster({ runPolicy: { ttlSecondsAfterFinished: 30 } }, { status: done });
    expect(await c.reconciler.reconcile("ns/mnist")).toEqual({ requeueAfterMs: 20_000 });
    expect(c.calls).toEqual({ configMap: 0, job: 0, status: 0, delete: 0 });
    c.setNow("2025-01-01T00:00:30Z");
    expect(await c.reconciler.reconcile("ns/mnist")).toEqual({});
    expect(c.calls.delete).toBe(1);
  });

  it("marks a job that never started Failed/InvalidSpec when the schema refuses its spec, naming the field", async () => {
    // The CRD would refuse this; an older CRD or bypassed validation could let it through.
    const c = fakeCluster({ training: { epochs: -1 } });
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls).toEqual({ configMap: 0, job: 0, status: 1, delete: 0 });
    const status = c.state.dj!.status as DistillationJobStatus;
    expect(status.phase).toBe("Failed");
    expect(status.observedGeneration).toBe(1);
    expect(findCondition(status.conditions, "Failed")).toMatchObject({
      status: "True",
      reason: "InvalidSpec",
    });
    expect(findCondition(status.conditions, "Failed")!.message).toContain("spec.training.epochs");
    expect(c.events).toEqual(["Warning/InvalidSpec"]);
    await c.reconciler.reconcile("ns/mnist"); // final: no further status writes
    expect(c.calls.status).toBe(1);
  });

  it("keeps the status and trainer of a running job whose spec the schema no longer accepts", async () => {
    const c = fakeCluster();
    await c.reconciler.reconcile("ns/mnist");
    c.state.job!.status = { active: 1 };
    c.state.pods = [pod("p", { phase: "Running" })];
    await c.reconciler.reconcile("ns/mnist");
    const running = c.state.dj!.status;
    (c.state.dj!.spec as Record<string, unknown>) = { training: { epochs: -1 } }; // e.g. after an upgrade
    await c.reconciler.reconcile("ns/mnist");
    expect(c.state.dj!.status).toEqual(running);
    expect(c.calls).toMatchObject({ job: 1, status: 2, delete: 0 });
    expect(c.events.at(-1)).toBe("Warning/InvalidSpec");
  });

  it("does nothing for a deleted object", async () => {
    const c = fakeCluster();
    c.state.dj = undefined;
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls).toEqual({ configMap: 0, job: 0, status: 0, delete: 0 });
  });

  it("bases the next status on what it wrote when the cache lags behind", async () => {
    const c = fakeCluster();
    await c.reconciler.reconcile("ns/mnist");
    const written = c.state.dj!.status;
    // The informer has not delivered our status write yet: the cache still shows the old object.
    c.state.dj = {
      ...c.state.dj,
      status: undefined,
      metadata: { ...(c.state.dj!.metadata as object), resourceVersion: "10" },
    };
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls.status).toBe(1);
    expect(written).toBeDefined();
  });

  it("treats resourceVersions as opaque strings: a lagging cache is recognised without comparing them", async () => {
    const c = fakeCluster();
    const meta = () => c.state.dj!.metadata as Record<string, unknown>;
    meta().resourceVersion = "etcd3-opaque-a"; // not a number: any apiserver may hand out such versions
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls.status).toBe(1);
    // The informer has not delivered the write yet: it still shows the version the write replaced.
    c.state.dj = {
      ...c.state.dj,
      status: undefined,
      metadata: { ...meta(), resourceVersion: "etcd3-opaque-a" },
    };
    await c.reconciler.reconcile("ns/mnist");
    expect(c.calls.status).toBe(1);
  });

  describe("holding transient statuses back (burst coalescing)", () => {
    const status = (c: ReturnType<typeof fakeCluster>) =>
      c.state.dj!.status as DistillationJobStatus | undefined;
    const running = () => [pod("p", { phase: "Running" })];

    it("writes one status and one event when the pod runs within the hold", async () => {
      const c = fakeCluster({}, { transientHoldMs: 2000 });
      expect(await c.reconciler.reconcile("ns/mnist")).toEqual({ requeueAfterMs: 2000 });
      expect(c.calls).toEqual({ configMap: 1, job: 1, status: 0, delete: 0 });
      c.setNow("2025-01-01T00:00:10.500Z");
      c.state.pods = [pod("p", { phase: "Pending" })];
      expect(await c.reconciler.reconcile("ns/mnist")).toEqual({ requeueAfterMs: 1500 });
      c.setNow("2025-01-01T00:00:11Z");
      c.state.pods = running();
      expect(await c.reconciler.reconcile("ns/mnist")).toEqual({});
      expect(c.calls.status).toBe(1);
      expect(status(c)?.phase).toBe("Running");
      // The Created condition keeps the time it was first seen true, not the time of the write.
      expect(findCondition(status(c)?.conditions, "Created")?.lastTransitionTime).toBe(
        "2025-01-01T00:00:10.000Z",
      );
      expect(c.events).toEqual(["Normal/TrainerRunning"]);
    });

    it("never loses a transient status: it is written once the hold has passed", async () => {
      const c = fakeCluster({}, { transientHoldMs: 2000 });
      await c.reconciler.reconcile("ns/mnist");
      c.setNow("2025-01-01T00:00:12Z"); // the requeue after 2 s
      expect(await c.reconciler.reconcile("ns/mnist")).toEqual({ requeueAfterMs: 598_001 }); // by the pending deadline (600 s)
      expect(c.calls.status).toBe(1);
      expect(status(c)?.phase).toBe("Pending");
      expect(c.events).toEqual(["Normal/JobCreated"]);
      // Transient step JobCreated -> PodPending: written after its own hold, without an event.
      c.state.pods = [pod("p", { phase: "Pending" })];
      expect(await c.reconciler.reconcile("ns/mnist")).toEqual({ requeueAfterMs: 2000 });
      c.setNow("2025-01-01T00:00:14Z");
      await c.reconciler.reconcile("ns/mnist");
      expect(c.calls.status).toBe(2);
      expect(findCondition(status(c)?.conditions, "Running")?.reason).toBe("PodPending");
      expect(c.events).toEqual(["Normal/JobCreated"]);
    });

    const unschedulable = () => [
      pod("p", {
        phase: "Pending",
        conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "no gpu" }],
      }),
    ];

    it("writes a stuck reason at once, with an event", async () => {
      const c = fakeCluster({}, { transientHoldMs: 2000 });
      await c.reconciler.reconcile("ns/mnist");
      c.state.pods = [
        pod("p", {
          phase: "Pending",
          containerStatuses: [containerStatus({ waiting: { reason: "ErrImagePull" } })],
        }),
      ];
      expect(await c.reconciler.reconcile("ns/mnist")).toEqual({ requeueAfterMs: 600_001 }); // written now; back by the pending deadline
      expect(c.calls.status).toBe(1);
      expect(c.events).toEqual(["Warning/ErrImagePull"]);
    });

    it("costs one write and one event for Pending -> Unschedulable -> Running within the hold", async () => {
      const c = fakeCluster({}, { transientHoldMs: 2000 });
      expect(await c.reconciler.reconcile("ns/mnist")).toEqual({ requeueAfterMs: 2000 });
      c.setNow("2025-01-01T00:00:11Z");
      c.state.pods = unschedulable();
      expect(await c.reconciler.reconcile("ns/mnist")).toEqual({ requeueAfterMs: 1000 });
      c.setNow("2025-01-01T00:00:11.500Z");
      c.state.pods = running();
      expect(await c.reconciler.reconcile("ns/mnist")).toEqual({});
      expect(c.calls.status).toBe(1);
      expect(status(c)?.phase).toBe("Running");
      expect(c.events).toEqual(["Normal/TrainerRunning"]);
    });

    it("writes an Unschedulable that lasts once the hold has passed, with its Warning", async () => {
      const c = fakeCluster({}, { transientHoldMs: 2000 });
      await c.reconciler.reconcile("ns/mnist");
      c.state.pods = unschedulable();
      expect(await c.reconciler.reconcile("ns/mnist")).toEqual({ requeueAfterMs: 2000 });
      expect(c.calls.status).toBe(0);
      c.setNow("2025-01-01T00:00:12Z");
      await c.reconciler.reconcile("ns/mnist");
      expect(c.calls.status).toBe(1);
      expect(findCondition(status(c)?.conditions, "Running")?.reason).toBe("Unschedulable");
      expect(c.events).toEqual(["Warning/Unschedulable"]);
    });
  });
});
