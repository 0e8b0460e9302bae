// Exact MoKD's two corner behaviours and whether a remedy helps (issue 11.6), measured on real training:
// - without the feature objective, how often exact MoKD puts all weight on distillation (pi_task = 0);
// - with it, how much weight the feature objective gets (its log-loss gradient is the shortest);
// and, for each, remedies: a minimum weight (pi' = m + (1 - K m) pi) and, for the feature objective, the loss
// on L2-normalised features (a constant rescaling cannot help: MoKD is invariant to each loss's scale).
// Prints, per variant, the student's test accuracy (mean and paired difference to exact MoKD, +- standard error
// over seeds), the mean strategy weights, the mean step shares and the share of steps with pi_task = 0.
//
//   node trainer/bench/mokd-remedies.ts [--train 10000] [--epochs 3] [--seeds 3] [--backend wasm]
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { TrainerSpec } from "../../api/v1alpha1/index.ts";
import { selectBackend, type BackendPreference } from "../src/backend/index.ts";
import type { Objective, StepRecord, WeightingStrategy } from "../src/contracts.ts";
import { loadDataset } from "../src/data/index.ts";
import { evaluateAccuracy } from "../src/engine/evaluate.ts";
import { createOptimizer } from "../src/engine/optimizer.ts";
import { runStudentStage } from "../src/engine/student-stage.ts";
import { obtainTeacher } from "../src/engine/teacher.ts";
import { buildNetwork } from "../src/models/index.ts";
import { buildObjectives, meanSquaredError, type Projector } from "../src/objectives/index.ts";
import { createStrategy, MokdStrategy } from "../src/strategies/index.ts";
import { argValue } from "./common.ts";

const TRAIN = Number(argValue("train", "10000"));
const EPOCHS = Number(argValue("epochs", "3"));
const SEEDS = Number(argValue("seeds", "3"));
const BACKEND = argValue("backend", "wasm") as BackendPreference;

interface Variant {
  name: string;
  feature: boolean;
  strategy: (names: string[]) => WeightingStrategy;
  /** Replaces the built feature objective. */
  featureObjective?: (projector: Projector) => Objective;
}

/** MSE between L2-normalised projected student features and L2-normalised teacher features (per sample). */
function l2FeatureObjective(projector: Projector): Objective {
  const unit = (x: tf.Tensor2D) => tf.div(x, tf.add(tf.norm(x, "euclidean", 1, true), 1e-8)) as tf.Tensor2D;
  return {
    name: "feature",
    loss: (i) => meanSquaredError(unit(projector.project(i.studentFeatures)), unit(i.teacherFeatures!)),
  };
}

const spec = TrainerSpec.parse({
  data: { path: "/usr/share/datasets/fashion-mnist", maxTrainSamples: TRAIN, validationSplit: 0.1 },
  teacher: { architecture: "cnn", width: 16, epochs: 2 },
  student: { architecture: "mlp", width: 32, depth: 1, hiddenUnits: 32 },
  training: { epochs: EPOCHS, batchSize: 64, learningRate: 0.001 },
});
const sumSpec = TrainerSpec.parse({ ...spec, strategy: { name: "sum" } }).strategy;

const variants: Variant[] = [
  { name: "sum 0.5/0.5", feature: false, strategy: (n) => createStrategy(sumSpec, n as never) },
  { name: "mokd", feature: false, strategy: () => new MokdStrategy() },
  { name: "mokd minWeight 0.1", feature: false, strategy: () => new MokdStrategy({ minWeight: 0.1 }) },
  { name: "mokd + feature", feature: true, strategy: () => new MokdStrategy() },
  {
    name: "mokd + feature, minWeight 0.1",
    feature: true,
    strategy: () => new MokdStrategy({ minWeight: 0.1 }),
  },
  {
    name: "mokd + feature (L2-normalised)",
    feature: true,
    strategy: () => new MokdStrategy(),
    featureObjective: l2FeatureObjective,
  },
];

interface Outcome {
  accuracy: number;
  weights: Record<string, number>;
  shares: Record<string, number>;
  taskZero: number;
}

function means(records: StepRecord[], pick: (r: StepRecord) => Record<string, number> | undefined) {
  const sums: Record<string, number> = {};
  const counts: Record<string, number> = {};
  for (const r of records)
    for (const [k, v] of Object.entries(pick(r) ?? {})) {
      sums[k] = (sums[k] ?? 0) + v;
      counts[k] = (counts[k] ?? 0) + 1;
    }
  return Object.fromEntries(Object.keys(sums).map((k) => [k, sums[k]! / counts[k]!]));
}

