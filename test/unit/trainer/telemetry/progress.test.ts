import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { TrainerProgress } from "../../../../api/v1alpha1/index.ts";
import type { EpochRecord, StepRecord } from "../../../../trainer/src/contracts.ts";
import { ProgressDocument } from "../../../../trainer/src/telemetry/progress-document.ts";

function clock() {
  let ms = 0;
  return {
    clock: { monotonic: () => ms, wall: () => new Date(Date.UTC(2025, 0, 1, 0, 0, 0, ms)) },
    advance: (by: number) => (ms += by),
  };
}

const step = (stage: "teacher" | "student", index: number, epoch: number, extra: Partial<StepRecord> = {}) =>
  ({
    type: "step",
    stage,
    epoch,
    step: index,
    losses: { task: 0.5, distillation: Number.NaN },
    weights: { task: 0.6, distillation: 0.4 },
    seconds: 0.01,
    ...extra,
  }) satisfies StepRecord;

const epochEnd = (stage: "teacher" | "student", epoch: number, stepsDone: number): EpochRecord => ({
  type: "epoch",
  stage,
  epoch,
  epochs: 2,
  step: stepsDone,
  trainAccuracy: 0.7,
  validationAccuracy: 0.65,
  samplesPerSecond: 1200,
  conflictRate: 0,
  losses: {},
  seconds: 1,
});

describe("ProgressDocument (the trainer's /progress)", () => {
  const plan = { teacher: { epochs: 2, stepsPerEpoch: 5 }, student: { epochs: 2, stepsPerEpoch: 5 } };

  it("reports the global step, the plan and the share of the whole run; the api schema accepts it", () => {
    const { clock: c, advance } = clock();
    const doc = new ProgressDocument(plan, c);
    expect(doc.document()).toBeUndefined();
    doc.startStage("teacher", 2, 5);
    for (let i = 0; i < 5; i++) {
      advance(100);
      doc.step(step("teacher", i, 1));
    }
    doc.epochEnd(epochEnd("teacher", 1, 5));
    const teacher = TrainerProgress.parse(doc.document());
    expect(teacher).toMatchObject({
      stage: "teacher",
      stages: ["teacher", "student"],
      epoch: 1,
      step: 5,
      stepsPerEpoch: 5,
      totalSteps: 10,
      progressPercentage: 25, // 5 of 20 steps over both stages
      losses: { task: 0.5 }, // a NaN loss is left out: JSON has no NaN
      trainAccuracy: 0.7,
      samplesPerSecond: 1200,
    });
    // 100 ms per step since the first step this process saw: 15 steps left.
    expect(teacher.etaSeconds).toBe(2);
    doc.startStage("student", 2, 5);
    doc.step(step("student", 0, 1, { conflict: true }));
    doc.step(step("student", 1, 1, { conflict: false }));
    doc.epochEnd(epochEnd("student", 1, 5));
    doc.testAccuracy("student", 0.8);
    expect(TrainerProgress.parse(doc.document())).toMatchObject({
      stage: "student",
      step: 5,
      progressPercentage: 75,
      conflictRate: 0.5,
      studentAccuracy: 0.8,
    });
  });

  it("continues from the checkpoint's step after a resume, with an ETA from this process's steps only", () => {
    const { clock: c, advance } = clock();
    const doc = new ProgressDocument({ student: { epochs: 10, stepsPerEpoch: 10 } }, c);
    doc.startStage("student", 10, 10);
    advance(60_000); // loading, the teacher output cache: not steps
    doc.step(step("student", 40, 5)); // resumed at step 40
    expect(doc.document()).toMatchObject({ step: 41, epoch: 5, progressPercentage: 41, stages: ["student"] });
    expect(doc.document()!.etaSeconds).toBeUndefined(); // one step: no rate yet
    advance(500);
    doc.step(step("student", 41, 5));
    expect(doc.document()).toMatchObject({ step: 42, etaSeconds: 29 }); // 58 steps at 0.5 s
  });

  it("counts a teacher that was not trained here as done once the student starts", () => {
    const doc = new ProgressDocument(plan, clock().clock);
    doc.startStage("student", 2, 5);
    doc.step(step("student", 4, 1));
    expect(doc.document()!.progressPercentage).toBe(75);
  });

  it("serves JSON on its route, 503 before any stage has started", async () => {
    const doc = new ProgressDocument(plan, clock().clock);
    const server = createServer(doc.handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/progress`;
    try {
      expect((await fetch(url)).status).toBe(503);
      doc.startStage("teacher", 2, 5);
      doc.step(step("teacher", 0, 1));
      const res = await fetch(url);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(TrainerProgress.parse(await res.json()).step).toBe(1);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
