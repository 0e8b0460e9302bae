// The evidence behind `auto`'s rule (trainer/src/backend/workload.ts): samples/s of the `sum` student step on
// native TensorFlow and wasm side by side (one worker per backend, rounds interleaved) for built-in models from
// tiny to mid-sized, with each one's forward multiply-adds per batch, the quantity the rule compares with
// WASM_BELOW_FORWARD_MACS_PER_BATCH.
//   node trainer/bench/crossover.ts [--backends tensorflow,wasm] [--rounds 3] [--steps 8]
import os from "node:os";
import * as tf from "@tensorflow/tfjs";
import type { ModelArchitecture } from "../../api/v1alpha1/index.ts";
import { forwardMacsPerSample, WASM_BELOW_FORWARD_MACS_PER_BATCH } from "../src/backend/workload.ts";
import { createOptimizer } from "../src/engine/optimizer.ts";
import { toNamedGradients, weightedLossGradients } from "../src/gradients.ts";
import { buildNetwork } from "../src/models/build.ts";
import { argValue, median, syntheticBatches, taskAndKdLosses, trainableVariables } from "./common.ts";
import { backendsArg, isWorker, serveWorker, startWorker, type Worker } from "./workers.ts";

type Arch = Pick<ModelArchitecture, "architecture" | "width" | "depth" | "hiddenUnits">;
const CASES: { label: string; arch: Arch; batch: number }[] = [
  {
    label: "mlp 64, h32 (example student)",
    arch: { architecture: "mlp", width: 64, depth: 1, hiddenUnits: 32 },
    batch: 64,
  },
  {
    label: "mlp 128x2, h64",
    arch: { architecture: "mlp", width: 128, depth: 2, hiddenUnits: 64 },
    batch: 64,
  },
  { label: "cnn 8x1, h32", arch: { architecture: "cnn", width: 8, depth: 1, hiddenUnits: 32 }, batch: 64 },
  {
    label: "mlp 128x2, h64, batch 256",
    arch: { architecture: "mlp", width: 128, depth: 2, hiddenUnits: 64 },
    batch: 256,
  },
  {
    label: "mlp 512x2, h256",
    arch: { architecture: "mlp", width: 512, depth: 2, hiddenUnits: 256 },
    batch: 64,
  },
  {
    label: "cnn 16x2, h64 (example teacher)",
    arch: { architecture: "cnn", width: 16, depth: 2, hiddenUnits: 64 },
    batch: 64,
  },
  {
    label: "mlp 1024x2, h512",
    arch: { architecture: "mlp", width: 1024, depth: 2, hiddenUnits: 512 },
    batch: 64,
  },
  {
    label: "cnn 32x2, h128",
    arch: { architecture: "cnn", width: 32, depth: 2, hiddenUnits: 128 },
    batch: 64,
  },
];
const INPUT: [number, number, number] = [28, 28, 1];

interface Request {
  index: number;
  steps: number;
}
interface Timing {
  wallMs: number;
  cpuMs: number;
}

function stepper(index: number) {
  const c = CASES[index]!;
  const network = buildNetwork({ ...c.arch, dropout: 0 }, INPUT, 10, 1);
  const model = tf.model({ inputs: network.model.inputs, outputs: network.model.outputs[0]! });
  const vars = trainableVariables(model);
  const optimizer = createOptimizer({ optimizer: "adam", learningRate: 1e-3, momentum: 0.9 });
  const batches = syntheticBatches(2, c.batch);
  let i = 0;
  const step = () =>
    tf.tidy(() => {
      const { grads } = weightedLossGradients(
        () => taskAndKdLosses(model, batches[i++ % 2]!),
        [0.5, 0.5],
        vars,
      );
      optimizer.applyGradients(toNamedGradients(vars, grads));
    });
  for (let n = 0; n < 3; n++) step();
  return (steps: number): Timing => {
    const [t0, c0] = [performance.now(), process.cpuUsage()];
    for (let n = 0; n < steps; n++) step();
    const cpu = process.cpuUsage(c0);
    return { wallMs: (performance.now() - t0) / steps, cpuMs: (cpu.user + cpu.system) / 1000 / steps };
  };
}

function worker(): Promise<void> {
  const steppers = new Map<number, (steps: number) => Timing>();
  return serveWorker<Request, Timing>((r) => {
    if (!steppers.has(r.index)) steppers.set(r.index, stepper(r.index));
    return steppers.get(r.index)!(r.steps);
  });
}

async function parent(): Promise<void> {
  const [rounds, steps] = [Number(argValue("rounds", "3")), Number(argValue("steps", "8"))];
  const script = new URL(import.meta.url).pathname;
  const workers: Worker<Request, Timing>[] = [];
  for (const b of backendsArg())
    workers.push(await startWorker<Request, Timing>(script, b, process.argv.slice(2)));
  console.log(
    `${workers.map((w) => w.info).join("; ")}; ${rounds} interleaved rounds x ${steps} steps; ${os.cpus().length} cores; ` +
      `load avg ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}; ${new Date().toISOString()}`,
  );
  const rows = [
    `| model | forward M multiply-adds / batch | ${workers.map((w) => `${w.label} samples/s`).join(" | ")} | ` +
      `${workers[0]!.label} / ${workers.at(-1)!.label} | CPU ms/step: ${workers.map((w) => w.label).join(" / ")} | auto picks |`,
    `|---|---:|${workers.map(() => "---:|").join("")}---:|---:|---|`,
  ];
  for (const [index, c] of CASES.entries()) {
    const ms = workers.map(() => [] as Timing[]);
    for (let r = 0; r < rounds; r++)
      for (const [w, wk] of workers.entries()) ms[w]!.push(await wk.ask({ index, steps }));
    const sps = ms.map((m) => (1000 * c.batch) / median(m.map((t) => t.wallMs)));
    const cpu = ms.map((m) => median(m.map((t) => t.cpuMs)).toFixed(1));
    const macs = forwardMacsPerSample(c.arch, INPUT, 10) * c.batch;
    const pick = macs < WASM_BELOW_FORWARD_MACS_PER_BATCH ? "wasm" : "tensorflow";
    rows.push(
      `| ${c.label} | ${(macs / 1e6).toFixed(1)} | ${sps.map((s) => s.toFixed(0)).join(" | ")} | ` +
        `${(sps[0]! / sps.at(-1)!).toFixed(2)}x | ${cpu.join(" / ")} | ${pick} |`,
    );
  }
  workers.forEach((w) => w.close());
  console.log(
    `\n${rows.join("\n")}\n\nload avg at the end ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
}

await (isWorker() ? worker() : parent());
