// Per-step time of each weighting strategy relative to `sum`, on the same student and batches, on native
// TensorFlow and wasm side by side (one worker process per backend, workers.ts), in one run with the strategies
// and the backends interleaved (timings of identical work drift by up to 30% here). CPU ms/step (process CPU
// time) is printed too: a shared machine distorts it less than wall-clock time. A step is the whole student
// update: forward, gradient(s), strategy, combination, Adam. Prints a markdown table per model.
//   node trainer/bench/step-time.ts [--backends tensorflow,wasm] [--model mlp,cnn] [--rounds 5] [--steps 10]
//     [--batch 64] [--optimizer fused|stock]
import os from "node:os";
import * as tf from "@tensorflow/tfjs";
import type { MokdAmortizedObserveMode, StrategyName } from "../../api/v1alpha1/index.ts";
import { StrategySpec } from "../../api/v1alpha1/index.ts";
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
import { backendsArg, isWorker, serveWorker, startWorker, type Worker } from "./workers.ts";

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
  observe?: MokdAmortizedObserveMode;
}

const variants: Variant[] = [
  { label: "sum", strategy: "sum" },
  { label: "mokd", strategy: "mokd" },
  { label: "mokd (forward re-run per objective)", strategy: "mokd", shareForward: false },
  {
    label: "mokd-amortized (observe: same-batch, extra forward)",
    strategy: "mokd-amortized",
    observe: "same-batch",
  },
  {
    label: "mokd-amortized (observe: next-batch)",
    strategy: "mokd-amortized",
    observe: "next-batch",
  },
  { label: "pcgrad", strategy: "pcgrad" },
  { label: "mgda", strategy: "mgda" },
  { label: "cagrad", strategy: "cagrad" },
  { label: "imtl", strategy: "imtl" },
];

function makeStep(variant: Variant, model: tf.LayersModel, optimizer: tf.Optimizer) {
  const vars = trainableVariables(model);
  const famo = { observe: variant.observe };
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

interface Request {
  arch: Architecture;
  steps: number;
  batch: number;
}
interface Timing {
  label: string;
  wallMs: number;
  cpuMs: number;
}

const fusedOptimizer = argValue("optimizer", "fused") !== "stock";
const adamSpec = { optimizer: "adam", learningRate: 1e-3, momentum: 0.9 } as const;

/** Worker side: per model, every variant's step (built and warmed up once), timed one round per request. */
function worker(): Promise<void> {
  const built = new Map<string, { runners: { variant: Variant; step: (b: SyntheticBatch) => void }[] }>();
  const batchesFor = new Map<number, SyntheticBatch[]>();
  return serveWorker<Request, Timing[]>((r) => {
    if (!batchesFor.has(r.batch)) batchesFor.set(r.batch, syntheticBatches(4, r.batch));
    const batches = batchesFor.get(r.batch)!;
    const key = `${r.arch}/${r.batch}`;
    if (!built.has(key)) {
      const runners = variants.map((variant) => {
        const model = buildStudent(r.arch);
        return { variant, step: makeStep(variant, model, createOptimizer(adamSpec, fusedOptimizer)) };
      });
      for (const runner of runners) for (let i = 0; i < 2; i++) runner.step(batches[i % batches.length]!);
      built.set(key, { runners });
    }
    return built.get(key)!.runners.map((runner) => {
      const [t0, c0] = [performance.now(), process.cpuUsage()];
      for (let i = 0; i < r.steps; i++) runner.step(batches[i % batches.length]!);
      const cpu = process.cpuUsage(c0);
      const wallMs = (performance.now() - t0) / r.steps;
      return { label: runner.variant.label, wallMs, cpuMs: (cpu.user + cpu.system) / 1000 / r.steps };
    });
  });
}

async function benchModel(
  arch: Architecture,
  workers: Worker<Request, Timing[]>[],
  request: Omit<Request, "arch">,
) {
  const rounds = Number(argValue("rounds", "5"));
  const results = workers.map(() => variants.map(() => ({ wall: [] as number[], cpu: [] as number[] })));
  for (let round = 0; round < rounds; round++) {
    for (const [w, worker] of workers.entries()) {
      const timings = await worker.ask({ arch, ...request });
      timings.forEach((t, v) => (results[w]![v]!.wall.push(t.wallMs), results[w]![v]!.cpu.push(t.cpuMs)));
    }
  }
  const header = workers.map((w) => `${w.label} ms/step | vs sum | CPU vs sum`).join(" | ");
  const lines = [
    `| strategy (${arch}) | ${header} |`,
    `|---|${workers.map(() => "---:|---:|---:|").join("")}`,
  ];
  variants.forEach((variant, v) => {
    const cells = results.map((byVariant) => {
      const [ms, cpu] = [median(byVariant[v]!.wall), median(byVariant[v]!.cpu)];
      const [base, cpuBase] = [median(byVariant[0]!.wall), median(byVariant[0]!.cpu)];
      return `${ms.toFixed(1)} | ${(ms / base).toFixed(2)}x | ${(cpu / cpuBase).toFixed(2)}x`;
    });
    lines.push(`| ${variant.label} | ${cells.join(" | ")} |`);
  });
  return lines.join("\n");
}

async function parent(): Promise<void> {
  const request = { steps: Number(argValue("steps", "10")), batch: Number(argValue("batch", "64")) };
  const models = argValue("model", "mlp,cnn").split(",") as Architecture[];
  const script = new URL(import.meta.url).pathname;
  const workers: Worker<Request, Timing[]>[] = [];
  for (const b of backendsArg())
    workers.push(await startWorker<Request, Timing[]>(script, b, process.argv.slice(2)));
  console.log(
    `${workers.map((w) => w.info).join("; ")}; batch ${request.batch}, ${argValue("rounds", "5")} interleaved rounds x ` +
      `${request.steps} steps, ${os.cpus().length} cores (${os.cpus()[0]?.model}), load avg ` +
      `${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}, ${new Date().toISOString()}`,
  );
  for (const m of models) console.log(`\n${await benchModel(m, workers, request)}`);
  workers.forEach((w) => w.close());
  console.log(
    `\nload avg at the end ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
}

await (isWorker() ? worker() : parent());
