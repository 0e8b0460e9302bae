// Per-step time of each weighting strategy relative to `sum`, on the same student, batches and backend, in one
// run with the strategies interleaved (timings of identical work drift by up to 30% here). CPU ms/step (process
// CPU time) is printed too: a shared machine distorts it less than wall-clock time. A step is the whole
// student update: forward, gradient(s), strategy, combination, Adam. Prints a markdown table.
//   node trainer/bench/step-time.ts [--backend wasm] [--model cnn|mlp|both] [--rounds 5] [--steps 10] [--batch 64]
//     [--optimizer fused|stock]
import os from "node:os";
import * as tf from "@tensorflow/tfjs";
import type { FamoObserveMode, StrategyName } from "../../api/v1alpha1/index.ts";
import { StrategySpec } from "../../api/v1alpha1/index.ts";
import { selectBackend, type BackendPreference } from "../src/backend/index.ts";
import { createOptimizer } from "../src/engine/optimizer.ts";
import { combineLosses, observesSameBatch } from "../src/engine/student-step.ts";
import type { GradientStrategy, LossStrategy, StepContext } from "../src/contracts.ts";
import {
  clipFactor,
  combinedNorm,
  combineGradients,
  gramMatrix,
  objectiveGradients,
  toNamedGradients,
  weightedLossGradients,
} from "../src/gradients.ts";
import { createStrategy } from "../src/strategies/index.ts";
import {
  argValue,
  buildStudent,
  median,
  syntheticBatches,
  taskAndKdLosses,
  trainableVariables,
  type Architecture,
  type SyntheticBatch,
} from "./common.ts";

interface Variant {
  label: string;
  strategy: StrategyName;
  /** Gradient strategies: share the forward pass (default) or re-run it per objective. */
  shareForward?: boolean;
  /**
   * FAMO's spec.strategy.famo.observe: `same-batch` measures the losses after the step with an extra forward on
   * the same batch (the reference); `next-batch` takes the next step's pre-step losses (a new batch, computed
   * anyway). Both through the trainer's own code (combineLosses / observesSameBatch of the student step).
   */
  famoObserve?: FamoObserveMode;
}

const variants: Variant[] = [
  { label: "sum", strategy: "sum" },
  { label: "mokd", strategy: "mokd" },
  { label: "mokd (forward re-run per objective)", strategy: "mokd", shareForward: false },
  {
    label: "mokd-amortized (observe: same-batch, extra forward)",
    strategy: "mokd-amortized",
    famoObserve: "same-batch",
  },
  {
    label: "mokd-amortized (observe: next-batch)",
    strategy: "mokd-amortized",
    famoObserve: "next-batch",
  },
  { label: "pcgrad", strategy: "pcgrad" },
  { label: "mgda", strategy: "mgda" },
  { label: "cagrad", strategy: "cagrad" },
  { label: "imtl", strategy: "imtl" },
];

function makeStep(variant: Variant, model: tf.LayersModel, optimizer: tf.Optimizer) {
  const vars = trainableVariables(model);
  const famo = { observe: variant.famoObserve };
  const spec = StrategySpec.parse({ name: variant.strategy, famo });
  const strategy = createStrategy(spec, ["task", "distillation"]);
  let step = 0;
  const context = (): StepContext => ({ step: step++, random: Math.random });
  return (batch: SyntheticBatch) =>
    tf.tidy(() => {
      const lossFn = () => taskAndKdLosses(model, batch);
      if (strategy.kind === "loss") return lossStep(strategy, lossFn, vars, optimizer, context());
      const { losses, grads } = objectiveGradients(lossFn, vars, {
        shareForward: variant.shareForward ?? true,
      });
      const gram = gramMatrix(grads);
      const lossValues = Array.from(tf.stack(losses).dataSync());
      const { coefficients } = (strategy as GradientStrategy).combine(gram, lossValues, context());
      const factor = clipFactor(combinedNorm(gram, coefficients), undefined);
      const combined = combineGradients(
        grads,
        coefficients.map((c) => c * factor),
      );
      optimizer.applyGradients(toNamedGradients(vars, combined));
    });
}

/** The single-backward step of StudentStep (without its teacher forward: the batches carry teacher logits). */
function lossStep(
  strategy: LossStrategy,
  lossFn: () => tf.Scalar[],
  vars: tf.Variable[],
  optimizer: tf.Optimizer,
  context: StepContext,
): void {
  const coefficients = (losses: number[]) => combineLosses(strategy, losses, context).coefficients;
  const r = weightedLossGradients(lossFn, coefficients, vars);
  optimizer.applyGradients(toNamedGradients(vars, r.grads));
  if (observesSameBatch(strategy)) {
    const before = Array.from(tf.stack(r.losses).dataSync());
    const after = Array.from(tf.stack(lossFn()).dataSync());
    strategy.observe(before, after);
  }
}

async function benchModel(architecture: Architecture, rounds: number, steps: number, batchSize: number) {
  const batches = syntheticBatches(4, batchSize);
  const runners = variants.map((v) => {
    const model = buildStudent(architecture);
    const optimizer = createOptimizer(adamSpec, fusedOptimizer);
    return { variant: v, step: makeStep(v, model, optimizer), times: [] as number[], cpu: [] as number[] };
  });
  for (const r of runners) for (let i = 0; i < 2; i++) r.step(batches[i % batches.length]!); // warm-up
  for (let round = 0; round < rounds; round++) {
    for (const r of runners) {
      const [t0, c0] = [performance.now(), process.cpuUsage()];
      for (let i = 0; i < steps; i++) r.step(batches[i % batches.length]!);
      const cpu = process.cpuUsage(c0);
      r.times.push((performance.now() - t0) / steps);
      r.cpu.push((cpu.user + cpu.system) / 1000 / steps);
    }
  }
  const [base, cpuBase] = [median(runners[0]!.times), median(runners[0]!.cpu)];
  const lines = [
    `| strategy (${architecture}) | ms/step (median) | vs sum | CPU ms/step | CPU vs sum |`,
    "|---|---:|---:|---:|---:|",
  ];
  for (const r of runners) {
    const [ms, cpu] = [median(r.times), median(r.cpu)];
    lines.push(
      `| ${r.variant.label} | ${ms.toFixed(1)} | ${(ms / base).toFixed(2)}x | ${cpu.toFixed(1)} | ` +
        `${(cpu / cpuBase).toFixed(2)}x |`,
    );
  }
  return lines.join("\n");
}

const backend = await selectBackend(argValue("backend", "auto") as BackendPreference);
// The trainer's optimiser (fused Adam on cpu/wasm); `--optimizer stock` measures tf.train.adam instead.
const fusedOptimizer = argValue("optimizer", "fused") !== "stock";
const adamSpec = { optimizer: "adam", learningRate: 1e-3, momentum: 0.9 } as const;
const rounds = Number(argValue("rounds", "5"));
const steps = Number(argValue("steps", "10"));
const batchSize = Number(argValue("batch", "64"));
const modelArg = argValue("model", "both");
const models: Architecture[] = modelArg === "both" ? ["mlp", "cnn"] : [modelArg as Architecture];
console.log(
  `backend ${backend.choice}, batch ${batchSize}, ${rounds} interleaved rounds x ${steps} steps, ` +
    `${os.cpus().length} cores (${os.cpus()[0]?.model}), ${new Date().toISOString()}`,
);
for (const m of models) console.log(`\n${await benchModel(m, rounds, steps, batchSize)}`);
