import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { Result } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import type { Batch } from "../../../../trainer/src/contracts.ts";
import { loadDataset } from "../../../../trainer/src/data/index.ts";
import { runJob, type RunOptions } from "../../../../trainer/src/engine/run.ts";
import { StopSignal, StoppedError } from "../../../../trainer/src/engine/stop.ts";
import { StudentStep } from "../../../../trainer/src/engine/student-step.ts";
import { buildNetwork } from "../../../../trainer/src/models/index.ts";
import { createStrategy } from "../../../../trainer/src/strategies/index.ts";
import { studentParts, TINY_TRAIN, tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

const quiet = { info: () => {}, warn: () => {} };
let data: string;

beforeAll(async () => {
  await selectBackend("cpu", () => {});
  data = writeTinyIdx();
});

function options(out: string, extra: Partial<RunOptions> = {}, epochs = 2): RunOptions {
  return {
    config: parseConfig(tinyJob(data, out, { epochs }), "test", {}),
    backend: "cpu",
    log: quiet,
    ...extra,
  };
}

const stepsPerEpoch = Math.ceil((TINY_TRAIN * 0.875) / 32);

describe("engine: a tiny end-to-end run", () => {
  it("trains teacher and student and writes model, summary, JSONL and termination message", async () => {
    const out = mkdtempSync(join(tmpdir(), "mokd-run-"));
    const terminationLog = join(out, "termination-log");
    const { summary } = await runJob(options(out, { terminationLog }));
    const output = join(out, "output");
    expect(existsSync(join(output, "student", "model.json"))).toBe(true);
    expect(existsSync(join(output, "teacher", "model.json"))).toBe(true);
    const written = JSON.parse(readFileSync(join(output, "summary.json"), "utf8"));
    expect(written.strategy).toBe("mokd");
    expect(written.steps).toBe(2 * stepsPerEpoch);
    expect(written.epochs).toHaveLength(2);
    // The synthetic classes are trivially separable: far above chance (0.25).
    expect(summary.teacher.accuracy).toBeGreaterThan(0.6);
    expect(summary.student.accuracy).toBeGreaterThan(0.6);
    const records = readFileSync(join(output, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const studentSteps = records.filter((r) => r.type === "step" && r.stage === "student");
    expect(studentSteps).toHaveLength(2 * stepsPerEpoch);
    // mokd is a gradient strategy: every step has gradient telemetry.
    expect(studentSteps.every((r) => typeof r.cosines["task:distillation"] === "number")).toBe(true);
    expect(records.filter((r) => r.type === "epoch" && r.stage === "student")).toHaveLength(2);
    const termination = JSON.parse(readFileSync(terminationLog, "utf8"));
    expect(Result.strict().parse(termination).studentAccuracy).toBeCloseTo(summary.student.accuracy, 3);
  });

  it("stops at a step boundary with a checkpoint, and a resumed run reaches the same step count", async () => {
    const out = mkdtempSync(join(tmpdir(), "mokd-resume-"));
    const stop = new StopSignal();
    let studentSteps = 0;
    const hooks = {
      onStep: (r: { stage: string }) => {
        if (r.stage === "student" && ++studentSteps === stepsPerEpoch + 3) stop.requested = true;
      },
    };
    const first = runJob(options(out, { stop, hooks }));
    const error: unknown = await first.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoppedError);
    expect((error as StoppedError).checkpoint).toMatch(/ckpt-0+10$/);

    const logs: string[] = [];
    const { summary } = await runJob(
      options(out, { log: { info: (m) => logs.push(m), warn: (m) => logs.push(m) } }),
    );
    expect(logs.join("\n")).toMatch(/resumed from .* at epoch 2, step 10/);
    expect(logs.join("\n")).toMatch(/teacher: reusing/);
    expect(summary.steps).toBe(2 * stepsPerEpoch);
    expect(summary.epochs.map((e) => e.epoch)).toEqual([1, 2]);
  });

  it("skips a corrupt latest checkpoint with a log line", async () => {
    const out = mkdtempSync(join(tmpdir(), "mokd-corrupt-"));
    await runJob(options(out, {}, 1));
    const ckpts = join(out, "checkpoints");
    const { listCheckpoints } = await import("../../../../trainer/src/checkpoint/index.ts");
    const latest = listCheckpoints(ckpts)[0]!;
    writeFileSync(join(latest, "state.json"), "{}");
    const logs: string[] = [];
    await runJob(options(out, { log: { info: (m) => logs.push(m), warn: (m) => logs.push(m) } }, 1));
    expect(logs.join("\n")).toMatch(/skipping corrupt checkpoint .*sha256 mismatch in state.json/);
  });
});

describe("engine: checkpoints of another spec", () => {
  it("are removed with a warning instead of being resumed", async () => {
    const out = mkdtempSync(join(tmpdir(), "mokd-respec-"));
    await runJob(options(out, {}, 1));
    const logs: string[] = [];
    const log = { info: (m: string) => logs.push(m), warn: (m: string) => logs.push(m) };
    const { summary } = await runJob(options(out, { log }, 2));
    expect(logs.join("\n")).toMatch(/different spec: removing them and starting fresh/);
    expect(logs.join("\n")).not.toMatch(/resumed from/);
    expect(summary.steps).toBe(2 * stepsPerEpoch);
  });
});

describe("engine: student step", () => {
  it.each(["mokd", "sum", "mokd-amortized", "pcgrad"])("does not leak tensors (%s)", async (name) => {
    const spec = parseConfig(tinyJob(data, "/tmp/unused", { strategy: name }), "test", {}).spec;
    spec.objectives.feature.enabled = true;
    const dataset = await loadDataset(spec.data, 1);
    const teacher = buildNetwork(spec.teacher, dataset.inputShape, dataset.numClasses, 1);
    teacher.model.trainable = false;
    const { student, built, optimizer } = studentParts(spec, dataset, teacher.featureDim);
    const step = new StudentStep({
      student,
      teacher,
      objectives: built.objectives,
      extraVariables: built.variables,
      strategy: createStrategy(spec.strategy, ["task", "distillation", "feature"]),
      optimizer,
      gradClipNorm: 1,
      measureEvery: 2,
    });
    const batches = [
      ...dataset.train.batches({ batchSize: 32, shuffle: false, seed: 1, epoch: 0, augment: false }),
    ];
    const run = (b: Batch, i: number) => step.run(b, { step: i, random: Math.random });
    run(batches[0]!, 0); // creates the optimiser's slots
    run(batches[1]!, 1);
    const before = tf.memory().numTensors;
    const outcomes = batches.slice(2, 6).map((b, i) => run(b, i + 2));
    expect(tf.memory().numTensors).toBe(before);
    expect(outcomes[0]!.losses).toHaveLength(3);
    // Single-backward strategies measure gradients on every 2nd step only; gradient strategies always.
    const measured = outcomes.map((o) => o.pairs !== undefined);
    expect(measured).toEqual(
      name === "sum" || name === "mokd-amortized" ? [true, false, true, false] : [true, true, true, true],
    );
    optimizer.dispose();
  });
});
