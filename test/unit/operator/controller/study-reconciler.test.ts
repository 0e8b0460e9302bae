// The StudyReconciler against an in-memory cluster: stages created in order and never twice, suspend on the
// current stage only, a foreign object's name a NameConflict, a spec the schema refuses an InvalidSpec status.
import type { V1ConfigMap, V1Job, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { DistillationStudyStatus } from "../../../../api/v1alpha1/index.ts";
import type { JobSpecUpdate } from "../../../../operator/src/controller/job-update.ts";
import { StudyReconciler, devicesOf } from "../../../../operator/src/controller/study-reconciler.ts";
import { complete, indexedPod, variantResult } from "../../../fixtures/study.ts";
import { study as studyFixture } from "../../../fixtures/study.ts";

type Spec = Record<string, unknown>;

function fakeCluster(spec: Spec = { seeds: [1], variants: { automatic: ["mokd"], fixedAlphas: [0.9] } }) {
  let rv = 5;
  const state = {
    study: {
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationStudy",
      metadata: { name: "pilot", namespace: "ns", uid: "study-uid", generation: 1, resourceVersion: "5" },
      spec: { template: { output: { uri: "s3://bucket/pilot" } }, ...spec },
    } as Record<string, unknown> & { status?: DistillationStudyStatus; spec: Spec },
    jobs: new Map<string, V1Job>(),
    cm: undefined as V1ConfigMap | undefined,
    pods: new Map<string, V1Pod[]>(),
  };
  const clock = { now: new Date("2026-01-01T00:00:00Z") };
  const created: string[] = [];
  const patches: [string, JobSpecUpdate][] = [];
  const events: string[] = [];
  const reconciler = new StudyReconciler({
    reader: {
      study: () => state.study,
      job: (_n, name) => state.jobs.get(name),
      configMap: () => state.cm,
      pods: (_n, job) => state.pods.get(job.metadata!.name!) ?? [],
    },
    writer: {
      applyConfigMap: async (cm) => (state.cm = cm),
      applyJob: async (job) => {
        const name = job.metadata!.name!;
        created.push(name);
        const stored = { ...job, metadata: { ...job.metadata, uid: `${name}-uid` }, status: {} };
        state.jobs.set(name, stored);
        return stored;
      },
      patchJob: async (_ns, name, spec) => {
        patches.push([name, spec]);
        const job = state.jobs.get(name)!;
        const updated = { ...job, spec: { ...job.spec!, ...(spec as object) } };
        state.jobs.set(name, updated);
        return updated;
      },
    },
    studyWriter: {
      applyStatus: async (_ns, _name, status) => {
        rv++;
        state.study = {
          ...state.study,
          status,
          metadata: { ...(state.study.metadata as object), resourceVersion: String(rv) },
        };
        return String(rv);
      },
      deleteStudy: async () => undefined,
    },
    events: { record: (_o, type, reason, message) => events.push(`${type} ${reason}: ${message}`) },
    transientHoldMs: 0,
    now: () => clock.now,
  });
  const finish = (name: string, status: V1Job["status"]) => {
    const job = state.jobs.get(name)!;
    state.jobs.set(name, { ...job, status });
  };
  return {
    state,
    created,
    patches,
    events,
    finish,
    clock,
    reconcile: () => reconciler.reconcile("ns/pilot"),
  };
}

describe("StudyReconciler", () => {
  it("runs the stages in order, each Job created once, and ends Succeeded with the report", async () => {
    const c = fakeCluster();
    await c.reconcile();
    await c.reconcile(); // a second pass (or a restarted operator reading the same caches) creates nothing new
    expect(c.created).toEqual(["pilot-teacher"]);
    expect(c.state.cm?.metadata?.name).toBe("pilot-study");
    c.finish("pilot-teacher", { succeeded: 1, conditions: [complete] });
    await c.reconcile();
    await c.reconcile();
    expect(c.created).toEqual(["pilot-teacher", "pilot-variants"]);
    expect(c.state.study.status).toMatchObject({ stage: "Variants", phase: "Pending", runs: 3 });
    c.state.pods.set("pilot-variants", [
      indexedPod(0, "Succeeded", { message: variantResult(0.7, 0.69) }),
      indexedPod(1, "Succeeded", { message: variantResult(0.8, 0.79) }),
      indexedPod(2, "Failed", {
        exitCode: 2,
        message: JSON.stringify({ error: "bad", reason: "BadConfig" }),
      }),
    ]);
    c.finish("pilot-variants", {
      succeeded: 2,
      failed: 1,
      completedIndexes: "0,1",
      failedIndexes: "2",
      conditions: [{ type: "Failed", status: "True", reason: "FailedIndexes", message: "" }],
    });
    await c.reconcile();
    expect(c.created).toEqual(["pilot-teacher", "pilot-variants", "pilot-report"]);
    expect(c.events.filter((e) => e.includes("Variant"))).toEqual([
      expect.stringMatching(/^Normal VariantSucceeded: 2 variants succeeded: alone-s1/),
      expect.stringMatching(/^Warning VariantFailed: variant kd@0.9-s1 \(index 2\) failed: BadConfig/),
    ]);
    c.finish("pilot-report", { succeeded: 1, conditions: [complete] });
    await c.reconcile();
    expect(c.state.study.status).toMatchObject({
      phase: "Succeeded",
      stage: "Done",
      succeeded: 2,
      failed: 1,
      best: { arm: "mokd" },
    });
    expect(c.events.some((e) => e.startsWith("Normal Succeeded"))).toBe(true);
    await c.reconcile();
    expect(c.created).toHaveLength(3);
  });

  it("suspends the current stage's Job only", async () => {
    const c = fakeCluster();
    await c.reconcile();
    c.finish("pilot-teacher", { succeeded: 1, conditions: [complete] });
    await c.reconcile();
    c.state.study = {
      ...c.state.study,
      spec: {
        ...c.state.study.spec,
        template: { output: { uri: "s3://bucket/pilot" }, runPolicy: { suspend: true } },
      },
    };
    await c.reconcile();
    expect(c.patches).toEqual([["pilot-variants", { suspend: true }]]);
    expect(c.state.study.status?.phase).toBe("Suspended");
  });

  it("a Job of the study's name it does not control: NameConflict, nothing adopted", async () => {
    const c = fakeCluster();
    c.state.jobs.set("pilot-teacher", { metadata: { name: "pilot-teacher", namespace: "ns", uid: "other" } });
    await c.reconcile();
    expect(c.created).toEqual([]);
    expect(c.state.study.status).toMatchObject({ phase: "Failed" });
    expect(c.state.study.status?.conditions?.find((x) => x.type === "Failed")).toMatchObject({
      reason: "NameConflict",
    });
  });

  it("a spec the schema refuses ends Failed/InvalidSpec naming the field", async () => {
    const c = fakeCluster({ seeds: [1, 1] });
    await c.reconcile();
    expect(c.created).toEqual([]);
    const failed = c.state.study.status?.conditions?.find((x) => x.type === "Failed");
    expect(failed).toMatchObject({ status: "True", reason: "InvalidSpec" });
    expect(failed?.message).toMatch(/seeds.*unique/);
    expect(c.events[0]).toMatch(/^Warning InvalidSpec/);
  });
});

describe("template.runPolicy.pendingDeadlineSeconds", () => {
  const stuckPod = () => {
    const pod = indexedPod(0, "Pending");
    pod.status!.conditions = [
      { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "no node fits" },
    ];
    return pod;
  };

  it.each([
    // Outside Kueue the variants Job is pending from its creation (T0); under Kueue from its admission (T0 + 10 s).
    ["a Job outside Kueue is suspended", {}, { suspend: true }, 50_001],
    [
      "a Kueue Job is ended (Kueue would un-suspend it)",
      { queueName: "q" },
      { activeDeadlineSeconds: 1 },
      60_001,
    ],
  ])(
    "comes back at the deadline, then fails the study naming the stage and stops its Job: %s",
    async (_what, extra, stop, comeBackMs) => {
      const c = fakeCluster({
        seeds: [1],
        variants: { automatic: ["mokd"], fixedAlphas: [0.9] },
        template: {
          output: { uri: "s3://bucket/pilot" },
          runPolicy: { pendingDeadlineSeconds: 60 },
          ...extra,
        },
      });
      await c.reconcile();
      c.finish("pilot-teacher", { succeeded: 1, conditions: [complete] });
      await c.reconcile(); // creates the variants Job
      const variants = c.state.jobs.get("pilot-variants")!;
      c.state.jobs.set("pilot-variants", { ...variants, spec: { ...variants.spec!, suspend: false } });
      c.state.pods.set("pilot-variants", [stuckPod()]);
      c.clock.now = new Date("2026-01-01T00:00:10Z");
      expect(await c.reconcile()).toEqual({ requeueAfterMs: comeBackMs });
      expect(c.state.study.status?.phase).toBe("Pending");
      c.clock.now = new Date("2026-01-01T00:01:10Z");
      await c.reconcile();
      expect(c.state.study.status).toMatchObject({ phase: "Failed", stage: "Variants" });
      const failed = c.state.study.status?.conditions?.find((x) => x.type === "Failed");
      expect(failed).toMatchObject({ reason: "Unschedulable" });
      expect(failed?.message).toMatch(
        /^the variants stage's pods did not start within .* \(60 s\): Unschedulable/,
      );
      expect(c.patches).toEqual([["pilot-variants", stop]]);
      await c.reconcile(); // final: nothing more
      expect(c.patches).toHaveLength(1);
      expect(c.events.some((e) => e.startsWith("Warning Unschedulable"))).toBe(true);
    },
  );
});

describe("devicesOf", () => {
  it("GPUs, else the CPU limit, else the request, else the operator's default limit", () => {
    const uri = { uri: "s3://bucket/p" };
    expect(devicesOf(studyFixture({ template: { output: uri, runtime: { gpus: 1 } } }), {})).toEqual({
      devices: 1,
      unit: "GPU",
    });
    expect(
      devicesOf(
        studyFixture({
          template: { output: uri, runtime: { gpus: 0, resources: { limits: { cpu: "2" } } } },
        }),
        {},
      ),
    ).toEqual({ devices: 2, unit: "CPU" });
    expect(
      devicesOf(
        studyFixture({
          template: { output: uri, runtime: { gpus: 0, resources: { requests: { cpu: "500m" } } } },
        }),
        {},
      ),
    ).toEqual({ devices: 0.5, unit: "CPU" });
    expect(devicesOf(studyFixture({ template: { output: uri, runtime: { gpus: 0 } } }), {})).toEqual({
      devices: 4,
      unit: "CPU",
    });
  });
});
