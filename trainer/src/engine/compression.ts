// The compression report: what distillation bought, measured on the trainer's own device after training, for the
// teacher and the student in each runtime the job publishes (tfjs on the run's backend; ONNX Runtime CPU):
// parameters, size on disk, forward multiply-adds per sample (Conv/Gemm/MatMul of the ONNX graph), batch-1
// latency (p50/p95 after warm-up) and throughput at a large batch, and the accuracy given up.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import type { TrainerSpec } from "../../../api/v1alpha1/index.ts";
import type { Network } from "../contracts.ts";
import { parameterCount, teacherFormatOf } from "../models/index.ts";
import {
  onnxMacsPerSample,
  timeForward,
  timeOnnx,
  type Timing,
  type TimingRuns,
} from "../models/onnx/cost.ts";
import { exportOnnx, ONNX_INPUT, UnsupportedLayerError } from "../models/onnx/export.ts";
import { onnxTeacherFeed } from "../models/onnx/teacher.ts";
import type { Logger } from "./telemetry.ts";

export interface RuntimeTiming extends Timing {
  runtime: "tfjs" | "onnxruntime";
  /** tfjs: the run's backend (tensorflow, wasm, ...); onnxruntime: its execution provider. */
  backend: string;
  device: "cpu" | "gpu";
}

export interface ModelCost {
  parameters: number;
  /** Bytes on disk of the model as loaded or published, per format. */
  sizeBytes: { tfjs?: number; onnx?: number; savedmodel?: number };
  macsPerSample?: number;
  timings: RuntimeTiming[];
}

export interface CompressionReport {
  teacher: ModelCost;
  student: ModelCost;
  /** Teacher test accuracy minus student test accuracy (negative: the student is better). */
  accuracyGivenUp: number;
  parameterRatio: number;
  /** Teacher size / student size, each in its smallest published format. */
  sizeRatio?: number;
  macsRatio?: number;
  /** Teacher p50 / student p50 at batch 1 in the runtime where the student is fastest. */
  speedup?: { runtime: RuntimeTiming["runtime"]; value: number };
}

export interface CompressionInputs {
  spec: TrainerSpec;
  inputShape: [number, number, number];
  teacher: { network: Network; path: string; source: "trained" | "loaded"; accuracy: number };
  student: {
    network: Network;
    accuracy: number;
    tfjsPath?: string;
    onnxPath?: string;
    onnxBytes?: Uint8Array;
  };
  backend: { choice: string; device: "cpu" | "gpu" };
  log: Logger;
}

/** Bytes of a file, or of every file under a directory; undefined for a URL or a missing path. */
export function diskBytes(path: string | undefined): number | undefined {
  if (!path || /^https?:\/\//i.test(path)) return undefined;
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) return undefined;
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((n, entry) => n + (diskBytes(join(path, entry)) ?? 0), 0);
}

function timingRuns(spec: TrainerSpec): TimingRuns {
  const c = spec.output.compression;
  return {
    warmup: c.warmupRuns,
    latencyRuns: c.latencyRuns,
    throughputBatch: c.throughputBatch,
    throughputRuns: c.throughputRuns,
  };
}

async function timeTfjs(
  network: Network,
  shape: number[],
  runs: TimingRuns,
  backend: CompressionInputs["backend"],
) {
  const inputs = new Map<number, tf.Tensor>();
  const timing = await timeForward((n) => {
    let x = inputs.get(n);
    if (!x) inputs.set(n, (x = tf.zeros([n, ...shape])));
    tf.tidy(() => {
      const out = network.model.predict(x) as tf.Tensor[];
      out[0]!.dataSync();
    });
  }, runs);
  tf.dispose([...inputs.values()]);
  return {
    runtime: "tfjs",
    backend: backend.choice,
    device: backend.device,
    ...timing,
  } satisfies RuntimeTiming;
}

/** The teacher as ONNX: its own file when it is one, else our export of it (undefined when unsupported). */
async function teacherOnnx(inputs: CompressionInputs) {
  const { spec, teacher, inputShape } = inputs;
  const loaded = teacher.source === "loaded" ? teacherFormatOf(teacher.path, spec.teacher.format) : "tfjs";
  if (loaded === "onnx") {
    const feed = await onnxTeacherFeed(teacher.path, inputShape, {
      inputName: spec.teacher.inputName,
      outputName: spec.teacher.outputName,
      featureName: spec.teacher.featureLayer,
      inputLayout: spec.teacher.inputLayout,
    });
    return {
      bytes: feed.bytes,
      input: feed.plan.input,
      dims: feed.plan.dims,
      fixedBatch: feed.plan.fixedBatch,
      fileBytes: feed.fileBytes,
      own: true,
    };
  }
  if (loaded === "savedmodel") return undefined;
  try {
    return { bytes: exportOnnx(teacher.network.model), input: ONNX_INPUT, dims: [...inputShape], own: false };
  } catch (err) {
    if (err instanceof UnsupportedLayerError) return undefined;
    throw err;
  }
}

