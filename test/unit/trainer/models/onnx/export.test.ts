// The ONNX student exporter (trainer/src/models/onnx/export.ts) round-tripped through real ONNX Runtime: for each
// supported layer type a small tfjs model with random weights (and batch-norm statistics) is exported and run,
// and its logits must match tfjs's; the parity check on a split; an unsupported layer names itself.
import * as tf from "@tensorflow/tfjs";
import { InferenceSession, Tensor } from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../../../../trainer/src/backend/index.ts";
import type { Split } from "../../../../../trainer/src/contracts.ts";
import { publishStudent } from "../../../../../trainer/src/engine/publish.ts";
import { buildNetwork } from "../../../../../trainer/src/models/index.ts";
import { exportOnnx, UnsupportedLayerError } from "../../../../../trainer/src/models/onnx/export.ts";
import { loadOnnxTeacher } from "../../../../../trainer/src/models/onnx/teacher.ts";
import { checkParity } from "../../../../../trainer/src/models/onnx/verify.ts";
import { onnx } from "../../../../../trainer/src/models/onnx/proto.ts";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../../../fixtures/dataset-files.ts";

/** float32, different summation order; outputs here are O(1)-O(10). */
const TOLERANCE = 1e-4;
const SHAPE: [number, number, number] = [6, 6, 2];

beforeAll(async () => {
  await selectBackend("cpu", () => {});
});

/** Random weights, including batch-norm moving statistics (fresh layers have mean 0, variance 1). */
function randomize(model: tf.LayersModel, seed: number): void {
  for (const layer of model.layers) {
    const weights = layer.getWeights();
    if (weights.length === 0) continue;
    const fresh = weights.map((w, i) =>
      layer.weights[i]!.originalName.endsWith("moving_variance")
        ? tf.randomUniform(w.shape, 0.5, 2, "float32", seed + i)
        : tf.randomNormal(w.shape, 0, 0.5, "float32", seed + i),
    );
    layer.setWeights(fresh);
    tf.dispose([...fresh]);
  }
}

async function roundTrip(model: tf.LayersModel, shape: number[] = SHAPE): Promise<number> {
  randomize(model, 11);
  const bytes = exportOnnx(model);
  const session = await InferenceSession.create(bytes);
  const xs = tf.randomNormal([3, ...shape], 0, 1, "float32", 5);
  const predicted = model.predict(xs);
  const expected = (Array.isArray(predicted) ? predicted[0]! : predicted).dataSync();
  const out = await session.run({ input: new Tensor("float32", xs.dataSync() as Float32Array, xs.shape) });
  const actual = out["logits"]!.data as Float32Array;
  await session.release();
  xs.dispose();
  expect(actual.length).toBe(expected.length);
  return Math.max(...Array.from(expected, (e, i) => Math.abs(e - actual[i]!)));
}

/** A model of `body` applied to an input of `shape`, ending in a Dense of 4 logits (flattened first). */
function modelOf(body: (x: tf.SymbolicTensor) => tf.SymbolicTensor, shape: number[] = SHAPE): tf.LayersModel {
  const input = tf.input({ shape });
  let y = body(input);
  if (y.shape.length > 2) y = tf.layers.flatten().apply(y) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: 4 }).apply(y) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) =>
  layer.apply(x) as tf.SymbolicTensor;

const CASES: Record<string, (x: tf.SymbolicTensor) => tf.SymbolicTensor> = {
  "Dense + relu (rank 2)": (x) =>
    apply(tf.layers.dense({ units: 5, activation: "relu" }), apply(tf.layers.flatten(), x)),
  "Dense on a rank-4 value (last axis)": (x) => apply(tf.layers.dense({ units: 3 }), x),
  "Conv2D same, stride 2": (x) =>
    apply(
      tf.layers.conv2d({ filters: 3, kernelSize: 3, strides: 2, padding: "same", activation: "relu" }),
      x,
    ),
  "Conv2D valid, dilation 2, no bias": (x) =>
    apply(tf.layers.conv2d({ filters: 3, kernelSize: 2, dilationRate: 2, useBias: false }), x),
  "DepthwiseConv2D, multiplier 2": (x) =>
    apply(tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: "same" }), x),
  "BatchNormalization (rank 4 and rank 2)": (x) =>
    apply(
      tf.layers.batchNormalization(),
      apply(tf.layers.flatten(), apply(tf.layers.batchNormalization({ epsilon: 0.01 }), x)),
    ),
  "MaxPooling2D valid / AveragePooling2D same": (x) =>
    apply(
      tf.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: "same" }),
      apply(tf.layers.maxPooling2d({ poolSize: 2 }), x),
    ),
  "GlobalAveragePooling2D / GlobalMaxPooling2D": (x) =>
    apply(tf.layers.concatenate(), [
      apply(tf.layers.globalAveragePooling2d({}), x),
      apply(tf.layers.globalMaxPooling2d({}), x),
    ]),
  "Flatten of an NCHW conv output (feature order as tfjs)": (x) =>
    apply(tf.layers.flatten(), apply(tf.layers.conv2d({ filters: 3, kernelSize: 1 }), x)),
  "Dropout (identity at inference)": (x) => apply(tf.layers.dropout({ rate: 0.5 }), x),
  "activations: sigmoid, tanh, elu, selu, softplus, relu6, LeakyReLU, ReLU(max)": (x) => {
    let y = x;
    for (const activation of ["sigmoid", "tanh", "elu", "selu", "softplus", "relu6"] as const)
      y = apply(tf.layers.activation({ activation }), apply(tf.layers.dense({ units: 2 }), y));
    y = apply(tf.layers.leakyReLU({ alpha: 0.2 }), y);
    return apply(tf.layers.reLU({ maxValue: 0.5 }), y);
  },
  "Add and Concatenate (channels, across layouts)": (x) => {
    const conv = apply(tf.layers.conv2d({ filters: 2, kernelSize: 3, padding: "same" }), x);
    const sum = apply(tf.layers.add(), [conv, x]);
    return apply(tf.layers.concatenate({ axis: -1 }), [sum, x]);
  },
  Reshape: (x) => apply(tf.layers.reshape({ targetShape: [12, 6] }), x),
  "Softmax layer / softmax activation": (x) =>
    apply(
      tf.layers.softmax(),
      apply(tf.layers.dense({ units: 3, activation: "softmax" }), apply(tf.layers.flatten(), x)),
    ),
};

