// The student's training recipe (spec.training: optimizer, weightDecay, schedule) against hand-computed values,
// and the loss-recipe options (DKD's warm-up as a fraction of training, DIST's recipes by name).
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { ObjectivesSpec, parseTrainerSpec, TrainingSpec } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { specFingerprint } from "../../../../trainer/src/engine/fingerprint.ts";
import { createOptimizer } from "../../../../trainer/src/engine/optimizer.ts";
import { RecipeOptimizer } from "../../../../trainer/src/engine/recipe-optimizer.ts";
import { learningRateAt } from "../../../../trainer/src/engine/schedule.ts";
import { distillationObjective, distOptions, dkdWarmup } from "../../../../trainer/src/objectives/index.ts";

beforeAll(async () => {
  await selectBackend("cpu", () => {});
});

const training = (value: Record<string, unknown>) => TrainingSpec.parse(value);
const schedule = (value: Record<string, unknown>) => training({ schedule: value }).schedule;

describe("learning-rate schedule", () => {
  const shape = { learningRate: 0.1, stepsPerEpoch: 10, totalSteps: 50 };

  it("warms up linearly over round(warmupEpochs x steps per epoch) steps, then holds", () => {
    const s = schedule({ warmupEpochs: 0.4 }); // 4 steps
    const lrs = [0, 1, 2, 3, 4, 49].map((t) => learningRateAt(s, shape, t));
    [0.025, 0.05, 0.075, 0.1, 0.1, 0.1].forEach((v, i) => expect(lrs[i]).toBeCloseTo(v, 12));
  });

  it("cosine: from the peak to minLearningRate at the last step", () => {
    const s = schedule({ name: "cosine", minLearningRate: 0.02 });
    const five = { learningRate: 1, stepsPerEpoch: 5, totalSteps: 5 };
    // lr_t = 0.02 + 0.98 (1 + cos(pi t / 4)) / 2
    const expected = [
      1,
      0.02 + (0.98 * (1 + Math.SQRT1_2)) / 2,
      0.51,
      0.02 + (0.98 * (1 - Math.SQRT1_2)) / 2,
      0.02,
    ];
    expected.forEach((v, t) => expect(learningRateAt(s, { ...five, learningRate: 1 }, t)).toBeCloseTo(v, 12));
  });

  it("cosine after a warm-up starts at the peak on the first step after it", () => {
    const s = schedule({ name: "cosine", warmupEpochs: 1 });
    expect(learningRateAt(s, shape, 9)).toBeCloseTo(0.1, 12); // last warm-up step
    expect(learningRateAt(s, shape, 10)).toBeCloseTo(0.1, 12);
    expect(learningRateAt(s, shape, 49)).toBeCloseTo(0, 12);
  });

  it("step: gamma per milestone, counted on completed epochs (MultiStepLR stepped per epoch)", () => {
    const s = schedule({ name: "step", milestones: [2, 3], gamma: 0.1 });
    expect(learningRateAt(s, shape, 19)).toBeCloseTo(0.1, 12); // still epoch 2
    expect(learningRateAt(s, shape, 20)).toBeCloseTo(0.01, 12); // after 2 epochs
    expect(learningRateAt(s, shape, 30)).toBeCloseTo(0.001, 12);
  });
});

/** One variable, given values; applies `steps` gradients and returns the values after each step. */
function run(optimizer: tf.Optimizer, x0: number[], grads: number[][]): number[][] {
  const v = tf.variable(tf.tensor1d(x0), true, `recipe${counter++}`);
  const out = grads.map((g) => {
    tf.tidy(() => optimizer.applyGradients([{ name: v.name, tensor: tf.tensor1d(g) }]));
    return Array.from(v.dataSync());
  });
  v.dispose();
  optimizer.dispose();
  return out;
}
let counter = 0;

function expectClose(actual: number[][], expected: number[][]): void {
  expected.forEach((row, i) => row.forEach((x, j) => expect(actual[i]![j]).toBeCloseTo(x, 5)));
}

