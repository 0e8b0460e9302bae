// A trainer pod disrupted from outside (preempted, evicted, drained, deleted by the taint manager): counted once as
// an attempt by its UID, shown while the Job replaces it, announced by one Warning event; the record survives a
// refused status write and is checked like the rest of a stored status.
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { DistillationJobStatus } from "../../../../api/v1alpha1/index.ts";
import { slimPod } from "../../../../operator/src/controller/cache-transforms.ts";
import { minimalStatus } from "../../../../operator/src/controller/status-writer.ts";
import { eventsFor } from "../../../../operator/src/controller/transitions.ts";
import { findCondition } from "../../../../operator/src/status/conditions.ts";
import { deriveStatus, type Observed } from "../../../../operator/src/status/derive.ts";
import { disruptionOf, newDisruption, resumesFrom } from "../../../../operator/src/status/disruption.ts";
import { checkedStatus } from "../../../../operator/src/status/trust.ts";
import { containerStatus, distillationJob, job, objectStorageJob } from "../../../fixtures/kube-objects.ts";

const NOW = "2025-01-01T00:05:00Z";

/** A trainer pod with a UID; `disrupted` gives it the DisruptionTarget condition with that reason. */
function trainerPod(
  name: string,
  phase: string,
  options: { created?: string; disrupted?: string; at?: string; deleting?: boolean } = {},
): V1Pod {
  const { created = "2025-01-01T00:00:01Z", disrupted, at = "2025-01-01T00:02:00Z", deleting } = options;
  return {
    metadata: {
      name,
      uid: `uid-${name}`,
      namespace: "team-a",
      creationTimestamp: new Date(created),
      ...(deleting ? { deletionTimestamp: new Date(at) } : {}),
    },
    status: {
      phase,
      conditions: disrupted
        ? [
            {
              type: "DisruptionTarget",
              status: "True",
              reason: disrupted,
              message: "Eviction API: evicting",
              lastTransitionTime: new Date(at),
            },
          ]
        : [],
      containerStatuses: [
        containerStatus(
          phase === "Running" ? { running: {} } : { terminated: { exitCode: phase === "Failed" ? 143 : 0 } },
        ),
      ],
    },
  };
}

const dj = distillationJob();
const running = (status: DistillationJobStatus = {}) =>
  deriveStatus({ ...dj, status }, { job: job({ active: 1 }), pods: [trainerPod("a", "Running")] }, NOW);

/** One reconcile's derivation from `status` and what it observes. */
const derive = (status: DistillationJobStatus, observed: Observed) =>
  deriveStatus({ ...dj, status }, observed, NOW);

