// Samples/s of our student training step (the `sum` strategy: task CE + T^2 KD, one backward, Adam) vs PyTorch
// on the same model, batch size and thread count, interleaved in one run. wasm in Node runs one thread, so
// PyTorch is measured with torch.set_num_threads(1), and with 2 threads for reference. Besides wall-clock
// samples/s it prints CPU ms/step (process CPU time, all threads), which a shared machine distorts less.
// PyTorch is a benchmark-only tool, never a project dependency:
//   python3 -m venv ~/.cache/mokd-bench/venv && ~/.cache/mokd-bench/venv/bin/pip install torch
//   node trainer/bench/vs-torch.ts [--backend wasm] [--model cnn|mlp|both] [--batch 64] [--rounds 5] [--steps 10]
//     [--optimizer fused|stock]
import { spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import * as tf from "@tensorflow/tfjs";
import { selectBackend, type BackendPreference } from "../src/backend/index.ts";
import { createOptimizer } from "../src/engine/optimizer.ts";
import { toNamedGradients, weightedLossGradients } from "../src/gradients.ts";
import {
  argValue,
  buildStudent,
  median,
  syntheticBatches,
  taskAndKdLosses,
  trainableVariables,
  type Architecture,
} from "./common.ts";

const python = argValue("python", path.join(os.homedir(), ".cache/mokd-bench/venv/bin/python"));
const rounds = Number(argValue("rounds", "5"));
const steps = Number(argValue("steps", "10"));
const batchSize = Number(argValue("batch", "64"));
const modelArg = argValue("model", "both");
const models: Architecture[] = modelArg === "both" ? ["mlp", "cnn"] : [modelArg as Architecture];

interface Timing {
  wallMs: number;
  cpuMs: number;
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
    msPerStep: async (threads: number, arch: Architecture): Promise<Timing> => {
      child.stdin.write(`${threads} ${arch} ${batchSize} ${steps}\n`);
      const [wallMs, cpuMs] = (await next()).split(" ").map(Number);
      return { wallMs: wallMs!, cpuMs: cpuMs! };
    },
    close: () => child.stdin.end(),
  };
}

function ourStep(arch: Architecture) {
  const model = buildStudent(arch);
  const vars = trainableVariables(model);
  const optimizer = createOptimizer(adamSpec, fusedOptimizer);
  const batches = syntheticBatches(4, batchSize);
  let i = 0;
  const step = () =>
    tf.tidy(() => {
      const batch = batches[i++ % batches.length]!;
      const { grads } = weightedLossGradients(() => taskAndKdLosses(model, batch), [0.5, 0.5], vars);
      optimizer.applyGradients(toNamedGradients(vars, grads));
    });
  for (let n = 0; n < 3; n++) step(); // warm-up: JIT, kernel set-up
  return (): Timing => {
    const [t0, c0] = [performance.now(), process.cpuUsage()];
    for (let n = 0; n < steps; n++) step();
    const cpu = process.cpuUsage(c0);
    return { wallMs: (performance.now() - t0) / steps, cpuMs: (cpu.user + cpu.system) / 1000 / steps };
  };
}

const backend = await selectBackend(argValue("backend", "auto") as BackendPreference);
// The trainer's optimiser (fused Adam on cpu/wasm); `--optimizer stock` measures tf.train.adam instead.
const fusedOptimizer = argValue("optimizer", "fused") !== "stock";
const adamSpec = { optimizer: "adam", learningRate: 1e-3, momentum: 0.9 } as const;
const torch = await startTorch();
console.log(
  `tfjs ${tf.version.tfjs} backend ${backend.choice} vs ${torch.version}; batch ${batchSize}, ${rounds} interleaved ` +
    `rounds x ${steps} steps; ${os.cpus().length} cores (${os.cpus()[0]?.model}); load avg ${os.loadavg()[0]!.toFixed(1)}; ` +
    new Date().toISOString(),
);
const rows = [
  `| model | ours (tfjs ${backend.choice}, 1 thread) | PyTorch 1 thread | PyTorch 2 threads | ours / PyTorch 1t ` +
    "| CPU ms/step: ours / PyTorch 1t / 2t |",
  "|---|---:|---:|---:|---:|---:|",
];
for (const arch of models) {
  const ours = ourStep(arch);
  const t: { ours: Timing[]; torch1: Timing[]; torch2: Timing[] } = { ours: [], torch1: [], torch2: [] };
  for (let r = 0; r < rounds; r++) {
    t.ours.push(ours());
    t.torch1.push(await torch.msPerStep(1, arch));
    t.torch2.push(await torch.msPerStep(2, arch));
  }
  const sps = (ts: Timing[]) => (1000 * batchSize) / median(ts.map((x) => x.wallMs));
  const cpu = (ts: Timing[]) => median(ts.map((x) => x.cpuMs)).toFixed(1);
  rows.push(
    `| ${arch} | ${sps(t.ours).toFixed(0)} samples/s | ${sps(t.torch1).toFixed(0)} | ${sps(t.torch2).toFixed(0)} | ` +
      `${(sps(t.ours) / sps(t.torch1)).toFixed(2)}x | ${cpu(t.ours)} / ${cpu(t.torch1)} / ${cpu(t.torch2)} |`,
  );
}
torch.close();
console.log(`\n${rows.join("\n")}`);
