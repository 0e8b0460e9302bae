// Distillation quality on Fashion-MNIST with ONE fixed teacher (trained once, saved, reused): the student alone,
// `sum` over a 3x3 grid of (alpha, T), mokd, mokd-amortized (FAMO observing on the same batch and on the next
// batch), pcgrad and mgda, over several seeds. Prints
// mean +- std of final test accuracy and epochs to reach a target validation accuracy, and writes JSON.
// A script, not a test: it takes minutes to hours depending on the size flags.
//   node trainer/bench/quality.ts [--seeds 3] [--first-seed 1] [--epochs 3] [--max-train 5000] [--teacher-train 12000]
//     [--teacher-epochs 2] [--target 0.8] [--backend wasm] [--data /usr/share/datasets/fashion-mnist]
//     [--out docs/benchmarks/quality.json] [--teacher-dir .cache/bench-teacher]
//     [--methods "mokd-amortized,mokd-amortized (next-batch)"]  (a comma-separated subset; default: all)
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { parseTrainerSpec, type TrainerSpec } from "../../api/v1alpha1/index.ts";
import { selectBackend, type BackendPreference } from "../src/backend/index.ts";
import type { Dataset, Network } from "../src/contracts.ts";
import { loadDataset } from "../src/data/index.ts";
import { evaluateAccuracy } from "../src/engine/evaluate.ts";
import { trainStudent } from "../src/engine/student.ts";
import { epochsToTarget } from "../src/engine/summary.ts";
import { trainTeacher } from "../src/engine/teacher-stage.ts";
import { buildNetwork, loadTeacher, saveNetwork } from "../src/models/index.ts";

const { values: args } = parseArgs({
  options: {
    seeds: { type: "string", default: "3" },
    "first-seed": { type: "string", default: "1" },
    epochs: { type: "string", default: "3" },
    "max-train": { type: "string", default: "5000" },
    "teacher-train": { type: "string", default: "12000" },
    "teacher-epochs": { type: "string", default: "2" },
    target: { type: "string", default: "0.8" },
    backend: { type: "string", default: "wasm" },
    data: { type: "string", default: "/usr/share/datasets/fashion-mnist" },
    out: { type: "string", default: "docs/benchmarks/quality.json" },
    "teacher-dir": { type: "string", default: ".cache/bench-teacher" },
    methods: { type: "string" },
  },
});
const seeds = Array.from({ length: Number(args.seeds) }, (_, i) => Number(args["first-seed"]) + i);
const target = Number(args.target);
const DATA_SEED = 42;

/** The student and its training, shared by every method; methods differ only in objectives and strategy. */
const baseSpec = {
  data: { path: args.data, maxTrainSamples: Number(args["max-train"]), validationSplit: 0.1 },
  teacher: { architecture: "cnn", width: 16, hiddenUnits: 64, epochs: Number(args["teacher-epochs"]) },
  student: { architecture: "mlp", width: 64, depth: 1, hiddenUnits: 32 },
  training: { epochs: Number(args.epochs), batchSize: 64, learningRate: 0.002, targetAccuracy: target },
  metrics: { port: 0 },
};

interface Method {
  name: string;
  spec: Record<string, unknown>;
}

function methods(): Method[] {
  const list: Method[] = [
    {
      name: "student alone (CE)",
      spec: {
        objectives: { distillation: { enabled: false } },
        strategy: { name: "sum", weights: { task: 1 } },
      },
    },
  ];
  for (const alpha of [0.3, 0.5, 0.7]) {
    for (const temperature of [2, 4, 8]) {
      list.push({
        name: `sum alpha=${alpha} T=${temperature}`,
        spec: {
          objectives: { distillation: { temperature } },
          strategy: { name: "sum", weights: { task: 1 - alpha, distillation: alpha } },
        },
      });
    }
  }
  for (const name of ["mokd", "mokd-amortized", "pcgrad", "mgda"])
    list.push({ name, spec: { strategy: { name } } });
  list.push({
    name: "mokd-amortized (next-batch)",
    spec: { strategy: { name: "mokd-amortized", famo: { observe: "next-batch" } } },
  });
  return selected(list);
}

/** The methods named by --methods, in its order; all when unset. */
function selected(list: Method[]): Method[] {
  if (args.methods === undefined) return list;
  return args.methods.split(",").map((name) => {
    const method = list.find((m) => m.name === name.trim());
    if (!method) throw new Error(`unknown method "${name}"; known: ${list.map((m) => m.name).join(", ")}`);
    return method;
  });
}

function specFor(method: Method, seed: number): TrainerSpec {
  const spec = structuredClone({ ...baseSpec, ...method.spec }) as Record<string, Record<string, unknown>>;
  spec.training = { ...baseSpec.training, seed };
  return parseTrainerSpec(spec, method.name);
}

