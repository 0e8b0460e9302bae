// spec.teacher.outputCache: the frozen teacher's outputs cached per training sample (trainer/src/engine/
// teacher-cache.ts). Same outputs as a forward, teacher forwards only for the fill, when it is (not) used, what it
// holds, no leaks, config, and whole runs with and without it.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { ConfigError, type TeacherOutputCacheMode } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import type { Batch, Dataset, Network } from "../../../../trainer/src/contracts.ts";
import { loadDataset } from "../../../../trainer/src/data/index.ts";
import { predict } from "../../../../trainer/src/engine/evaluate.ts";
import { specFingerprint } from "../../../../trainer/src/engine/fingerprint.ts";
import { runJob } from "../../../../trainer/src/engine/run.ts";
import { runStudentStage } from "../../../../trainer/src/engine/student-stage.ts";
import { StudentStep } from "../../../../trainer/src/engine/student-step.ts";
import {
  DEFAULT_CACHE_BUDGET_BYTES,
  planTeacherCache,
  TeacherOutputCache,
} from "../../../../trainer/src/engine/teacher-cache.ts";
import { buildNetwork } from "../../../../trainer/src/models/index.ts";
import { createStrategy } from "../../../../trainer/src/strategies/index.ts";
import { studentParts, tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

const BATCH = 32;
let data: string;
let dataset: Dataset;
let teacher: Network;

const specOf = (job: ReturnType<typeof tinyJob>) => parseConfig(job, "test", {}).spec;

beforeAll(async () => {
  await selectBackend("cpu", () => {});
  data = writeTinyIdx();
  const spec = specOf(tinyJob(data, "/tmp/unused"));
  dataset = await loadDataset(spec.data, 1);
  teacher = buildNetwork(spec.teacher, dataset.inputShape, dataset.numClasses, 1);
  teacher.model.trainable = false;
});

const shuffled = (epoch: number) =>
  dataset.train.batches({ batchSize: BATCH, shuffle: true, seed: 3, epoch, augment: true });
const disposeBatch = (b: Batch) => tf.dispose([b.xs, b.ys]);

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

describe("teacher output cache: contents", () => {
  it("gives up when a stop is requested during the fill, without leaking tensors", async () => {
    const before = tf.memory().numTensors;
    const stop = { requested: false };
    setImmediate(() => (stop.requested = true)); // arrives while the fill yields between forwards
    expect(await TeacherOutputCache.fill(teacher, dataset.train, true, 16, stop)).toBeUndefined();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("gives a shuffled batch the teacher's own logits and features, row by row", async () => {
    const cache = (await TeacherOutputCache.fill(teacher, dataset.train, true, 100))!;
    let rows = 0;
    for (const batch of shuffled(1)) {
      const cached = cache.outputs(batch);
      const [logits, features] = predict(teacher, batch.xs);
      expect(maxAbsDiff(cached.teacherLogits, logits)).toBeLessThan(1e-5);
      expect(maxAbsDiff(cached.teacherFeatures!, features)).toBeLessThan(1e-5);
      rows += batch.indices.length;
      tf.dispose([cached.teacherLogits, cached.teacherFeatures!, logits, features]);
      disposeBatch(batch);
    }
    expect(rows).toBe(dataset.train.size);
  });

  it("holds logits only unless asked for features: samples x (classes [+ features]) x 4 bytes", async () => {
    const logitsOnly = (await TeacherOutputCache.fill(teacher, dataset.train, false, 64))!;
    const both = (await TeacherOutputCache.fill(teacher, dataset.train, true, 64))!;
    expect(logitsOnly.bytes).toBe(dataset.train.size * dataset.numClasses * 4);
    expect(both.bytes).toBe(dataset.train.size * (dataset.numClasses + teacher.featureDim) * 4);
    const [batch] = shuffled(0);
    const outputs = logitsOnly.outputs(batch!);
    expect(outputs.teacherFeatures).toBeUndefined();
    expect(outputs.teacherLogits.shape).toEqual([BATCH, dataset.numClasses]);
    tf.dispose([outputs.teacherLogits, batch!.xs, batch!.ys]);
  });

  it("leaks no tensors (fill, lookups)", async () => {
    const before = tf.memory().numTensors;
    const cache = (await TeacherOutputCache.fill(teacher, dataset.train, true, 64))!;
    for (const batch of shuffled(2)) {
      tf.dispose(cache.outputs(batch));
      disposeBatch(batch);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("teacher output cache: the plan", () => {
  const base = {
    mode: "auto" as TeacherOutputCacheMode,
    samples: 54_000,
    numClasses: 10,
    teacherFeatureDim: 64,
    needsFeatures: false,
    augmented: false,
  };

  it("caches with auto and no augmentation, features only when an objective reads them", () => {
    expect(planTeacherCache(base)).toMatchObject({ use: true, withFeatures: false, bytes: 54_000 * 10 * 4 });
    const withFeatures = planTeacherCache({ ...base, needsFeatures: true });
    expect(withFeatures).toMatchObject({ use: true, withFeatures: true, bytes: 54_000 * 74 * 4 });
  });

  it("does not cache with off, with augmentation, or over the 256 MiB budget", () => {
    expect(planTeacherCache({ ...base, mode: "off" }).use).toBe(false);
    expect(planTeacherCache({ ...base, augmented: true }).use).toBe(false);
    expect(DEFAULT_CACHE_BUDGET_BYTES).toBe(256 * 1024 * 1024);
    // 8192 rows of (10 + 8182) floats are exactly the budget; one more row is over.
    const atBudget = { ...base, samples: 8192, teacherFeatureDim: 8182, needsFeatures: true };
    expect(planTeacherCache(atBudget)).toMatchObject({ use: true, bytes: DEFAULT_CACHE_BUDGET_BYTES });
    const over = planTeacherCache({ ...atBudget, samples: 8193 });
    expect(over.use).toBe(false);
    expect(over.reason).toMatch(/exceed the 256\.0 MiB budget/);
  });
});

describe("teacher output cache: the student stage", () => {
  /** One student epoch; counts the teacher's predict calls and keeps the stage's log. */
  async function studentEpoch(mode: TeacherOutputCacheMode, over: { feature?: boolean; augment?: boolean }) {
    const spec = specOf(tinyJob(data, "/tmp/unused"));
    spec.data.augmentation.horizontalFlip = over.augment ?? false;
    spec.objectives.feature.enabled = over.feature ?? false;
    const split = over.augment ? await loadDataset(spec.data, 1) : dataset;
    const { student, built, optimizer } = studentParts(spec, split, teacher.featureDim);
    const forwards = vi.spyOn(teacher.model, "predict");
    const log: string[] = [];
    try {
      await runStudentStage({
        student,
        teacher,
        objectives: built.objectives,
        extraVariables: built.variables,
        strategy: createStrategy(
          spec.strategy,
          built.objectives.map((o) => o.name),
        ),
        optimizer,
        dataset: split,
        epochs: 1,
        batchSize: BATCH,
        seed: 1,
        teacherOutputCache: mode,
        hooks: {},
        log: (m) => log.push(m),
      });
      return { teacherForwards: forwards.mock.calls.length, log: log.join("\n") };
    } finally {
      forwards.mockRestore();
      optimizer.dispose();
      built.projector?.dispose();
      student.model.dispose();
    }
  }

  const steps = () => Math.ceil(dataset.train.size / BATCH);

  it("auto without augmentation: the teacher predicts for the fill only, never per step", async () => {
    const { teacherForwards, log } = await studentEpoch("auto", {});
    expect(teacherForwards).toBe(Math.ceil(dataset.train.size / (BATCH * 4)));
    expect(teacherForwards).toBeLessThan(steps());
    expect(log).toMatch(/teacher output cache: logits of 224 samples, 0\.0 MiB, filled by one teacher pass/);
  });

  it("caches the features too when the feature objective is enabled", async () => {
    const { log } = await studentEpoch("auto", { feature: true });
    expect(log).toMatch(/teacher output cache: logits and features of 224 samples/);
  });

  it.each([
    ["off", "off", {}, /teacher\.outputCache is off/],
    ["augmentation on", "auto", { augment: true }, /training augmentation is on/],
  ] as const)("%s: the teacher runs on every batch", async (_, mode, over, reason) => {
    const { teacherForwards, log } = await studentEpoch(mode, over);
    expect(teacherForwards).toBe(steps());
    expect(log).toMatch(reason);
    expect(log).toMatch(/the teacher runs on every batch/);
  });

  it("a step with the cache leaks no tensors", async () => {
    const spec = specOf(tinyJob(data, "/tmp/unused"));
    spec.objectives.feature.enabled = true;
    const { student, built, optimizer } = studentParts(spec, dataset, teacher.featureDim);
    const step = new StudentStep({
      student,
      teacher,
      objectives: built.objectives,
      extraVariables: built.variables,
      strategy: createStrategy({ ...spec.strategy, name: "mokd-amortized" }, [
        "task",
        "distillation",
        "feature",
      ]),
      optimizer,
      measureEvery: 2,
      teacherOutputs: (await TeacherOutputCache.fill(teacher, dataset.train, true, 64))!,
    });
    const batches = [...shuffled(0)];
    step.run(batches[0]!, { step: 0, random: Math.random }); // creates the optimiser's slots
    const before = tf.memory().numTensors;
    batches.slice(1, 5).forEach((b, i) => step.run(b, { step: i + 1, random: Math.random }));
    expect(tf.memory().numTensors).toBe(before);
    batches.forEach(disposeBatch);
    optimizer.dispose();
    built.projector?.dispose();
    student.model.dispose();
  });
});

describe("teacher output cache: whole runs", () => {
  it("reaches exactly the accuracies and losses of a run with the teacher forward per step", async () => {
    const run = async (outputCache: TeacherOutputCacheMode) => {
      const out = mkdtempSync(join(tmpdir(), "mokd-cache-"));
      const job = tinyJob(data, out);
      const spec = { ...job.spec, teacher: { ...job.spec.teacher, outputCache } };
      const log: string[] = [];
      const result = await runJob({
        config: parseConfig({ ...job, spec }, "test", {}),
        backend: "cpu",
        log: { info: (m) => log.push(m), warn: () => {} },
      });
      return { summary: result.summary, log: log.join("\n") };
    };
    const cached = await run("auto");
    const live = await run("off");
    expect(cached.log).toMatch(/teacher output cache: logits of/);
    expect(live.log).toMatch(/teacher output cache: not used/);
    // On the cpu backend a row's teacher outputs do not depend on the other rows of its batch, so the cached
    // outputs are the forward's bit for bit and the two runs are identical.
    expect(cached.summary.student.accuracy).toBe(live.summary.student.accuracy);
    expect(cached.summary.epochs.map((e) => e.losses)).toEqual(live.summary.epochs.map((e) => e.losses));
  });
});

describe("spec.teacher.outputCache (config)", () => {
  it("defaults to auto, accepts off and names a bad value", () => {
    expect(parseConfig({}, "t", {}).spec.teacher.outputCache).toBe("auto");
    expect(parseConfig({ teacher: { outputCache: "off" } }, "t", {}).spec.teacher.outputCache).toBe("off");
    try {
      parseConfig({ teacher: { outputCache: "always" } }, "t", {});
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).errors.map((e) => e.field)).toEqual(["spec.teacher.outputCache"]);
    }
  });

  it("is not part of the spec fingerprint: checkpoints resume under either setting", () => {
    const auto = parseConfig({}, "t", {}).spec;
    const off = parseConfig({ teacher: { outputCache: "off" } }, "t", {}).spec;
    expect(specFingerprint(off)).toBe(specFingerprint(auto));
    const { outputCache: _, ...teacherBefore } = auto.teacher; // a spec from before the field
    expect(specFingerprint({ ...auto, teacher: teacherBefore as typeof auto.teacher })).toBe(
      specFingerprint(auto),
    );
    const wider = parseConfig({ teacher: { width: 64 } }, "t", {}).spec;
    expect(specFingerprint(wider)).not.toBe(specFingerprint(auto));
  });
});