async function runVariant(
  variant: Variant,
  seed: number,
  dataset: Awaited<ReturnType<typeof loadDataset>>,
  teacher: Awaited<ReturnType<typeof obtainTeacher>>,
) {
  const student = buildNetwork(spec.student, dataset.inputShape, dataset.numClasses, seed, {
    name: "student",
  });
  const objectivesSpec = TrainerSpec.shape.objectives.parse({ feature: { enabled: variant.feature } });
  const dims = {
    studentFeatureDim: student.featureDim,
    teacherFeatureDim: teacher.network.featureDim,
    numClasses: dataset.numClasses,
  };
  const built = buildObjectives(objectivesSpec, dims, seed);
  const objectives =
    variant.featureObjective && built.projector
      ? built.objectives.map((o) => (o.name === "feature" ? variant.featureObjective!(built.projector!) : o))
      : built.objectives;
  const names = objectives.map((o) => o.name);
  const optimizer = createOptimizer(spec.training);
  const records: StepRecord[] = [];
  await runStudentStage({
    student,
    teacher: teacher.network,
    objectives,
    extraVariables: built.variables,
    strategy: variant.strategy(names),
    optimizer,
    dataset,
    epochs: spec.training.epochs,
    batchSize: spec.training.batchSize,
    seed,
    hooks: { onStep: (r) => records.push(r) },
  });
  const accuracy = evaluateAccuracy(student, dataset.test, 256);
  optimizer.dispose();
  built.projector?.dispose();
  student.model.dispose();
  const applied = records.filter((r) => !r.nonFinite);
  return {
    accuracy,
    weights: means(applied, (r) => r.weights),
    shares: means(applied, (r) => r.stepShares),
    taskZero: applied.filter((r) => (r.weights.task ?? 1) <= 1e-9).length / applied.length,
  } satisfies Outcome;
}

/** Key-wise mean of per-seed records. */
function meanOfRecords(rs: Record<string, number>[]): Record<string, number> {
  const keys = [...new Set(rs.flatMap((r) => Object.keys(r)))];
  return Object.fromEntries(keys.map((k) => [k, mean(rs.map((r) => r[k] ?? 0))]));
}

const fmt = (r: Record<string, number>) =>
  Object.entries(r)
    .map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`)
    .join(", ");
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const se = (xs: number[]) =>
  xs.length > 1
    ? Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1) / xs.length)
    : 0;

async function main(): Promise<void> {
  await selectBackend(BACKEND, () => {});
  const dataset = await loadDataset(spec.data);
  const dir = mkdtempSync(join(tmpdir(), "mokd-remedies-"));
  const quiet = { info: () => {}, warn: (m: string) => console.error(m) };
  const teacher = await obtainTeacher(spec, dataset, {
    outputPath: join(dir, "output"),
    checkpointPath: join(dir, "checkpoints"),
    hooks: {},
    log: quiet,
    fingerprint: "mokd-remedies",
  });
  console.log(
    `Fashion-MNIST ${dataset.train.size} train / ${dataset.test.size} test, teacher cnn width 16 (2 epochs) ` +
      `${(teacher.info.accuracy * 100).toFixed(2)}% test, student mlp 784-32-32-10, ${EPOCHS} epochs, ` +
      `${SEEDS} seeds, ${BACKEND}`,
  );
  const results = new Map<string, Outcome[]>();
  for (let seed = 1; seed <= SEEDS; seed++)
    for (const v of variants) {
      const t0 = performance.now();
      const outcome = await runVariant(v, seed, dataset, teacher);
      (results.get(v.name) ?? results.set(v.name, []).get(v.name)!).push(outcome);
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      console.error(`seed ${seed} ${v.name}: ${(outcome.accuracy * 100).toFixed(2)}% (${s} s)`);
    }
  const reference = (v: Variant) => results.get(v.feature ? "mokd + feature" : "mokd")!;
  console.log(
    "| variant | test accuracy | vs exact mokd (paired) | mean weight | mean step share | steps with pi_task = 0 |",
  );
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const v of variants) {
    const r = results.get(v.name)!;
    const acc = r.map((x) => x.accuracy * 100);
    const diff = r.map((x, i) => (x.accuracy - reference(v)[i]!.accuracy) * 100);
    console.log(
      `| ${v.name} | ${mean(acc).toFixed(2)} ± ${se(acc).toFixed(2)} | ${mean(diff) >= 0 ? "+" : ""}${mean(diff).toFixed(2)} ± ${se(diff).toFixed(2)} | ` +
        `${fmt(meanOfRecords(r.map((x) => x.weights)))} | ${fmt(meanOfRecords(r.map((x) => x.shares)))} | ` +
        `${(mean(r.map((x) => x.taskZero)) * 100).toFixed(1)}% |`,
    );
  }
  teacher.network.model.dispose();
}

await main();
