// The reconciler with a trainer pod disrupted from outside: the count and the event are idempotent across
// repeated reconciles and an operator restart; a pod deleted before any reconcile saw it still counts, through
// the memory of deleted disrupted pods (controller/deleted-pods.ts).
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { DeletedPods } from "../../../../operator/src/controller/deleted-pods.ts";
import { containerStatus } from "../../../fixtures/kube-objects.ts";
import { fakeCluster } from "./fake-cluster.ts";

function trainerPod(
  name: string,
  phase: string,
  disrupted?: string,
  created = "2025-01-01T00:00:01Z",
): V1Pod {
  return {
    metadata: {
      name,
      uid: `uid-${name}`,
      namespace: "ns",
      creationTimestamp: new Date(created),
      ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: "j", uid: "job-uid", controller: true }],
      ...(disrupted ? { deletionTimestamp: new Date("2025-01-01T00:00:05Z") } : {}),
    },
    status: {
      phase,
      conditions: disrupted
        ? [{ type: "DisruptionTarget", status: "True", reason: disrupted, message: "preempted" }]
        : [],
      containerStatuses: [
        containerStatus(phase === "Running" ? { running: {} } : { terminated: { exitCode: 143 } }),
      ],
    },
  };
}

/** A job `j` whose first pod runs. */
async function runningJob() {
  const c = fakeCluster({}, { name: "j" });
  await c.reconciler.reconcile("ns/j");
  c.state.job = { ...c.state.job!, status: { active: 1 } };
  c.state.pods = [trainerPod("a", "Running")];
  await c.reconciler.reconcile("ns/j");
  expect(c.status()?.attempts).toBe(1);
  return c;
}

const disruptedEvents = (events: string[]) => events.filter((e) => e === "Warning/Disrupted");

describe("the reconciler and a disrupted trainer pod", () => {
  it("records one Disrupted event and one more attempt over repeated reconciles and an operator restart", async () => {
    const c = await runningJob();
    c.state.job = { ...c.state.job!, status: {} };
    c.state.pods = [trainerPod("a", "Running", "PreemptionByScheduler")];
    await c.reconciler.reconcile("ns/j");
    c.state.pods = [trainerPod("a", "Failed", "PreemptionByScheduler")];
    await c.reconciler.reconcile("ns/j");
    await c.reconciler.reconcile("ns/j");
    // A new operator process on the same cluster.
    const restarted = c.operator();
    await restarted.reconcile("ns/j");
    c.state.pods = [trainerPod("b", "Running", undefined, "2025-01-01T00:00:09Z")];
    c.state.job = { ...c.state.job!, status: { active: 1 } };
    await restarted.reconcile("ns/j");
    expect(disruptedEvents(c.events)).toHaveLength(1);
    expect(c.status()?.attempts).toBe(2);
    expect(c.status()?.phase).toBe("Running");
    expect(c.status()?.lastDisruption).toMatchObject({ pod: "a", reason: "PreemptionByScheduler" });
  });

  it("counts a pod that was gone before any reconcile saw it disrupted, from the deleted-pod memory", async () => {
    const c = await runningJob();
    const memory = new DeletedPods();
    expect(memory.remember(trainerPod("a", "Failed", "EvictionByEvictionAPI"))).toBe(true);
    c.reader.deletedPods = (_ns, job) => memory.of(job.metadata!.uid ?? "job-uid");
    c.state.pods = [trainerPod("b", "Running", undefined, "2025-01-01T00:00:09Z")];
    await c.reconciler.reconcile("ns/j");
    await c.reconciler.reconcile("ns/j");
    expect(disruptedEvents(c.events)).toHaveLength(1);
    expect(c.status()?.attempts).toBe(2);
  });
});

describe("the memory of deleted disrupted pods", () => {
  it("keeps only disrupted pods of a Job, the newest per Job, for a bounded time", () => {
    let now = 0;
    const memory = new DeletedPods(() => now, 1000);
    expect(memory.remember(trainerPod("plain", "Failed"))).toBe(false);
    const orphan = trainerPod("orphan", "Failed", "EvictionByEvictionAPI");
    orphan.metadata!.ownerReferences = [];
    expect(memory.remember(orphan)).toBe(false);
    const older = trainerPod("a", "Failed", "EvictionByEvictionAPI", "2025-01-01T00:00:01Z");
    const newer = trainerPod("b", "Failed", "EvictionByEvictionAPI", "2025-01-01T00:00:09Z");
    expect(memory.remember(newer)).toBe(true);
    expect(memory.remember(older)).toBe(false); // deleted later, but not the latest disruption
    expect(memory.of("job-uid").map((p) => p.metadata!.name)).toEqual(["b"]);
    expect(memory.of("other")).toEqual([]);
    now = 1001;
    expect(memory.of("job-uid")).toEqual([]);
    expect(memory.size).toBe(0);
  });
});
