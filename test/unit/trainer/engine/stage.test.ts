// The stage runner (trainer/src/engine/stage.ts) through its two programs: the teacher stage with and without
// hooks, evaluation between epoch ends, and the best-validation weights as the stage's result.
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import type { Split } from "../../../../trainer/src/contracts.ts";
import { loadDataset, type LoadedDataset } from "../../../../trainer/src/data/index.ts";
import { evaluateAccuracy } from "../../../../trainer/src/engine/evaluate.ts";
import { midEpochEvaluationSteps } from "../../../../trainer/src/engine/stage.ts";
import { trainTeacher, type StageHooks } from "../../../../trainer/src/engine/teacher-stage.ts";
import { buildNetwork } from "../../../../trainer/src/models/index.ts";
import { writeTinyIdx } from "../../../fixtures/tiny-run.ts";

let dataset: LoadedDataset;
const arch = { architecture: "mlp" as const, width: 16, depth: 1, hiddenUnits: 16, dropout: 0 };
const settings = { epochs: 2, learningRate: 0.01, batchSize: 32, seed: 3 };

beforeAll(async () => {
  await selectBackend("cpu", () => {});
  const spec = {
    format: "idx" as const,
    path: writeTinyIdx(),
    splitSeed: 1,
    validationSplit: 0.125,
    normalization: "standardize" as const,
    augmentation: { randomCropPadding: 0, horizontalFlip: false },
  };
  dataset = await loadDataset(spec);
});

/**
 * The dataset with a training split that refuses more passes than `limit`: a loop that never advances its epoch
 * (the bug this guards against re-requested epoch 1's remaining batches, none, forever, without a step) then ends
 * with an error instead of spinning. Bounded by a pass counter, not by time.
 */
function boundedPasses(limit: number) {
  let passes = 0;
  const train: Split = {
    size: dataset.train.size,
    augments: dataset.train.augments,
    batches(options) {
      if (++passes > limit) throw new Error(`training split read ${passes} times for ${limit} epochs`);
      return dataset.train.batches(options);
    },
  };
  return { dataset: { ...dataset, train }, passes: () => passes };
}

describe("evaluations per epoch", () => {
  it("places exactly n per epoch, evenly, the last at the epoch end, for odd step counts too", () => {
    const mid = (steps: number, n: number) => [...midEpochEvaluationSteps(steps, n)];
    expect(mid(16, 2)).toEqual([8]);
    expect(mid(15, 2)).toEqual([8]); // was 7 and 14 (a stride of floor(15 / 2)): 3 evaluations
    expect(mid(5, 2)).toEqual([3]);
    expect(mid(10, 4)).toEqual([3, 5, 8]);
    expect(mid(7, 1)).toEqual([]);
    expect(mid(3, 7)).toEqual([1, 2]); // capped at one per step
  });
});

describe("stage runner: the teacher stage", () => {
  // 256 * (1 - 0.125) = 224 training samples at batch 32: 7 steps per epoch.
  const stepsPerEpoch = 7;

  it("finishes its epochs without an onEpoch hook (bench:quality trains its teacher so)", async () => {
    const teacher = buildNetwork(arch, dataset.inputShape, dataset.numClasses, 1);
    const bounded = boundedPasses(settings.epochs);
    let steps = 0;
    const result = await trainTeacher(teacher, bounded.dataset, settings, { onStep: () => steps++ });
    expect(bounded.passes()).toBe(settings.epochs);
    expect(steps).toBe(settings.epochs * stepsPerEpoch);
    expect(result.history.map((r) => r.epoch)).toEqual([1, 2]);
    teacher.model.dispose();
  });

  it("reports every epoch to onEpoch, and evaluates between epoch ends when asked", async () => {
    const teacher = buildNetwork(arch, dataset.inputShape, dataset.numClasses, 1);
    const epochs: number[] = [];
    const evaluations: number[] = [];
    const hooks: StageHooks = {
      onEpoch: (r) => epochs.push(r.epoch),
      onEvaluation: (r) => evaluations.push(r.step),
    };
    const bounded = boundedPasses(settings.epochs);
    const result = await trainTeacher(
      teacher,
      bounded.dataset,
      { ...settings, evaluationsPerEpoch: 3 },
      hooks,
    );
    expect(epochs).toEqual([1, 2]);
    // Exactly 3 per epoch of 7 steps: after round(7/3) = 2 and round(14/3) = 5 steps, and at the epoch end.
    expect(evaluations).toEqual([2, 5, 7, 9, 12, 14]);
    expect(result.evaluations.map((e) => e.step)).toEqual(evaluations);
    teacher.model.dispose();
  });

  it("returns the best evaluation's weights (default) or the last step's", async () => {
    const run = async (keep: "best-validation" | "last") => {
      const teacher = buildNetwork(arch, dataset.inputShape, dataset.numClasses, 1);
      const result = await trainTeacher(teacher, dataset, { ...settings, evaluationsPerEpoch: 7, keep }, {});
      const accuracy = evaluateAccuracy(teacher, dataset.validation, 64);
      const weights = teacher.model.weights.map((w) => Array.from(w.read().dataSync()));
      teacher.model.dispose();
      return { result, accuracy, weights };
    };
    const best = await run("best-validation");
    const last = await run("last");
    const accuracies = best.result.evaluations.map((e) => e.validationAccuracy);
    expect(best.result.best?.validationAccuracy).toBe(Math.max(...accuracies));
    expect(best.accuracy).toBe(best.result.best?.validationAccuracy);
    expect(last.accuracy).toBe(accuracies.at(-1));
    // Same seeds: the runs differ only in the weights kept.
    expect(last.result.evaluations).toEqual(best.result.evaluations);
    if (best.result.best!.step !== 2 * stepsPerEpoch) expect(best.weights).not.toEqual(last.weights);
  });
});