describe("ONNX export round trip through ONNX Runtime", () => {
  for (const [name, body] of Object.entries(CASES)) {
    it(name, async () => {
      const worst = await roundTrip(modelOf(body));
      expect(worst).toBeLessThan(TOLERANCE);
    });
  }

  it("a flat (MLP) input", async () => {
    const model = modelOf((x) => apply(tf.layers.dense({ units: 6, activation: "relu" }), x), [12]);
    expect(await roundTrip(model, [12])).toBeLessThan(TOLERANCE);
  });

  it("the built-in cnn, mlp and resnet students, with their [logits, features] outputs", async () => {
    for (const [architecture, shape] of [
      ["cnn", [8, 8, 1]],
      ["mlp", [8, 8, 1]],
      ["resnet", [8, 8, 3]],
    ] as const) {
      const net = buildNetwork(
        { architecture, width: 4, depth: 1, hiddenUnits: 8, dropout: 0.1 },
        [...shape],
        5,
        3,
      );
      expect(await roundTrip(net.model, [...shape]), architecture).toBeLessThan(TOLERANCE);
    }
  });

  it("writes opset 17, an NHWC input with a dynamic batch and one logits output", () => {
    const model = onnx.ModelProto.decode(exportOnnx(modelOf((x) => x)));
    expect(Number(model.opsetImport[0]!.version)).toBe(17);
    const dims = model.graph?.input?.[0]?.type?.tensorType?.shape?.dim ?? [];
    expect(dims.map((d) => d.dimParam || Number(d.dimValue))).toEqual(["N", 6, 6, 2]);
    expect(model.graph?.output?.map((o) => o.name)).toEqual(["logits"]);
  });

  it("an NCHW input (as PyTorch exports take it) loads back as a teacher through the NCHW path", async () => {
    const net = buildNetwork(
      { architecture: "cnn", width: 4, depth: 2, hiddenUnits: 8, dropout: 0 },
      [8, 8, 1],
      3,
      1,
    );
    const file = join(tempDir("mokd-onnx-"), "nchw.onnx");
    writeFileSync(file, exportOnnx(net.model, { inputLayout: "nchw" }));
    const dims =
      onnx.ModelProto.decode(readFileSync(file)).graph?.input?.[0]?.type?.tensorType?.shape?.dim ?? [];
    expect(dims.map((d) => d.dimParam || Number(d.dimValue))).toEqual(["N", 1, 8, 8]);
    const teacher = await loadOnnxTeacher(file, [8, 8, 1]);
    const xs = tf.randomNormal([3, 8, 8, 1], 0, 1, "float32", 4);
    const a = (net.model.predict(xs) as tf.Tensor[])[0]!.dataSync();
    const b = (teacher.model.predict(xs) as tf.Tensor[])[0]!.dataSync();
    expect(Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!)))).toBeLessThan(TOLERANCE);
    teacher.model.dispose();
  });

  it("an unsupported layer names itself", () => {
    const input = tf.input({ shape: [5, 3] });
    const conv = tf.layers.conv1d({ filters: 2, kernelSize: 2, name: "my_conv1d" }).apply(input);
    const out = tf.layers.dense({ units: 2 }).apply(tf.layers.flatten().apply(conv)) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    expect(() => exportOnnx(model)).toThrow(UnsupportedLayerError);
    expect(() => exportOnnx(model)).toThrow(/layer my_conv1d \(Conv1D\) has no ONNX mapping/);
  });
});

