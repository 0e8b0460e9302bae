// strategy.projectorUpdate: `own` gives the adaptation module the feature loss's unweighted gradient (LibMTL's
// task-specific parameters), on both step paths; `weighted` (the default) scales it with the feature coefficient.
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { StrategySpec } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import type { Batch } from "../../../../trainer/src/contracts.ts";
import { loadDataset } from "../../../../trainer/src/data/index.ts";
import { StudentStep } from "../../../../trainer/src/engine/student-step.ts";
import { buildNetwork } from "../../../../trainer/src/models/index.ts";
import { createStrategy } from "../../../../trainer/src/strategies/index.ts";
import { studentParts, tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

let data: string;
beforeAll(async () => {
  await selectBackend("cpu", () => {});
  data = writeTinyIdx();
});

/** The projector's change after one step (SGD, learning rate 1: minus the gradient it was given). */
async function projectorStep(strategy: Record<string, unknown>, measureEvery: number): Promise<number[]> {
  const job = tinyJob(data, "/tmp/unused");
  const spec = parseConfig(
    { ...job, spec: { ...job.spec, objectives: { feature: { enabled: true } } } },
    "test",
    {},
  ).spec;
  const dataset = await loadDataset(spec.data, 1);
  const teacher = buildNetwork(spec.teacher, dataset.inputShape, dataset.numClasses, 1);
  teacher.model.trainable = false;
  const { student, built } = studentParts(spec, dataset, teacher.featureDim);
  const parsed = StrategySpec.parse(strategy);
  const step = new StudentStep({
    student,
    teacher,
    objectives: built.objectives,
    extraVariables: built.variables,
    strategy: createStrategy(
      parsed,
      built.objectives.map((o) => o.name),
    ),
    optimizer: tf.train.sgd(1),
    projectorUpdate: parsed.projectorUpdate,
    measureEvery,
  });
  const [batch] = [
    ...dataset.train.batches({ batchSize: 32, shuffle: false, seed: 1, epoch: 0, augment: false }),
  ] as Batch[];
  const read = () => built.variables.flatMap((v) => Array.from(v.dataSync()));
  const before = read();
  step.run(batch!, { step: 0, epoch: 1, random: () => 0.5 });
  const after = read();
  tf.dispose(built.variables);
  student.model.dispose();
  teacher.model.dispose();
  return after.map((x, i) => x - before[i]!);
}

const maxAbs = (xs: number[]) => Math.max(...xs.map(Math.abs));

describe("projector update", () => {
  const sum = { name: "sum", weights: { task: 1, distillation: 1, feature: 0.25 } };

  it("`weighted` scales the projector's step by the feature weight; `own` does not", async () => {
    const weighted = await projectorStep(sum, 1000);
    const own = await projectorStep({ ...sum, projectorUpdate: "own" }, 1000);
    expect(maxAbs(own)).toBeGreaterThan(1e-6);
    own.forEach((x, i) => expect(weighted[i]! / 0.25).toBeCloseTo(x, 5));
  });

  it("`own` gives the same projector step whatever the weighting and the step path", async () => {
    const single = await projectorStep({ ...sum, projectorUpdate: "own" }, 1000);
    const measured = await projectorStep({ ...sum, projectorUpdate: "own" }, 1); // per-objective path
    const mokd = await projectorStep({ name: "mokd", projectorUpdate: "own" }, 1);
    measured.forEach((x, i) => expect(x).toBeCloseTo(single[i]!, 5));
    mokd.forEach((x, i) => expect(x).toBeCloseTo(single[i]!, 5));
    const mokdWeighted = await projectorStep({ name: "mokd" }, 1);
    expect(maxAbs(mokdWeighted.map((x, i) => x - single[i]!))).toBeGreaterThan(1e-6);
  });
});