describe("a disrupted trainer pod counts once, as one more attempt", () => {
  const first = running();

  it("counts the pod as soon as it is a disruption target, and records which pod and why", () => {
    const evicted = trainerPod("a", "Running", { disrupted: "EvictionByEvictionAPI", deleting: true });
    const s = derive(first, { job: job({ active: 1 }), pods: [evicted] });
    expect(first.attempts).toBe(1);
    expect(s.attempts).toBe(2);
    expect(s.lastDisruption).toEqual({
      pod: "a",
      podUID: "uid-a",
      reason: "EvictionByEvictionAPI",
      message: "Eviction API: evicting",
      time: "2025-01-01T00:02:00.000Z",
    });
    // While the Job replaces it: Pending/Disrupted, saying from where the new pod resumes.
    expect(s.phase).toBe("Pending");
    const cond = findCondition(s.conditions, "Running")!;
    expect(cond.reason).toBe("Disrupted");
    expect(cond.message).toBe(
      `pod a was disrupted (EvictionByEvictionAPI: Eviction API: evicting); the Job starts a new pod, which resumes ${resumesFrom(dj)}`,
    );
  });

  it("counts it once however often it is seen: terminating, failed, gone, then its replacement running", () => {
    const views: V1Pod[][] = [
      [trainerPod("a", "Running", { disrupted: "PreemptionByScheduler" })],
      [trainerPod("a", "Running", { disrupted: "PreemptionByScheduler", deleting: true })],
      [trainerPod("a", "Failed", { disrupted: "PreemptionByScheduler", deleting: true })],
      [],
      [trainerPod("b", "Pending", { created: "2025-01-01T00:03:00Z" })],
      [trainerPod("b", "Running", { created: "2025-01-01T00:03:00Z" })],
    ];
    let status = first;
    for (const pods of views) {
      // The Job's counters skip an ignored pod: active is the replacement only.
      status = derive(status, { job: job({ active: pods.length }), pods });
      expect(status.attempts).toBe(2);
    }
    expect(status.phase).toBe("Running");
    expect(status.lastDisruption?.pod).toBe("a");
  });

  it("counts a pod a reconcile never saw alive, from its final state after deletion", () => {
    const gone = trainerPod("a", "Failed", { disrupted: "DeletionByTaintManager", deleting: true });
    const replacement = trainerPod("b", "Running", { created: "2025-01-01T00:03:00Z" });
    const s = derive(first, { job: job({ active: 1 }), pods: [replacement], deletedPods: [gone] });
    expect(s.attempts).toBe(2);
    expect(s.lastDisruption).toMatchObject({ pod: "a", reason: "DeletionByTaintManager" });
    expect(findCondition(s.conditions, "Running")!.reason).toBe("TrainerRunning");
  });

  it("does not count it again after an operator restart (the record is in the stored status)", () => {
    const evicted = trainerPod("a", "Failed", { disrupted: "EvictionByEvictionAPI", deleting: true });
    const counted = derive(first, { job: job({}), pods: [evicted] });
    // A new operator: no memory of deleted pods, the status as stored (and checked) is all it has.
    const stored = checkedStatus(JSON.parse(JSON.stringify(counted)) as DistillationJobStatus, NOW);
    const again = derive(stored, { job: job({}), pods: [evicted] });
    expect(again.attempts).toBe(2);
  });

  it("counts each of two disruptions in a row, and never an older pod again", () => {
    const a = trainerPod("a", "Failed", { disrupted: "EvictionByEvictionAPI", deleting: true });
    const b = trainerPod("b", "Running", {
      created: "2025-01-01T00:03:00Z",
      disrupted: "PreemptionByScheduler",
      at: "2025-01-01T00:04:00Z",
    });
    const once = derive(first, { job: job({}), pods: [a] });
    const twice = derive(once, { job: job({ active: 1 }), pods: [b], deletedPods: [a] });
    expect(twice.attempts).toBe(3);
    expect(twice.lastDisruption?.pod).toBe("b");
    // The older pod still in view (terminating late) is not the latest disruption: nothing more counts.
    expect(derive(twice, { job: job({}), pods: [a, b] }).attempts).toBe(3);
    expect(newDisruption(twice.lastDisruption, [a])).toBeUndefined();
  });

  it("adds the disruption to the other counts, not twice: a failed retry before it, a replacement after", () => {
    const failedFirst = derive(first, {
      job: job({ failed: 1, active: 1 }),
      pods: [trainerPod("a", "Failed"), trainerPod("b", "Running", { created: "2025-01-01T00:01:00Z" })],
    });
    expect(failedFirst.attempts).toBe(2);
    const b = trainerPod("b", "Failed", {
      created: "2025-01-01T00:01:00Z",
      disrupted: "TerminationByKubelet",
      deleting: true,
    });
    const c = trainerPod("c", "Running", { created: "2025-01-01T00:03:00Z" });
    const s = derive(failedFirst, { job: job({ failed: 1, active: 1 }), pods: [b, c] });
    expect(s.attempts).toBe(3);
  });

  it("does not count a pod that finished its work before it was marked, nor a pod without the condition", () => {
    const done = trainerPod("a", "Succeeded", { disrupted: "EvictionByEvictionAPI" });
    expect(disruptionOf(done)).toBeUndefined();
    expect(disruptionOf(trainerPod("a", "Failed"))).toBeUndefined();
    const falseTarget = trainerPod("a", "Running", { disrupted: "EvictionByEvictionAPI" });
    falseTarget.status!.conditions![0]!.status = "False";
    expect(disruptionOf(falseTarget)).toBeUndefined();
  });

  it("says where the new pod resumes: the checkpoint prefix, the checkpoints volume, or the start", () => {
    expect(resumesFrom(objectStorageJob())).toBe(
      "from its last checkpoint under s3://results/ckpt/a, if one was uploaded",
    );
    expect(
      resumesFrom(distillationJob({ runtime: { volumes: { checkpoints: { claimName: "ckpt" } } } })),
    ).toBe("from its last checkpoint on the checkpoints volume, if one was written");
    expect(resumesFrom(dj)).toMatch(/^from the start: its checkpoints were in the pod's emptyDir/);
  });
});

describe("the Disrupted event", () => {
  const first = running();
  const evicted = trainerPod("a", "Running", { disrupted: "EvictionByEvictionAPI", deleting: true });
  const counted = derive(first, { job: job({ active: 1 }), pods: [evicted] });

  it("is one Warning naming the pod, the reason, where it resumes and the attempts; no phase event besides", () => {
    const events = eventsFor(first, counted, "from the start");
    expect(events).toEqual([
      {
        about: "disruption",
        type: "Warning",
        reason: "Disrupted",
        message:
          "pod a was disrupted (EvictionByEvictionAPI: Eviction API: evicting); the Job starts a new pod, which resumes from the start; attempts: 2",
      },
    ]);
  });

  it("is not repeated for the same pod, and the replacement's start is a normal phase event", () => {
    const again = derive(counted, { job: job({}), pods: [evicted] });
    expect(eventsFor(counted, again)).toEqual([]);
    const b = trainerPod("b", "Running", { created: "2025-01-01T00:03:00Z" });
    const resumed = derive(again, { job: job({ active: 1 }), pods: [b] });
    expect(eventsFor(again, resumed).map((e) => `${e.type}/${e.reason}`)).toEqual(["Normal/TrainerRunning"]);
  });
});

describe("the record of what was counted", () => {
  const record = {
    pod: "a",
    podUID: "uid-a",
    reason: "EvictionByEvictionAPI",
    message: "x".repeat(10),
    time: "2025-01-01T00:02:00Z",
  };

  it("survives a refused status write, without its message", () => {
    const minimal = minimalStatus({ phase: "Running", attempts: 2, lastDisruption: record });
    expect(minimal.lastDisruption).toEqual({
      pod: "a",
      podUID: "uid-a",
      reason: "EvictionByEvictionAPI",
      time: "2025-01-01T00:02:00Z",
    });
    expect(minimalStatus({ phase: "Running" }).lastDisruption).toBeUndefined();
  });

  it("is dropped when malformed, and its time checked like the others", () => {
    const garbage = { lastDisruption: { pod: 7 } } as unknown as DistillationJobStatus;
    expect(checkedStatus(garbage, NOW).lastDisruption).toBeUndefined();
    const future = checkedStatus({ lastDisruption: { ...record, time: "2999-01-01T00:00:00Z" } }, NOW);
    expect(future.lastDisruption).toEqual({
      pod: "a",
      podUID: "uid-a",
      reason: "EvictionByEvictionAPI",
      message: "xxxxxxxxxx",
    });
  });

  it("keeps the DisruptionTarget time in the pod cache (no other condition's)", () => {
    const slim = slimPod(trainerPod("a", "Running", { disrupted: "EvictionByEvictionAPI" }));
    expect(slim.status!.conditions).toEqual([
      {
        type: "DisruptionTarget",
        status: "True",
        reason: "EvictionByEvictionAPI",
        message: "Eviction API: evicting",
        lastTransitionTime: new Date("2025-01-01T00:02:00Z"),
      },
    ]);
  });
});
