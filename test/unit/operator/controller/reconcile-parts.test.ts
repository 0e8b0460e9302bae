// The reconciler's parts that are pure or own their state: eventsFor, the TTL, the StatusWriter.
import { describe, expect, it } from "vitest";
import type { DistillationJobStatus } from "../../../../api/v1alpha1/index.ts";
import { StatusWriter, minimalStatus } from "../../../../operator/src/controller/status-writer.ts";
import { eventsFor, finishedSeconds } from "../../../../operator/src/controller/transitions.ts";
import { MAX_TIMER_MS, ttlDueInMs } from "../../../../operator/src/controller/ttl.ts";
import { KubeApiError } from "../../../../operator/src/lib/kube-http.ts";
import { reasonClass, REASONS } from "../../../../operator/src/status/conditions.ts";
import { distillationJob } from "../../../fixtures/kube-objects.ts";

const T = "2025-01-01T00:00:00Z";
const cond = (type: string, status: "True" | "False" | "Unknown", reason: string, message = "") => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: T,
});
const pending = (reason: string): DistillationJobStatus => ({
  phase: "Pending",
  conditions: [cond("Running", "False", reason, reason)],
});

describe("eventsFor(previous, next)", () => {
  it("announces phase changes and new stuck reasons, not the transient steps", () => {
    expect(eventsFor({}, pending("Creating"))).toEqual([
      { about: "phase", type: "Normal", reason: "Creating", message: "New -> Pending: Creating" },
    ]);
    expect(eventsFor(pending("Creating"), pending("JobCreated"))).toEqual([]);
    expect(eventsFor(pending("JobCreated"), pending("ImagePullBackOff"))[0]).toMatchObject({
      type: "Warning",
      reason: "ImagePullBackOff",
    });
  });

  it("announces Synced going False and back, once each, and an apply failure only once", () => {
    const synced = cond("Synced", "False", "ApplyFailed", "x");
    const failing = { ...pending("JobCreated"), conditions: [...pending("JobCreated").conditions!, synced] };
    expect(eventsFor(pending("JobCreated"), failing)).toEqual([
      { about: "synced", type: "Warning", reason: "ApplyFailed", message: "x" },
    ]);
    expect(eventsFor(failing, failing)).toEqual([]);
    const both = {
      phase: "Pending" as const,
      conditions: [...pending("ApplyFailed").conditions!, synced],
    };
    expect(eventsFor({}, both).map((e) => e.about)).toEqual(["phase"]);
  });

  it("measures a run only when it just finished", () => {
    const done = { phase: "Succeeded" as const, startTime: T, completionTime: "2025-01-01T00:01:00Z" };
    expect(finishedSeconds({ phase: "Running" }, done)).toBe(60);
    expect(finishedSeconds(done, done)).toBeUndefined();
  });
});

describe("ttlDueInMs", () => {
  it("counts from completionTime; nothing without a TTL or a completion", () => {
    const dj = distillationJob({ runPolicy: { ttlSecondsAfterFinished: 60 } });
    expect(ttlDueInMs({ ...dj, status: { completionTime: T } }, new Date("2025-01-01T00:00:30Z"))).toBe(
      30_000,
    );
    expect(ttlDueInMs({ ...dj, status: {} }, new Date(T))).toBeUndefined();
    expect(ttlDueInMs({ ...distillationJob(), status: { completionTime: T } }, new Date(T))).toBeUndefined();
    expect(MAX_TIMER_MS).toBe(2 ** 31 - 1);
  });
});

describe("StatusWriter", () => {
  const setup = (refuse = 0) => {
    const writes: DistillationJobStatus[] = [];
    let now = Date.parse(T);
    const writer = new StatusWriter(
      {
        applyStatus: async (_ns, _name, status) => {
          if (refuse-- > 0) throw new KubeApiError(422, "refused");
          writes.push(status);
          return String(writes.length);
        },
      },
      () => new Date(now),
      2000,
    );
    return { writer, writes, advance: (ms: number) => (now += ms) };
  };
  const dj = distillationJob();

  it("holds a transient status back, then writes it; writes nothing unchanged", async () => {
    const { writer, writes, advance } = setup();
    expect(await writer.write("k", dj, pending("JobCreated"))).toEqual({ requeueAfterMs: 2000 });
    expect(writer.heldStatus("k", dj)).toEqual(pending("JobCreated"));
    advance(2000);
    expect((await writer.write("k", dj, pending("JobCreated"))).written).toEqual(pending("JobCreated"));
    expect(writes).toHaveLength(1);
    expect(
      await writer.write("k", { ...dj, status: pending("Unschedulable") }, pending("Unschedulable")),
    ).toEqual({});
  });

  it("holds a pending job's steps from the first one: JobCreated -> PodPending -> Unschedulable is one write", async () => {
    const { writer, writes, advance } = setup();
    expect(await writer.write("k", dj, pending("JobCreated"))).toEqual({ requeueAfterMs: 2000 });
    advance(800);
    expect(await writer.write("k", dj, pending("PodPending"))).toEqual({ requeueAfterMs: 1200 });
    advance(700);
    expect(await writer.write("k", dj, pending("Unschedulable"))).toEqual({ requeueAfterMs: 500 });
    expect(writer.heldStatus("k", dj)).toEqual(pending("Unschedulable"));
    advance(500);
    expect((await writer.write("k", dj, pending("Unschedulable"))).written).toEqual(pending("Unschedulable"));
    expect(writes).toEqual([pending("Unschedulable")]);
  });

  it("writes a status that leaves Pending, or a stuck one, at once", async () => {
    const { writer, writes, advance } = setup();
    await writer.write("k", dj, pending("Unschedulable"));
    advance(100);
    const running: DistillationJobStatus = {
      phase: "Running",
      conditions: [cond("Running", "True", "TrainerRunning")],
    };
    expect((await writer.write("k", dj, running)).written).toEqual(running);
    expect((await writer.write("k2", dj, pending("ErrImagePull"))).written).toEqual(pending("ErrImagePull"));
    expect((await writer.write("k3", dj, pending("ExceededQuota"))).written).toEqual(
      pending("ExceededQuota"),
    );
    expect(writes).toHaveLength(3);
  });

  it("falls back to the minimal status when the apiserver refuses one", async () => {
    const { writer, writes } = setup(1);
    const outcome = await writer.write("k", dj, {
      ...pending("ErrImagePull"),
      result: { studentAccuracy: 1 },
    });
    expect(outcome.refused).toBe("refused");
    expect(writes).toEqual([minimalStatus(pending("ErrImagePull"))]);
    expect(writes[0]!.conditions![0]!.message).toMatch(/details refused by the apiserver/);
  });
});

describe("the reason table", () => {
  it("classes every reason, and unknown ones (the Job controller's own) as normal", () => {
    expect(reasonClass("ImagePullBackOff")).toBe("stuck");
    expect(reasonClass("DeadlineExceeded")).toBe("normal");
    expect(
      Object.values(REASONS).every((c) =>
        ["transient", "normal", "warning", "stuck", "terminal"].includes(c),
      ),
    ).toBe(true);
  });
});
