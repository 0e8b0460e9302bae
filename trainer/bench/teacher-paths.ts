// Benchmark: one teacher pass (inference over N images at the teacher output cache's batch) on each teacher path
// the trainer has: ONNX Runtime (the ONNX teacher loader, CPU), tfjs on native TensorFlow (tfjs-node) and tfjs on
// wasm. The same teacher (the built-in cnn of examples/fashion-mnist.yaml, seeded; for ONNX, our export of it) on
// the same synthetic Fashion-MNIST-shaped images. Each path runs in its own process (one native TensorFlow per
// process), rounds interleaved, so load drifts hit every path alike; prints samples/s per round and the median.
//   ./node_modules/.bin/node trainer/bench/teacher-paths.ts [--samples 10000] [--batch 256] [--rounds 3]
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../src/backend/index.ts";
import { buildNetwork } from "../src/models/index.ts";
import { exportOnnx } from "../src/models/onnx/export.ts";
import { loadOnnxTeacher } from "../src/models/onnx/teacher.ts";

const PATHS = ["onnxruntime", "tensorflow", "wasm"] as const;
type Path = (typeof PATHS)[number];
const SHAPE: [number, number, number] = [28, 28, 1];
const TEACHER = { architecture: "cnn", width: 16, depth: 2, hiddenUnits: 64, dropout: 0 } as const;

const { values } = parseArgs({
  options: {
    samples: { type: "string", default: "10000" },
    batch: { type: "string", default: "256" },
    rounds: { type: "string", default: "3" },
    path: { type: "string" },
  },
});
const samples = Number(values.samples);
const batch = Number(values.batch);

/** One pass in this process on `path`: samples/s. */
async function onePass(path: Path): Promise<number> {
  await selectBackend(path === "onnxruntime" ? "wasm" : path, () => {});
  const built = buildNetwork(TEACHER, SHAPE, 10, 7, { name: "teacher" });
  let teacher = built;
  if (path === "onnxruntime") {
    const file = join(mkdtempSync(join(tmpdir(), "mokd-bench-")), "teacher.onnx");
    writeFileSync(file, exportOnnx(built.model));
    teacher = await loadOnnxTeacher(file, SHAPE);
  }
  const xs = tf.randomNormal([batch, ...SHAPE], 0, 1, "float32", 1) as tf.Tensor4D;
  const pass = () => {
    for (let done = 0; done < samples; done += batch)
      tf.tidy(() =>
        (teacher.model.predict(xs, { batchSize: batch }) as tf.Tensor[]).forEach((t) => t.dataSync()),
      );
  };
  pass(); // warm-up (kernels, graph optimisation)
  const t0 = performance.now();
  pass();
  return samples / ((performance.now() - t0) / 1000);
}

if (values.path) {
  process.stdout.write(`${JSON.stringify({ samplesPerSecond: await onePass(values.path as Path) })}\n`);
  process.exit(0);
}

const results = new Map<Path, number[]>(PATHS.map((p) => [p, []]));
for (let round = 1; round <= Number(values.rounds); round++) {
  for (const path of PATHS) {
    const out = execFileSync(
      process.execPath,
      [import.meta.filename, "--path", path, "--samples", String(samples), "--batch", String(batch)],
      { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
    );
    const { samplesPerSecond } = JSON.parse(out.trim().split("\n").at(-1)!) as { samplesPerSecond: number };
    results.get(path)!.push(samplesPerSecond);
    console.log(`round ${round} ${path}: ${samplesPerSecond.toFixed(0)} samples/s`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(
  `\nteacher pass, ${samples} images at batch ${batch}, cnn ${JSON.stringify(TEACHER)} (median of rounds):`,
);
for (const [path, xs] of results) console.log(`  ${path.padEnd(12)} ${median(xs).toFixed(0)} samples/s`);