describe("optimisers with weight decay", () => {
  it("sgd: L2 added to the gradient, x - lr (g + wd x)", () => {
    const opt = createOptimizer(training({ optimizer: "sgd", learningRate: 0.1, weightDecay: 0.01 }), false);
    // [1 - 0.1 (0.5 + 0.01), -2 - 0.1 (0.5 - 0.02)]
    expectClose(run(opt, [1, -2], [[0.5, 0.5]]), [[0.949, -2.048]]);
  });

  it("momentum 0.9 with weight decay: v = 0.9 v + (g + wd x), x -= lr v, over two steps", () => {
    const opt = createOptimizer(
      training({ optimizer: "momentum", momentum: 0.9, learningRate: 0.1, weightDecay: 0.1 }),
      false,
    );
    // step 1: g' = 1 + 0.1 * 2 = 1.2, v = 1.2, x = 2 - 0.12 = 1.88
    // step 2: g' = 1 + 0.188 = 1.188, v = 1.08 + 1.188 = 2.268, x = 1.88 - 0.2268 = 1.6532
    expectClose(run(opt, [2], [[1], [1]]), [[1.88], [1.6532]]);
  });

  it("adamw decays decoupled, adam couples the decay into the moments: different first steps", () => {
    // Adam's first step is lr * g / (|g| + eps), i.e. lr * sign(g).
    const adamw = createOptimizer(
      training({ optimizer: "adamw", learningRate: 0.1, weightDecay: 0.5 }),
      false,
    );
    // x (1 - 0.1 * 0.5) - 0.1 sign(g): [0.95 - 0.1, -1.9 + 0.1]
    expectClose(run(adamw, [1, -2], [[0.5, -0.25]]), [[0.85, -1.8]]);
    const adam = createOptimizer(training({ optimizer: "adam", learningRate: 0.1, weightDecay: 0.5 }), false);
    // g + 0.5 x = [1, -1.25]: x - 0.1 sign = [0.9, -1.9]
    expectClose(run(adam, [1, -2], [[0.5, -0.25]]), [[0.9, -1.9]]);
  });

  it("the schedule sets each step's learning rate, and a resumed optimiser continues it", async () => {
    const spec = training({ optimizer: "sgd", learningRate: 0.4, epochs: 2, schedule: { warmupEpochs: 1 } });
    // 2 steps per epoch: lr 0.2, 0.4, 0.4, 0.4 with gradient 1 each step.
    const opt = createOptimizer(spec, false, 2);
    // tf.Optimizer's Symbol.hasInstance is duck-typed: compare constructors, not instanceof.
    expect(opt.constructor).toBe(RecipeOptimizer);
    expectClose(run(opt, [0], [[1], [1], [1]]), [[-0.2], [-0.6], [-1.0]]);
    const first = createOptimizer(spec, false, 2);
    const v = tf.variable(tf.tensor1d([0]), true, `resume${counter++}`);
    tf.tidy(() => first.applyGradients([{ name: v.name, tensor: tf.ones([1]) }]));
    const saved = await first.getWeights();
    const resumed = createOptimizer(spec, false, 2) as RecipeOptimizer;
    await resumed.setWeights(saved);
    expect(resumed.currentLearningRate()).toBeCloseTo(0.4, 12);
    tf.dispose([v, ...saved.map((w) => w.tensor)]);
    first.dispose();
    resumed.dispose();
  });

  it("the defaults are the plain optimiser, unwrapped (no change for existing specs)", () => {
    const opt = createOptimizer(training({}), false);
    expect(opt.constructor).toBe(tf.AdamOptimizer);
    opt.dispose();
  });
});

