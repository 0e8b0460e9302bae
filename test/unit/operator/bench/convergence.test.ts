import { describe, expect, it } from "vitest";
import { ConvergenceTracker, Stage, statusStage } from "../../../../operator/bench/convergence.ts";

const pending = (reason: string) => ({
  phase: "Pending" as const,
  conditions: [
    { type: "Created", status: "True" as const, reason: "JobCreated", message: "", lastTransitionTime: "" },
    { type: "Running", status: "False" as const, reason, message: "", lastTransitionTime: "" },
  ],
});

describe("status convergence of the scale bench", () => {
  it("places a status at the child stage it shows", () => {
    expect(statusStage(undefined)).toBe(0);
    expect(statusStage(pending("JobCreated"))).toBe(Stage.JobCreated);
    expect(statusStage(pending("PodPending"))).toBe(Stage.PodCreated);
    expect(statusStage(pending("Unschedulable"))).toBe(Stage.PodUnschedulable);
    expect(statusStage({ phase: "Running" })).toBe(Stage.PodRunning);
    expect(statusStage({ phase: "Succeeded" })).toBe(Stage.JobFinished);
  });

  it("measures each job's worst lag from a child change to a status showing it or a later stage", () => {
    const t = new ConvergenceTracker();
    t.child("a", Stage.JobCreated, 0);
    t.child("a", Stage.PodCreated, 100);
    t.child("a", Stage.PodRunning, 1000);
    t.status("a", pending("JobCreated"), 50);
    // Pending -> Running coalesced into one write: the pod's creation is shown by the Running status too.
    t.status("a", { phase: "Running" }, 3000);
    t.child("b", Stage.JobCreated, 0);
    t.status("b", pending("JobCreated"), 40_000);
    expect(t.lags()).toEqual(
      new Map([
        ["a", 2900],
        ["b", 40_000],
      ]),
    );
    expect(t.converged()).toBe(true);
    expect(t.summary(30_000)).toMatchObject({ jobs: 2, max: 40, overBound: 1, neverShown: 0 });
  });

  it("counts a change never shown as over the bound, and is not converged", () => {
    const t = new ConvergenceTracker();
    t.child("a", Stage.PodUnschedulable, 0);
    t.status("a", pending("PodPending"), 10);
    expect(t.converged()).toBe(false);
    expect(t.summary(30_000)).toMatchObject({ overBound: 1, neverShown: 1 });
  });
});
