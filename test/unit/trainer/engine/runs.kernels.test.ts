// Whole runs (runJob) of the tiny job: every strategy with all three objectives, and reproducibility.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { strategyNames } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import type { GradientStrategy } from "../../../../trainer/src/contracts.ts";
import { loadDataset } from "../../../../trainer/src/data/index.ts";
import { runJob } from "../../../../trainer/src/engine/run.ts";
import { StopSignal, StoppedError } from "../../../../trainer/src/engine/stop.ts";
import { runStudentStage } from "../../../../trainer/src/engine/student-stage.ts";
import { buildNetwork } from "../../../../trainer/src/models/index.ts";
import { buildObjectives } from "../../../../trainer/src/objectives/index.ts";
import { TrainerMetrics } from "../../../../trainer/src/telemetry/metrics.ts";
import { backendUnderTest } from "../backend-under-test.ts";
import { ProgressDocument } from "../../../../trainer/src/telemetry/progress-document.ts";
import { TrainerProgress } from "../../../../api/v1alpha1/index.ts";
import { tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

const BACKEND = backendUnderTest("cpu");
const quiet = { info: () => {}, warn: () => {} };
let data: string;

beforeAll(async () => {
  await selectBackend(BACKEND, () => {});
  data = writeTinyIdx();
});

type Spec = Record<string, Record<string, unknown>>;

/** The tiny job with its spec sections overridden (shallow merge per section). */
function job(strategy: string, overrides: Spec = {}) {
  const out = mkdtempSync(join(tmpdir(), `mokd-${strategy}-`));
  const manifest = tinyJob(data, out, { epochs: 1, strategy });
  const spec = manifest.spec as Spec;
  for (const [section, fields] of Object.entries(overrides)) spec[section] = { ...spec[section], ...fields };
  return { config: parseConfig(manifest, "test", {}), output: join(out, "output") };
}

function records(output: string): Record<string, unknown>[] {
  return readFileSync(join(output, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const allObjectives = {
  task: { enabled: true },
  distillation: { enabled: true },
  feature: { enabled: true },
};

describe("engine: every strategy with task, distillation and feature objectives", () => {
  it.each(strategyNames)(
    "%s trains a few steps with finite telemetry for all three objectives",
    async (name) => {
      // 96 training samples at batch 32: three student steps.
      const { config, output } = job(name, { objectives: allObjectives, data: { maxTrainSamples: 96 } });
      const { summary } = await runJob({ config, backend: BACKEND, log: quiet });
      expect(summary.steps).toBe(3);
      const steps = records(output).filter((r) => r.type === "step" && r.stage === "student");
      expect(steps).toHaveLength(3);
      for (const r of steps) {
        for (const field of ["losses", "weights"] as const) {
          const values = r[field] as Record<string, unknown>;
          expect(Object.keys(values).sort(), field).toEqual(["distillation", "feature", "task"]);
          for (const v of Object.values(values))
            expect(Number.isFinite(v), `${field} ${String(v)}`).toBe(true);
        }
      }
      // Step 0 is measured by every strategy: three pairs of cosines and norm ratios (larger / smaller >= 1).
      const ratios = Object.values(steps[0]!.normRatios as Record<string, number>);
      expect(ratios).toHaveLength(3);
      for (const ratio of ratios) expect(ratio).toBeGreaterThanOrEqual(1);
    },
  );
});

describe("engine: the training recipe in a whole run", () => {
  it.each([
    [
      "momentum",
      {
        optimizer: "momentum",
        learningRate: 0.05,
        weightDecay: 5e-4,
        schedule: { name: "step", milestones: [1], warmupEpochs: 0.5 },
      },
    ],
    [
      "adamw",
      {
        optimizer: "adamw",
        learningRate: 0.01,
        weightDecay: 0.05,
        schedule: { name: "cosine", warmupEpochs: 0.5 },
      },
    ],
  ])("%s with weight decay and a schedule trains with finite losses", async (_, training) => {
    const { config, output } = job("mokd", {
      objectives: allObjectives,
      strategy: { projectorUpdate: "own" },
      training: { ...training, epochs: 2 },
      data: { maxTrainSamples: 96 },
    });
    const { summary } = await runJob({ config, backend: BACKEND, log: quiet });
    expect(summary.steps).toBe(6);
    const steps = records(output).filter((r) => r.type === "step" && r.stage === "student");
    for (const r of steps)
      for (const v of Object.values(r.losses as Record<string, number>))
        expect(Number.isFinite(v)).toBe(true);
  });
});

describe("engine: conflict rate of a single-backward strategy", () => {
  it("is conflicted / measured steps in the epoch record and the summary", async () => {
    const { config, output } = job("mokd-amortized", { objectives: allObjectives });
    const { summary } = await runJob({ config, backend: BACKEND, log: quiet, measureEvery: 2 });
    const all = records(output).filter((r) => r.stage === "student");
    const measured = all.filter((r) => r.type === "step" && r.conflict !== undefined);
    const conflicted = measured.filter((r) => r.conflict === true).length;
    expect(all.filter((r) => r.type === "step")).toHaveLength(7);
    expect(measured.map((r) => r.step)).toEqual([0, 2, 4, 6]);
    expect(summary.measuredSteps).toBe(4);
    // Some measured steps conflict (three objectives), so dividing by all 7 steps would give another rate.
    expect(conflicted).toBeGreaterThan(0);
    const epoch = all.find((r) => r.type === "epoch")!;
    expect(epoch.conflictRate).toBe(conflicted / 4);
    expect(summary.conflictRate).toBe(conflicted / 4);
  });
});

describe("engine: telemetry keyed by objective", () => {
  it("fails with a clear message when a strategy returns fewer weights than objectives", async () => {
    const { config } = job("mgda", { objectives: allObjectives, data: { maxTrainSamples: 64 } });
    const spec = config.spec;
    const dataset = await loadDataset(spec.data, 1);
    const teacher = buildNetwork(spec.teacher, dataset.inputShape, dataset.numClasses, 1);
    const student = buildNetwork(spec.student, dataset.inputShape, dataset.numClasses, 2);
    const dims = { studentFeatureDim: 8, teacherFeatureDim: 16, numClasses: dataset.numClasses };
    const built = buildObjectives(spec.objectives, dims, 3);
    // A broken strategy: two weights for three objectives (the shape of the old prom-client crash).
    const broken: GradientStrategy = {
      kind: "gradient",
      name: "mgda",
      combine: () => ({ coefficients: [0.5, 0.5, 0], weights: [0.5, 0.5] }),
      state: () => ({}),
      loadState: () => {},
    };
    const metrics = new TrainerMetrics("j", "n");
    const optimizer = tf.train.adam(0.01);
    const stage = runStudentStage({
      student,
      teacher,
      objectives: built.objectives,
      extraVariables: built.variables,
      strategy: broken,
      optimizer,
      dataset,
      epochs: 1,
      batchSize: 32,
      seed: 1,
      hooks: { onStep: (record, size) => metrics.step(record, size) },
    });
    await expect(stage).rejects.toThrow(
      "strategy weights: 2 values for 3 objectives (task, distillation, feature)",
    );
    optimizer.dispose();
    built.projector?.dispose();
  });
});

describe("engine: SIGTERM during the teacher stage", () => {
  it("checkpoints the teacher; the restarted run resumes it and ends as an uninterrupted run", async () => {
    // Two teacher epochs of 7 steps; stop after step 10 (mid-epoch 2).
    const overrides = { teacher: { epochs: 2, dropout: 0.2 } };
    const reference = job("mokd", overrides);
    const uninterrupted = await runJob({ config: reference.config, backend: BACKEND, log: quiet });

    const { config, output } = job("mokd", overrides);
    const stop = new StopSignal();
    let teacherSteps = 0;
    const hooks = {
      onStep: (r: { stage: string }) => {
        if (r.stage === "teacher" && ++teacherSteps === 10) stop.requested = true;
      },
    };
    const error = await runJob({ config, backend: BACKEND, log: quiet, stop, hooks }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoppedError);
    expect((error as StoppedError).checkpoint).toMatch(/teacher-progress\/ckpt-0+10$/);

    const logs: string[] = [];
    const log = { info: (m: string) => logs.push(m), warn: (m: string) => logs.push(m) };
    let document: ProgressDocument | undefined;
    const seen: TrainerProgress[] = [];
    const resumed = await runJob({
      config,
      backend: BACKEND,
      log,
      progress: (plan) => (document = new ProgressDocument(plan)),
      hooks: { onStep: () => seen.push(TrainerProgress.parse(document!.document())) },
    });
    expect(logs.join("\n")).toMatch(/teacher: resumed from .* at epoch 2, step 10/);
    // The progress document continues the global step after the resume: 11 of 14 teacher steps, not 1.
    expect(seen[0]).toMatchObject({ stage: "teacher", step: 11, epoch: 2, stepsPerEpoch: 7, totalSteps: 14 });
    expect(seen.at(-1)).toMatchObject({ stage: "student", progressPercentage: 100 });
    expect(resumed.summary.teacher.accuracy).toBe(uninterrupted.summary.teacher.accuracy);
    expect(resumed.summary.student.accuracy).toBe(uninterrupted.summary.student.accuracy);
    const teacherLosses = (dir: string) =>
      records(dir)
        .filter((r) => r.stage === "teacher" && r.type === "step")
        .map((r) => [r.step, r.losses]);
    // The resumed run's JSONL continues the interrupted one: together, the same steps and losses.
    expect(teacherLosses(output)).toEqual(teacherLosses(reference.output));
    expect(existsSync(join(dirname(output), "checkpoints", "teacher-progress"))).toBe(false);
  });
});

describe("engine: reproducibility", () => {
  it("two runs with the same seed and backend give identical accuracies and losses (dropout on)", async () => {
    const dropout = { dropout: 0.3 };
    const overrides = { teacher: dropout, student: dropout, objectives: allObjectives };
    const runs = await Promise.all([0, 1].map(() => job("mokd", overrides)));
    const results = [];
    for (const { config, output } of runs) {
      const { summary } = await runJob({ config, backend: BACKEND, log: quiet });
      const losses = records(output)
        .filter((r) => r.type === "step" || r.type === "epoch")
        .map((r) => [r.stage, r.step, r.losses]);
      results.push({
        teacher: summary.teacher.accuracy,
        student: summary.student.accuracy,
        validation: summary.epochs.map((e) => e.validationAccuracy),
        losses,
      });
    }
    expect(results[0]!.losses.length).toBeGreaterThan(10);
    expect(results[1]).toEqual(results[0]);
  });
});