async function teacherCost(inputs: CompressionInputs, runs: TimingRuns): Promise<ModelCost> {
  const { spec, teacher, inputShape, backend } = inputs;
  const format = teacher.source === "loaded" ? teacherFormatOf(teacher.path, spec.teacher.format) : "tfjs";
  const onnx = await teacherOnnx(inputs);
  const timings: RuntimeTiming[] = [];
  // An ONNX or SavedModel teacher's tfjs forward is its own runtime inside a layer: timed as such only for savedmodel.
  if (format !== "onnx") {
    const t = await timeTfjs(teacher.network, inputShape, runs, backend);
    timings.push(format === "savedmodel" ? { ...t, backend: `savedmodel on ${backend.choice}` } : t);
  }
  const formats = spec.output.formats;
  if (onnx && (formats.includes("onnx") || onnx.own))
    timings.push({
      runtime: "onnxruntime",
      backend: "cpu",
      device: "cpu",
      ...(await timeOnnx(onnx.bytes, onnx.input, onnx.dims, runs, onnx.fixedBatch)),
    });
  const macs = onnx
    ? await onnxMacsPerSample(onnx.bytes, onnx.input, [onnx.fixedBatch ?? 1, ...onnx.dims])
    : undefined;
  return {
    parameters: parameterCount(teacher.network),
    sizeBytes: { [format]: diskBytes(teacher.path) },
    ...(macs !== undefined ? { macsPerSample: macs } : {}),
    timings,
  };
}

async function studentCost(inputs: CompressionInputs, runs: TimingRuns): Promise<ModelCost> {
  const { student, inputShape, backend } = inputs;
  const timings: RuntimeTiming[] = [];
  if (student.tfjsPath) timings.push(await timeTfjs(student.network, inputShape, runs, backend));
  let macs: number | undefined;
  const bytes = student.onnxBytes ?? safeExport(student.network);
  if (student.onnxBytes)
    timings.push({
      runtime: "onnxruntime",
      backend: "cpu",
      device: "cpu",
      ...(await timeOnnx(student.onnxBytes, ONNX_INPUT, [...inputShape], runs)),
    });
  if (bytes) macs = await onnxMacsPerSample(bytes, ONNX_INPUT, [1, ...inputShape]);
  return {
    parameters: parameterCount(student.network),
    sizeBytes: { tfjs: diskBytes(student.tfjsPath), onnx: diskBytes(student.onnxPath) },
    ...(macs !== undefined ? { macsPerSample: macs } : {}),
    timings,
  };
}

function safeExport(network: Network): Uint8Array | undefined {
  try {
    return exportOnnx(network.model);
  } catch {
    return undefined;
  }
}

const smallest = (sizes: ModelCost["sizeBytes"]) => {
  const known = Object.values(sizes).filter((s): s is number => s !== undefined && s > 0);
  return known.length ? Math.min(...known) : undefined;
};

/** The student's fastest batch-1 p50 against the teacher's p50 in the same runtime. */
function speedupOf(teacher: ModelCost, student: ModelCost): CompressionReport["speedup"] {
  const paired = student.timings
    .map((s) => ({ s, t: teacher.timings.find((x) => x.runtime === s.runtime) }))
    .filter((p) => p.t && p.s.p50Ms > 0)
    .sort((a, b) => a.s.p50Ms - b.s.p50Ms);
  const fastest = paired[0];
  return fastest ? { runtime: fastest.s.runtime, value: fastest.t!.p50Ms / fastest.s.p50Ms } : undefined;
}

export async function measureCompression(inputs: CompressionInputs): Promise<CompressionReport> {
  const runs = timingRuns(inputs.spec);
  const teacher = await teacherCost(inputs, runs);
  const student = await studentCost(inputs, runs);
  const [ts, ss] = [smallest(teacher.sizeBytes), smallest(student.sizeBytes)];
  const report: CompressionReport = {
    teacher,
    student,
    accuracyGivenUp: inputs.teacher.accuracy - inputs.student.accuracy,
    parameterRatio: student.parameters > 0 ? teacher.parameters / student.parameters : 0,
    ...(ts && ss ? { sizeRatio: ts / ss } : {}),
    ...(teacher.macsPerSample && student.macsPerSample
      ? { macsRatio: teacher.macsPerSample / student.macsPerSample }
      : {}),
    speedup: speedupOf(teacher, student),
  };
  inputs.log.info(describeCompression(report));
  return report;
}

export function describeCompression(r: CompressionReport): string {
  const parts = [`compression: ${r.parameterRatio.toFixed(1)}x fewer parameters`];
  if (r.sizeRatio) parts.push(`${r.sizeRatio.toFixed(1)}x smaller on disk`);
  if (r.macsRatio) parts.push(`${r.macsRatio.toFixed(1)}x fewer multiply-adds`);
  if (r.speedup) parts.push(`${r.speedup.value.toFixed(1)}x faster at batch 1 (${r.speedup.runtime})`);
  parts.push(`accuracy given up ${(r.accuracyGivenUp * 100).toFixed(2)} points`);
  return parts.join(", ");
}