describe("parity check", () => {
  const split = (n: number, classes: number): Split => ({
    size: n,
    augments: false,
    *batches({ batchSize }) {
      for (let start = 0; start < n; start += batchSize) {
        const rows = Math.min(batchSize, n - start);
        const xs = tf.randomNormal([rows, 8, 8, 1], 0, 1, "float32", start) as tf.Tensor4D;
        const ys = tf.tensor1d(
          Array.from({ length: rows }, (_, i) => (start + i) % classes),
          "int32",
        );
        yield { xs, ys, indices: Int32Array.from({ length: rows }, (_, i) => start + i) };
      }
    },
  });

  it("passes for a faithful export and fails when the logits differ", async () => {
    const net = buildNetwork(
      { architecture: "cnn", width: 4, depth: 1, hiddenUnits: 8, dropout: 0 },
      [8, 8, 1],
      3,
      1,
    );
    const good = await checkParity(exportOnnx(net.model), net, split(40, 3), 16);
    expect(good).toMatchObject({ samples: 40, outsideTolerance: 0, top1Agreement: 1, passed: true });
    expect(good.onnxAccuracy).toBe(good.tfjsAccuracy);
    // Another network's weights: the same graph, other logits.
    const other = buildNetwork(
      { architecture: "cnn", width: 4, depth: 1, hiddenUnits: 8, dropout: 0 },
      [8, 8, 1],
      3,
      2,
    );
    const bad = await checkParity(exportOnnx(other.model), net, split(40, 3), 16);
    expect(bad.passed).toBe(false);
    expect(bad.outsideTolerance).toBeGreaterThan(0);
  });

  it("an exported student loads back as an ONNX teacher with the same logits", async () => {
    const net = buildNetwork(
      { architecture: "cnn", width: 4, depth: 1, hiddenUnits: 8, dropout: 0 },
      [8, 8, 1],
      3,
      1,
    );
    const file = join(tempDir("mokd-onnx-"), "student.onnx");
    writeFileSync(file, exportOnnx(net.model));
    const teacher = await loadOnnxTeacher(file, [8, 8, 1]);
    const xs = tf.randomNormal([4, 8, 8, 1], 0, 1, "float32", 3);
    const a = (net.model.predict(xs) as tf.Tensor[])[0]!.dataSync();
    const b = (teacher.model.predict(xs) as tf.Tensor[])[0]!.dataSync();
    expect(Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!)))).toBeLessThan(TOLERANCE);
    // The default features are the input of the logits' Gemm: the student's hidden layer.
    expect(teacher.featureDim).toBe(8);
    teacher.model.dispose();
  });
});

describe("publishing the student", () => {
  const images = (n: number, value?: number): Split => ({
    size: n,
    augments: false,
    *batches({ batchSize }) {
      for (let start = 0; start < n; start += batchSize) {
        const rows = Math.min(batchSize, n - start);
        const xs = (
          value === undefined
            ? tf.randomNormal([rows, 8, 8, 1], 0, 1, "float32", start)
            : tf.fill([rows, 8, 8, 1], value)
        ) as tf.Tensor4D;
        const ys = tf.tensor1d(
          Array.from({ length: rows }, (_, i) => (start + i) % 3),
          "int32",
        );
        yield { xs, ys, indices: Int32Array.from({ length: rows }, (_, i) => start + i) };
      }
    },
  });
  const normalization = { kind: "unit" as const, mean: [0], std: [1] };
  const net = () =>
    buildNetwork({ architecture: "cnn", width: 4, depth: 1, hiddenUnits: 8, dropout: 0 }, [8, 8, 1], 3, 1);

  it("writes student.onnx after the check, and no tfjs model when only onnx is asked for", async () => {
    const dir = tempDir("mokd-publish-");
    const warnings: string[] = [];
    const log = { info: () => {}, warn: (m: string) => warnings.push(m) };
    const published = await publishStudent(net(), normalization, images(20), dir, ["onnx"], log);
    expect(published.onnx).toMatchObject({ status: "written", path: join(dir, "student.onnx") });
    expect(published.tfjsPath).toBeUndefined();
    expect(existsSync(join(dir, "student"))).toBe(false);
    expect(warnings).toEqual([]);
  });

  it("a failed parity check (here: non-finite logits) is loud, writes no student.onnx and writes tfjs anyway", async () => {
    const dir = tempDir("mokd-publish-");
    const warnings: string[] = [];
    const log = { info: () => {}, warn: (m: string) => warnings.push(m) };
    const published = await publishStudent(net(), normalization, images(20, Number.NaN), dir, ["onnx"], log);
    expect(published.onnx.status).toBe("parity-failed");
    expect(published.onnx.parity?.passed).toBe(false);
    expect(existsSync(join(dir, "student.onnx"))).toBe(false);
    expect(published.tfjsPath).toBe(join(dir, "student"));
    expect(existsSync(join(dir, "student", "model.json"))).toBe(true);
    expect(warnings.join("\n")).toMatch(/^ONNX EXPORT FAILED its parity check in ONNX Runtime: /);
  });
});
