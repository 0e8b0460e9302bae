// `spec.strategy.famo.observe`: same-batch (the reference: an extra forward after the step) vs next-batch (the
// next step's pre-step losses, no extra forward). Strategy, engine, state, config and fingerprint.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { ConfigError, type MokdAmortizedObserveMode } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import type { Batch, Dataset } from "../../../../trainer/src/contracts.ts";
import { loadDataset } from "../../../../trainer/src/data/index.ts";
import { specFingerprint } from "../../../../trainer/src/engine/fingerprint.ts";
import { runJob } from "../../../../trainer/src/engine/run.ts";
import { StopSignal, StoppedError } from "../../../../trainer/src/engine/stop.ts";
import { StudentStep } from "../../../../trainer/src/engine/student-step.ts";
import { buildNetwork } from "../../../../trainer/src/models/index.ts";
import { createStrategy, MokdAmortizedStrategy } from "../../../../trainer/src/strategies/index.ts";
import { studentParts, tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

const settings = (observe: MokdAmortizedObserveMode) => ({ learningRate: 0.025, weightDecay: 0.01, observe });

describe("mokd-amortized next-batch observation (strategy)", () => {
  it("observes (previous pre-step losses, current pre-step losses), nothing on the first step", () => {
    const famo = new MokdAmortizedStrategy(settings("next-batch"), 2);
    const observe = vi.spyOn(famo, "observe");
    famo.observePreStep([1, 1]);
    expect(observe).not.toHaveBeenCalled();
    expect(famo.state().t).toBe(0);
    famo.observePreStep([0.5, 0.9]);
    famo.observePreStep([0.4, 0.8]);
    expect(observe.mock.calls).toEqual([
      [
        [1, 1],
        [0.5, 0.9],
      ],
      [
        [0.5, 0.9],
        [0.4, 0.8],
      ],
    ]);
    // The same update as the reference told the same pairs.
    const reference = new MokdAmortizedStrategy(settings("same-batch"), 2);
    reference.observe([1, 1], [0.5, 0.9]);
    reference.observe([0.5, 0.9], [0.4, 0.8]);
    expect(famo.weights()).toEqual(reference.weights());
  });

  it("does not observe a step with a non-finite loss, nor pair across it", () => {
    const famo = new MokdAmortizedStrategy(settings("next-batch"), 2);
    famo.observePreStep([1, 1]);
    famo.observePreStep([NaN, 0.9]); // not observed, not kept
    expect(famo.state()).toMatchObject({ t: 0, pending: null });
    famo.observePreStep([0.5, 0.9]); // nothing to pair with
    expect(famo.state()).toMatchObject({ t: 0, pending: [0.5, 0.9] });
    famo.observePreStep([0.4, 0.8]);
    expect(famo.state().t).toBe(1);
  });

  it("keeps the pending losses in its state: a resumed strategy continues like the uninterrupted one", () => {
    const a = new MokdAmortizedStrategy(settings("next-batch"), 2);
    for (const losses of [
      [1, 1],
      [0.8, 0.95],
      [0.7, 0.9],
    ])
      a.observePreStep(losses);
    const saved = JSON.parse(JSON.stringify(a.state())) as unknown;
    expect(saved).toMatchObject({ t: 2, pending: [0.7, 0.9] });
    const b = new MokdAmortizedStrategy(settings("next-batch"), 2);
    b.loadState(saved);
    expect(b.state()).toEqual(a.state());
    a.observePreStep([0.6, 0.85]);
    b.observePreStep([0.6, 0.85]);
    expect(b.state()).toEqual(a.state());
    expect(b.state().t).toBe(3);
  });

  it("loads a checkpoint from before the field (no pending) and rejects a malformed pending", () => {
    const old = { logits: [0.1, -0.1], m: [0, 0], v: [0, 0], t: 4 };
    const famo = new MokdAmortizedStrategy(settings("next-batch"), 2);
    famo.loadState(old);
    expect(famo.state()).toEqual({ ...old, pending: null });
    famo.observePreStep([1, 1]); // first resumed step: nothing to pair with
    expect(famo.state().t).toBe(4);
    expect(() => famo.loadState({ ...old, pending: [1] })).toThrow(/invalid mokd-amortized state/);
    expect(() => famo.loadState({ ...old, pending: "x" })).toThrow(/invalid mokd-amortized state/);
  });

  it("is built from the spec with its mode; same-batch is the default", () => {
    const build = (famo: object) =>
      createStrategy(parseConfig({ strategy: { name: "mokd-amortized", famo } }, "t", {}).spec.strategy, [
        "task",
        "distillation",
      ]);
    expect(build({})).toMatchObject({ kind: "loss", observes: "same-batch" });
    expect(build({ observe: "next-batch" })).toMatchObject({ kind: "loss", observes: "next-batch" });
  });
});

describe("mokd-amortized observation through the engine's student step", () => {
  let dataset: Dataset;
  beforeAll(async () => {
    await selectBackend("cpu", () => {});
    const spec = parseConfig(tinyJob(writeTinyIdx(), "/tmp/unused"), "test", {}).spec;
    dataset = await loadDataset(spec.data, 1);
  });

  /** Four single-backward steps (step 0, a measured one, runs first), counting the student's forwards. */
  function runSteps(observe: MokdAmortizedObserveMode) {
    const spec = parseConfig(
      tinyJob("/unused", "/tmp/unused", { strategy: "mokd-amortized" }),
      "test",
      {},
    ).spec;
    spec.strategy.famo.observe = observe;
    const teacher = buildNetwork(spec.teacher, dataset.inputShape, dataset.numClasses, 1);
    const { student, built, optimizer } = studentParts(spec, dataset, teacher.featureDim);
    const strategy = createStrategy(spec.strategy, ["task", "distillation"]) as MokdAmortizedStrategy;
    const step = new StudentStep({
      student,
      teacher,
      objectives: built.objectives,
      extraVariables: built.variables,
      strategy,
      optimizer,
      measureEvery: 1000,
    });
    const batches = [
      ...dataset.train.batches({ batchSize: 32, shuffle: false, seed: 1, epoch: 0, augment: false }),
    ].slice(0, 5);
    const run = (b: Batch, i: number) => step.run(b, { step: i, random: Math.random });
    run(batches[0]!, 0);
    const forwards = vi.spyOn(student.model, "apply");
    const teacherForwards = vi.spyOn(teacher.model, "predict");
    const observed = vi.spyOn(strategy, "observe");
    const outcomes = batches.slice(1).map((b, i) => run(b, i + 1));
    const result = {
      forwardsPerStep: forwards.mock.calls.length / 4,
      teacherForwardsPerStep: teacherForwards.mock.calls.length / 4,
      observed: observed.mock.calls,
      outcomes,
    };
    for (const b of batches) tf.dispose([b.xs, b.ys]);
    optimizer.dispose();
    return result;
  }

  it("same-batch: one extra forward per step, observing the step's losses before and after on its batch", () => {
    const { forwardsPerStep, teacherForwardsPerStep, observed, outcomes } = runSteps("same-batch");
    expect(forwardsPerStep).toBe(2);
    expect(teacherForwardsPerStep).toBe(1); // the frozen teacher's outputs serve both
    expect(observed).toHaveLength(4);
    observed.forEach(([before], i) => expect(before).toEqual(outcomes[i]!.losses));
  });

  it("next-batch: no extra forward; observes (previous step's pre-step losses, this step's)", () => {
    const { forwardsPerStep, teacherForwardsPerStep, observed, outcomes } = runSteps("next-batch");
    expect(forwardsPerStep).toBe(1);
    expect(teacherForwardsPerStep).toBe(1);
    // Step 1 pairs with step 0 (not in outcomes); steps 2-4 with the outcomes before them.
    expect(observed).toHaveLength(4);
    expect(observed[0]![1]).toEqual(outcomes[0]!.losses);
    for (let i = 1; i < 4; i++) expect(observed[i]).toEqual([outcomes[i - 1]!.losses, outcomes[i]!.losses]);
  });
});

describe("mokd-amortized next-batch across a stop and resume (whole runs)", () => {
  const quiet = { info: () => {}, warn: () => {} };
  let data: string;
  beforeAll(async () => {
    await selectBackend("cpu", () => {});
    data = writeTinyIdx();
  });

  function nextBatchJob() {
    const out = mkdtempSync(join(tmpdir(), "mokd-famo-next-"));
    const manifest = tinyJob(data, out, { epochs: 2, strategy: "mokd-amortized" });
    manifest.spec.strategy = {
      ...manifest.spec.strategy,
      famo: { observe: "next-batch" },
    } as typeof manifest.spec.strategy;
    return { config: parseConfig(manifest, "test", {}), output: join(out, "output") };
  }
  const studentWeights = (output: string) =>
    readFileSync(join(output, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; stage: string; step: number; weights: unknown })
      .filter((r) => r.type === "step" && r.stage === "student")
      .map((r) => [r.step, r.weights]);

  it("a resumed run pairs the checkpointed pre-step losses and ends as an uninterrupted one", async () => {
    const reference = nextBatchJob();
    const uninterrupted = await runJob({ config: reference.config, backend: "cpu", log: quiet });

    const { config, output } = nextBatchJob();
    const stop = new StopSignal();
    let studentSteps = 0;
    const hooks = {
      onStep: (r: { stage: string }) => {
        if (r.stage === "student" && ++studentSteps === 3) stop.requested = true; // mid-epoch 1
      },
    };
    const error = await runJob({ config, backend: "cpu", log: quiet, stop, hooks }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoppedError);
    const resumed = await runJob({ config, backend: "cpu", log: quiet });
    // FAMO's weights of every step (the JSONL continues across the restart) and the final accuracy agree.
    const weights = studentWeights(output);
    expect(weights.length).toBeGreaterThan(6);
    expect(weights).toEqual(studentWeights(reference.output));
    expect(resumed.summary.student.accuracy).toBe(uninterrupted.summary.student.accuracy);
  });
});

describe("spec.strategy.famo.observe (config)", () => {
  it("defaults to same-batch, accepts next-batch and names a bad value", () => {
    expect(parseConfig({}, "t", {}).spec.strategy.famo.observe).toBe("same-batch");
    const next = parseConfig({ strategy: { famo: { observe: "next-batch" } } }, "t", {});
    expect(next.spec.strategy.famo.observe).toBe("next-batch");
    try {
      parseConfig({ strategy: { famo: { observe: "sometimes" } } }, "t", {});
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).errors.map((e) => e.field)).toEqual(["spec.strategy.famo.observe"]);
    }
  });

  it("leaves the spec fingerprint of same-batch specs as it was before the field (checkpoints stay valid)", () => {
    const spec = parseConfig({ strategy: { name: "mokd-amortized" } }, "t", {}).spec;
    const { observe: _, ...famoBefore } = spec.strategy.famo;
    const before = { ...spec, strategy: { ...spec.strategy, famo: famoBefore } } as typeof spec;
    expect(specFingerprint(spec)).toBe(specFingerprint(before));
    const next = {
      ...spec,
      strategy: { ...spec.strategy, famo: { ...spec.strategy.famo, observe: "next-batch" } },
    };
    expect(specFingerprint(next as typeof spec)).not.toBe(specFingerprint(spec));
  });
});
