// Test fixtures of the engine/CLI tests: a tiny learnable IDX dataset written to a temp dir, a tiny job, and the
// trainable parts of a student step.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { stringify } from "yaml";
import type { TrainerSpec } from "../../../api/v1alpha1/index.ts";
import type { Dataset } from "../../../trainer/src/contracts.ts";
import { buildNetwork } from "../../../trainer/src/models/index.ts";
import { buildObjectives } from "../../../trainer/src/objectives/index.ts";

const SIDE = 8;
const CLASSES = 4;

function idx(magic: number, dims: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(data)]);
}

/** Class k lights up row-band k of an 8x8 image (plus noise): learnable in a few steps by an MLP. */
function samples(count: number, seed: number): { images: Uint8Array; labels: Uint8Array } {
  const images = new Uint8Array(count * SIDE * SIDE);
  const labels = new Uint8Array(count);
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) % 1000) / 1000;
  for (let n = 0; n < count; n++) {
    const k = n % CLASSES;
    labels[n] = k;
    for (let p = 0; p < SIDE * SIDE; p++) {
      const band = Math.floor(p / SIDE / (SIDE / CLASSES)) === k;
      images[n * SIDE * SIDE + p] = Math.round((band ? 180 : 30) + 60 * rand());
    }
  }
  return { images, labels };
}

/** Writes train/t10k IDX files (raw, not gzipped) into a new temp dir and returns it. */
export function writeTinyIdx(train = 256, test = 64): string {
  const dir = mkdtempSync(join(tmpdir(), "mokd-idx-"));
  for (const [prefix, count, seed] of [
    ["train", train, 1],
    ["t10k", test, 2],
  ] as const) {
    const { images, labels } = samples(count, seed);
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte`), idx(0x803, [count, SIDE, SIDE], images));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte`), idx(0x801, [count], labels));
  }
  return dir;
}

/** Compression-report timings of test runs: exercised, not measured (the defaults time 200 + 10 forwards each). */
export const CHEAP_COMPRESSION = { latencyRuns: 5, warmupRuns: 1, throughputBatch: 16, throughputRuns: 2 };

/** A tiny DistillationJob manifest: mlp teacher (trained, 1 epoch) and mlp student. */
export function tinyJob(
  dataPath: string,
  out: string,
  overrides: { epochs?: number; strategy?: string } = {},
) {
  return {
    apiVersion: "distillation.mokd.io/v1alpha1",
    kind: "DistillationJob",
    metadata: { name: "tiny", namespace: "tests" },
    spec: {
      data: { path: dataPath, validationSplit: 0.125 },
      teacher: { architecture: "mlp", width: 16, depth: 1, hiddenUnits: 16, epochs: 1, learningRate: 0.01 },
      student: { architecture: "mlp", width: 8, depth: 1, hiddenUnits: 8 },
      strategy: { name: overrides.strategy ?? "mokd" },
      training: { epochs: overrides.epochs ?? 2, batchSize: 32, learningRate: 0.01, seed: 7 },
      output: {
        path: join(out, "output"),
        checkpointPath: join(out, "checkpoints"),
        keepCheckpoints: 2,
        compression: CHEAP_COMPRESSION,
      },
      metrics: { port: 0 },
    },
  };
}

export function writeJob(dir: string, job: unknown, name = "job.yaml"): string {
  const path = join(dir, name);
  writeFileSync(path, stringify(job));
  return path;
}

export const TINY_TRAIN = 256;

/**
 * The trainable side of a student step for `spec`, as the engine builds it: the student (seed 2), its objectives
 * with the projector's variables (seed 3), and an Adam optimiser. Whoever uses it disposes them.
 */
export function studentParts(
  spec: Pick<TrainerSpec, "student" | "objectives">,
  dataset: Pick<Dataset, "inputShape" | "numClasses">,
  teacherFeatureDim: number,
) {
  const student = buildNetwork(spec.student, dataset.inputShape, dataset.numClasses, 2);
  const dims = { studentFeatureDim: student.featureDim, teacherFeatureDim, numClasses: dataset.numClasses };
  const built = buildObjectives(spec.objectives, dims, 3);
  return { student, built, optimizer: tf.train.adam(0.01) };
}
