// A step whose losses or gradients are not finite is skipped, not applied, and counted: one NaN in
// an update makes every weight NaN from then on. Real student steps on the tiny dataset, on cpu.
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { TrainerMetric } from "../../../../api/metrics.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import type { Batch, Objective, StepRecord } from "../../../../trainer/src/contracts.ts";
import { loadDataset } from "../../../../trainer/src/data/index.ts";
import { runStudentStage } from "../../../../trainer/src/engine/student-stage.ts";
import { StudentStep } from "../../../../trainer/src/engine/student-step.ts";
import { buildNetwork } from "../../../../trainer/src/models/index.ts";
import { createStrategy } from "../../../../trainer/src/strategies/index.ts";
import { TrainerMetrics } from "../../../../trainer/src/telemetry/metrics.ts";
import { studentParts, tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

let data: string;
beforeAll(async () => {
  await selectBackend("cpu", () => {});
  data = writeTinyIdx();
});

/** Wraps an objective so that its loss is multiplied by `poison()` (1 normally, NaN or Infinity to break it). */
function poisoned(objective: Objective, poison: () => number): Objective {
  return { name: objective.name, loss: (i) => tf.mul(objective.loss(i), poison()) };
}

async function setup(strategyName: string, measureEvery = 1) {
  const spec = parseConfig(tinyJob(data, "/tmp/unused", { strategy: strategyName }), "test", {}).spec;
  const dataset = await loadDataset(spec.data, 1);
  const teacher = buildNetwork(spec.teacher, dataset.inputShape, dataset.numClasses, 1);
  teacher.model.trainable = false;
  const { student, built, optimizer } = studentParts(spec, dataset, teacher.featureDim);
  let factor = 1;
  const objectives = built.objectives.map((o, i) => (i === 1 ? poisoned(o, () => factor) : o));
  const step = new StudentStep({
    student,
    teacher,
    objectives,
    extraVariables: built.variables,
    strategy: createStrategy(spec.strategy, ["task", "distillation"]),
    optimizer,
    measureEvery,
  });
  const batches: Batch[] = [
    ...dataset.train.batches({ batchSize: 32, shuffle: false, seed: 1, epoch: 0, augment: false }),
  ];
  const weights = () => student.model.trainableWeights.map((w) => Array.from(w.read().dataSync()));
  return {
    step,
    batches,
    weights,
    setFactor: (f: number) => (factor = f),
    parts: { spec, dataset, teacher, student, built, objectives, optimizer },
  };
}

describe("non-finite student steps", () => {
  it.each([
    ["mokd", 1],
    ["sum", 1],
    ["sum", 1000],
    ["mokd-amortized", 1000],
  ] as const)("are skipped and flagged (%s, measureEvery %d)", async (name, measureEvery) => {
    const { step, batches, weights, setFactor } = await setup(name, measureEvery);
    step.run(batches[0]!, { step: 1, random: Math.random }); // a finite step creates the optimiser's slots
    for (const bad of [NaN, Infinity]) {
      setFactor(bad);
      const before = weights();
      const outcome = step.run(batches[1]!, { step: 1, random: Math.random });
      expect(outcome.nonFinite).toBe(true);
      expect(weights()).toEqual(before);
    }
    setFactor(1);
    const before = weights();
    const outcome = step.run(batches[2]!, { step: 1, random: Math.random });
    expect(outcome.nonFinite).toBeFalsy();
    const after = weights();
    expect(after).not.toEqual(before);
    expect(after.flat().every(Number.isFinite)).toBe(true);
  });
});

describe("the non-finite step counter", () => {
  it("counts flagged steps and leaves the loss gauges at the last finite values", async () => {
    const m = new TrainerMetrics("j", "n");
    const record = (losses: Record<string, number>, nonFinite?: true): StepRecord => ({
      type: "step",
      stage: "student",
      epoch: 1,
      step: 0,
      losses,
      weights: { task: 0.5, distillation: 0.5 },
      seconds: 0.01,
      ...(nonFinite ? { nonFinite } : {}),
    });
    m.step(record({ task: 0.7, distillation: 0.2 }), 32);
    m.step(record({ task: NaN, distillation: 0.2 }, true), 32);
    m.step(record({ task: NaN, distillation: NaN }, true), 32);
    const text = await m.registry.metrics();
    expect(text).toMatch(new RegExp(`^${TrainerMetric.nonFiniteSteps}\\{[^}]*\\} 2$`, "m"));
    expect(text).toMatch(new RegExp(`^${TrainerMetric.loss}\\{[^}]*objective="task"[^}]*\\} 0.7$`, "m"));
  });
});

describe("the student stage", () => {
  it("counts skipped steps, keeps their losses out of the epoch means and trains on", async () => {
    const { parts, setFactor } = await setup("mokd");
    const { spec, dataset, teacher, student, built, objectives, optimizer } = parts;
    const records: StepRecord[] = [];
    let calls = 0;
    // Every third distillation loss is NaN.
    const flaky = objectives.map((o, i) =>
      i === 1
        ? {
            name: o.name,
            loss: (x: Parameters<Objective["loss"]>[0]) => (setFactor(++calls % 3 ? 1 : NaN), o.loss(x)),
          }
        : o,
    );
    const result = await runStudentStage({
      student,
      teacher,
      objectives: flaky,
      extraVariables: built.variables,
      strategy: createStrategy(spec.strategy, ["task", "distillation"]),
      optimizer,
      dataset,
      epochs: 1,
      batchSize: 32,
      seed: 3,
      hooks: { onStep: (r) => records.push(r) },
    });
    const flagged = records.filter((r) => r.nonFinite).length;
    expect(flagged).toBe(Math.floor(records.length / 3));
    expect(result.nonFiniteSteps).toBe(flagged);
    expect(Object.values(result.history[0]!.losses).every(Number.isFinite)).toBe(true);
    expect(
      student.model.trainableWeights.every((w) => Array.from(w.read().dataSync()).every(Number.isFinite)),
    ).toBe(true);
  });
});