describe("loss recipes", () => {
  it("DKD's warm-up as a fraction of the stage's steps replaces the epochs", () => {
    const fraction = { warmupEpochs: 20, warmupFraction: 0.1 };
    expect(dkdWarmup({ epoch: 1, progress: 0.05 }, fraction)).toBeCloseTo(0.5, 12);
    expect(dkdWarmup({ epoch: 1, progress: 0.5 }, fraction)).toBe(1);
    expect(dkdWarmup({ epoch: 2, progress: 0.5 }, { warmupEpochs: 20 })).toBeCloseTo(0.1, 12); // mdistiller's epochs
    expect(dkdWarmup({ epoch: 1, progress: 0.05 }, { warmupEpochs: 20, warmupFraction: 0 })).toBe(1);
  });

  it("DKD's warm-up in optimiser steps: (step + 1) / warmupSteps, whatever the epoch or run length", () => {
    const steps = { warmupEpochs: 20, warmupSteps: 8 };
    const at = (step: number) => dkdWarmup({ epoch: 1 + Math.floor(step / 3), progress: 0.01, step }, steps);
    expect([0, 1, 3, 6, 7, 8, 100].map(at)).toEqual([0.125, 0.25, 0.5, 0.875, 1, 1, 1]);
    expect(dkdWarmup({ epoch: 1, progress: 0.01, step: 0 }, { warmupEpochs: 20, warmupSteps: 0 })).toBe(1);
  });

  it("DKD's loss reaches the warm-up scale of its step through the objective (the trainer passes the step)", () => {
    const objectives = ObjectivesSpec.parse({ distillation: { loss: "dkd", dkd: { warmupSteps: 4 } } });
    const loss = distillationObjective(objectives.distillation).loss;
    const inputs = {
      studentLogits: tf.tensor2d([
        [1, 0.5, -1],
        [0.2, 0.1, 2],
      ]),
      teacherLogits: tf.tensor2d([
        [2, -1, 0],
        [0, 0.3, 1],
      ]),
      studentFeatures: tf.zeros([2, 1]) as tf.Tensor2D,
      labels: tf.tensor1d([0, 2], "int32"),
      epoch: 1,
      progress: 0.5,
    };
    const full = loss({ ...inputs, step: 3 }).arraySync();
    expect(full).toBeGreaterThan(0);
    expect(loss({ ...inputs, step: 0 }).arraySync()).toBeCloseTo(full / 4, 5);
    expect(loss({ ...inputs, step: 1 }).arraySync()).toBeCloseTo(full / 2, 5);
  });

  it("allows DKD's warm-up as a fraction or in steps, not both (the CRD's CEL rule has this zod twin)", () => {
    const dkd = (value: Record<string, unknown>) => ({
      objectives: { distillation: { loss: "dkd", dkd: value } },
    });
    expect(() => parseTrainerSpec(dkd({ warmupSteps: 100 }))).not.toThrow();
    expect(() => parseTrainerSpec(dkd({ warmupFraction: 0.1 }))).not.toThrow();
    expect(() => parseTrainerSpec(dkd({ warmupFraction: 0.1, warmupSteps: 100 }))).toThrow(
      /objectives\.distillation\.dkd\.warmupSteps.*warmupFraction or warmupSteps, not both/s,
    );
  });

  it("DIST's recipes by name; unset, the fields as given", () => {
    const fields = { beta: 3, gamma: 5, temperature: 7 };
    expect(distOptions({ ...fields, recipe: "cifar100" })).toEqual({ beta: 2, gamma: 2, temperature: 4 });
    // The authors' CE x 1 + DIST(beta = gamma = 1) x 2, the weight 2 folded into beta and gamma (dist.ts).
    expect(distOptions({ ...fields, recipe: "imagenet" })).toEqual({ beta: 2, gamma: 2, temperature: 1 });
    expect(distOptions(fields)).toEqual(fields);
  });
});

describe("recipe and checkpoints", () => {
  it("leaves the fingerprint of a spec without the recipe unchanged; a recipe changes it", () => {
    const base = specFingerprint(parseTrainerSpec({}));
    const explicit = { training: { weightDecay: 0, schedule: { name: "constant", gamma: 0.5 } } };
    expect(specFingerprint(parseTrainerSpec(explicit))).toBe(base);
    expect(specFingerprint(parseTrainerSpec({ training: { weightDecay: 5e-4 } }))).not.toBe(base);
    expect(specFingerprint(parseTrainerSpec({ training: { schedule: { name: "cosine" } } }))).not.toBe(base);
  });
});
