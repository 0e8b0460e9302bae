// Samples/s of our student training step (the `sum` strategy: task CE + T^2 KD, one backward, Adam) on native
// TensorFlow and on wasm, side by side, vs PyTorch on the same model, batch size and thread count, all
// interleaved in one run (one worker process per tfjs backend, workers.ts). Threads: wasm in Node runs one, native
// TensorFlow as many as there are cores (its default), so wasm is compared with PyTorch on 1 thread and
// TensorFlow with PyTorch on all cores. Models: the mlp and cnn students (28x28x1, --batch, default 64) and the
// compute-bound ResNet-style probe (32x32x3, --resnet-batch, default 128), where per-op cost does not dominate.
// Besides wall-clock samples/s it prints CPU ms/step (process CPU time, all threads).
// PyTorch is a benchmark-only tool, never a project dependency:
//   python3 -m venv ~/.cache/mokd-bench/venv && ~/.cache/mokd-bench/venv/bin/pip install torch
//   node trainer/bench/vs-torch.ts [--backends tensorflow,wasm] [--model mlp,cnn,resnet] [--batch 64]
//     [--resnet-batch 128] [--rounds 5] [--steps 10] [--resnet-steps 2] [--optimizer fused|stock]
import { spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import * as tf from "@tensorflow/tfjs";
import { createOptimizer } from "../src/engine/optimizer.ts";
import { toNamedGradients, weightedLossGradients } from "../src/gradients.ts";
import {
  argValue,
  buildStudent,
  inputShapeOf,
  median,
  syntheticBatches,
  taskAndKdLosses,
  trainableVariables,
  type Architecture,
} from "./common.ts";
import { backendsArg, isWorker, serveWorker, startWorker, type Worker } from "./workers.ts";

const python = argValue("python", path.join(os.homedir(), ".cache/mokd-bench/venv/bin/python"));
const rounds = Number(argValue("rounds", "5"));
const models = argValue("model", "mlp,cnn,resnet").split(",") as Architecture[];
const batchOf = (arch: Architecture) =>
  Number(arch === "resnet" ? argValue("resnet-batch", "128") : argValue("batch", "64"));
const stepsOf = (arch: Architecture) =>
  Number(arch === "resnet" ? argValue("resnet-steps", "2") : argValue("steps", "10"));
const threads = os.cpus().length;
/** Threads a worker computes with: wasm and cpu one, TensorFlow its limit (`tensorflow:1`) or all cores. */
const threadsOf = (label: string) =>
  label.startsWith("wasm") || label.startsWith("cpu") ? 1 : Number(label.split(":")[1] ?? threads);

interface Timing {
  wallMs: number;
  cpuMs: number;
}
interface Request {
  arch: Architecture;
  batch: number;
  steps: number;
}

/** A persistent PyTorch worker: one request line in, one "<wall ms/step> <CPU ms/step>" line out. */
async function startTorch() {
  const child = spawn(python, [path.join(import.meta.dirname, "torch_step.py")], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error(`PyTorch worker exited (is torch installed for ${python}?)`);
    return r.value;
  };
  const version = await next();
  return {
    version,
    msPerStep: async (torchThreads: number, r: Request): Promise<Timing> => {
      child.stdin.write(`${torchThreads} ${r.arch} ${r.batch} ${r.steps}\n`);
      const [wallMs, cpuMs] = (await next()).split(" ").map(Number);
      return { wallMs: wallMs!, cpuMs: cpuMs! };
    },
    close: () => child.stdin.end(),
  };
}

// ---- worker: our step on one backend ----------------------------------------------------------------

const fusedOptimizer = argValue("optimizer", "fused") !== "stock";
const adamSpec = { optimizer: "adam", learningRate: 1e-3, momentum: 0.9 } as const;

function ourStep(arch: Architecture, batchSize: number) {
  const model = buildStudent(arch);
  const vars = trainableVariables(model);
  const optimizer = createOptimizer(adamSpec, fusedOptimizer);
  const batches = syntheticBatches(arch === "resnet" ? 2 : 4, batchSize, 7, inputShapeOf(arch));
  let i = 0;
  const step = () =>
    tf.tidy(() => {
      const batch = batches[i++ % batches.length]!;
      const { grads } = weightedLossGradients(() => taskAndKdLosses(model, batch), [0.5, 0.5], vars);
      optimizer.applyGradients(toNamedGradients(vars, grads));
    });
  for (let n = 0; n < (arch === "resnet" ? 1 : 3); n++) step(); // warm-up: JIT, kernel set-up
  return (steps: number): Timing => {
    const [t0, c0] = [performance.now(), process.cpuUsage()];
    for (let n = 0; n < steps; n++) step();
    const cpu = process.cpuUsage(c0);
    return { wallMs: (performance.now() - t0) / steps, cpuMs: (cpu.user + cpu.system) / 1000 / steps };
  };
}

function worker(): Promise<void> {
  const steppers = new Map<string, (steps: number) => Timing>();
  return serveWorker<Request, Timing>((r) => {
    const key = `${r.arch}/${r.batch}`;
    if (!steppers.has(key)) steppers.set(key, ourStep(r.arch, r.batch));
    return steppers.get(key)!(r.steps);
  });
}

// ---- parent: interleaved rounds -----------------------------------------------------------------------

type Column = { label: string; times: Timing[] };

async function benchModel(
  arch: Architecture,
  workers: Worker<Request, Timing>[],
  torch: Awaited<ReturnType<typeof startTorch>>,
): Promise<string> {
  const request = { arch, batch: batchOf(arch), steps: stepsOf(arch) };
  const ours: Column[] = workers.map((w) => ({ label: w.label, times: [] }));
  const pt: Column[] = [1, threads].map((n) => ({ label: `PyTorch ${n}t`, times: [] }));
  for (let r = 0; r < rounds; r++) {
    for (const [i, w] of workers.entries()) ours[i]!.times.push(await w.ask(request));
    pt[0]!.times.push(await torch.msPerStep(1, request));
    pt[1]!.times.push(await torch.msPerStep(threads, request));
  }
  const sps = (c: Column) => (1000 * request.batch) / median(c.times.map((x) => x.wallMs));
  const cpu = (c: Column) => median(c.times.map((x) => x.cpuMs)).toFixed(1);
  // Same threads: wasm (1) vs PyTorch 1 thread; TensorFlow (all cores) vs PyTorch on all cores.
  const reference = (c: Column) => (threadsOf(c.label) === 1 ? pt[0]! : pt[1]!);
  const cells = [...ours, ...pt].map((c) => `${sps(c).toFixed(0)}`);
  const ratios = ours.map((c) => `${(sps(c) / sps(reference(c))).toFixed(2)}x`);
  return `| ${arch} | ${request.batch} | ${cells.join(" | ")} | ${ratios.join(" | ")} | ${[...ours, ...pt].map(cpu).join(" / ")} |`;
}

async function parent(): Promise<void> {
  const backends = backendsArg();
  const script = new URL(import.meta.url).pathname;
  const workers: Worker<Request, Timing>[] = [];
  for (const b of backends)
    workers.push(await startWorker<Request, Timing>(script, b, process.argv.slice(2)));
  const torch = await startTorch();
  console.log(
    `tfjs ${tf.version.tfjs}: ${workers.map((w) => w.info).join("; ")} vs ${torch.version}; ${rounds} interleaved ` +
      `rounds; ${threads} cores (${os.cpus()[0]?.model}); load avg ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}; ` +
      new Date().toISOString(),
  );
  const labels = backends.map((b) => b.label);
  const same = (label: string) => `PyTorch ${threadsOf(label)}t`;
  const rows = [
    `| model | batch | ${labels.map((b) => `${b} (${threadsOf(b)}t)`).join(" | ")} | ` +
      `PyTorch 1t | PyTorch ${threads}t | ${labels.map((b) => `${b} / ${same(b)}`).join(" | ")} | ` +
      `CPU ms/step: ${[...labels, "PyTorch 1t", `PyTorch ${threads}t`].join(" / ")} |`,
    `|---|---:|${backends.map(() => "---:|").join("")}---:|---:|${backends.map(() => "---:|").join("")}---:|`,
  ];
  for (const arch of models) rows.push(await benchModel(arch, workers, torch));
  torch.close();
  workers.forEach((w) => w.close());
  console.log(`\nsamples/s (median of the rounds)\n${rows.join("\n")}`);
  console.log(
    `load avg at the end ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
}

await (isWorker() ? worker() : parent());