async function fixedTeacher(): Promise<{ network: Network; accuracy: number }> {
  const dir = args["teacher-dir"];
  const teacherSpec = parseTrainerSpec({
    ...baseSpec,
    data: { ...baseSpec.data, maxTrainSamples: Number(args["teacher-train"]) },
  });
  const data = await loadDataset(teacherSpec.data, DATA_SEED);
  if (!existsSync(join(dir, "model.json"))) {
    const network = buildNetwork(teacherSpec.teacher, data.inputShape, data.numClasses, 1, {
      name: "teacher",
    });
    const settings = { epochs: teacherSpec.teacher.epochs, learningRate: 0.001, batchSize: 64, seed: 1 };
    await trainTeacher(network, data, settings, {});
    await saveNetwork(network, dir);
    network.model.dispose();
  }
  const network = await loadTeacher(dir);
  return { network, accuracy: evaluateAccuracy(network, data.test, 256) };
}

interface Run {
  method: string;
  seed: number;
  testAccuracy: number;
  epochsToTarget: number | null;
  secondsPerEpoch: number;
  conflictRate: number;
}

async function runOne(method: Method, seed: number, dataset: Dataset, teacher: Network): Promise<Run> {
  const spec = specFor(method, seed);
  const quiet = { info: () => {}, warn: () => {} };
  const run = await trainStudent(spec, dataset, { network: teacher }, { hooks: {}, log: quiet });
  run.network.model.dispose();
  return {
    method: method.name,
    seed,
    testAccuracy: run.accuracy,
    epochsToTarget: epochsToTarget(run.history, target),
    secondsPerEpoch: run.history.reduce((a, r) => a + r.seconds, 0) / run.history.length,
    conflictRate: run.measuredSteps ? run.conflictSteps / run.measuredSteps : 0,
  };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) =>
  Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)) * (xs.length / Math.max(1, xs.length - 1)));

function table(runs: Run[], names: string[]): string {
  const lines = [
    `| method | test accuracy (mean ± std) | epochs to ${target} val. acc. (mean of runs reaching it) | reached | s/epoch | conflict rate |`,
    "|---|---|---|---|---|---|",
  ];
  for (const name of names) {
    const r = runs.filter((x) => x.method === name);
    const acc = r.map((x) => x.testAccuracy * 100);
    const reached = r.flatMap((x) => (x.epochsToTarget === null ? [] : [x.epochsToTarget]));
    const epochs = reached.length ? mean(reached).toFixed(2) : "—";
    lines.push(
      `| ${name} | ${mean(acc).toFixed(2)} ± ${std(acc).toFixed(2)} % | ${epochs} | ${reached.length}/${r.length} | ` +
        `${mean(r.map((x) => x.secondsPerEpoch)).toFixed(1)} | ${(mean(r.map((x) => x.conflictRate)) * 100).toFixed(1)}% |`,
    );
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const backend = await selectBackend(args.backend as BackendPreference, () => {});
  const started = Date.now();
  const teacher = await fixedTeacher();
  process.stderr.write(
    `teacher test accuracy ${(teacher.accuracy * 100).toFixed(2)}% (${args["teacher-dir"]})\n`,
  );
  const dataset = await loadDataset(specFor(methods()[0]!, 1).data, DATA_SEED);
  const runs: Run[] = [];
  const list = methods();
  // Seeds in the outer loop: a partial run still covers every method.
  for (const seed of seeds) {
    for (const method of list) {
      const run = await runOne(method, seed, dataset, teacher.network);
      runs.push(run);
      process.stderr.write(`${method.name} seed ${seed}: ${(run.testAccuracy * 100).toFixed(2)}%\n`);
    }
  }
  const text = table(
    runs,
    list.map((m) => m.name),
  );
  const header =
    `teacher: cnn width 16 trained once on ${args["teacher-train"]} images for ${args["teacher-epochs"]} epochs, ` +
    `test accuracy ${(teacher.accuracy * 100).toFixed(2)}%; student: mlp 784-64-32-10 on ${args["max-train"]} ` +
    `images, ${args.epochs} epochs, Adam lr 0.002, batch 64; seeds ${seeds.join(",")}; backend ${backend.choice}; ` +
    `${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}); ${new Date().toISOString()}; ` +
    `${((Date.now() - started) / 60000).toFixed(1)} min`;
  process.stdout.write(`${header}\n\n${text}\n`);
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(
    args.out,
    JSON.stringify({ header, args, teacherAccuracy: teacher.accuracy, runs }, null, 2) + "\n",
  );
}

await main();
