// An ONNX teacher through ONNX Runtime (trainer/src/models/onnx/teacher.ts), on the fixtures made by
// trainer/test-fixtures/onnx/generate.py: logits and features against the generator's numpy reference, NCHW with
// a dynamic batch and NHWC with a fixed batch of 2 (the last batch padded), a softmax output undone, named and
// intermediate feature values, the teacher output cache, and each bad input ending as a DataError naming the file.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { TrainerSpec } from "../../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../../trainer/src/backend/index.ts";
import type { Batch, Split } from "../../../../../trainer/src/contracts.ts";
import { DataError } from "../../../../../trainer/src/data/errors.ts";
import { evaluateAccuracy, predict } from "../../../../../trainer/src/engine/evaluate.ts";
import { TeacherOutputCache } from "../../../../../trainer/src/engine/teacher-cache.ts";
import {
  loadTeacherOfAnyFormat,
  parameterCount,
  teacherFormatOf,
} from "../../../../../trainer/src/models/index.ts";
import { chooseLayout, loadOnnxTeacher } from "../../../../../trainer/src/models/onnx/teacher.ts";
import { tempDir } from "../../../../fixtures/dataset-files.ts";

const FIXTURES = join(import.meta.dirname, "../../../../../trainer/test-fixtures/onnx");
const NCHW = join(FIXTURES, "tiny-cnn-nchw.onnx");
const NHWC_B2 = join(FIXTURES, "tiny-cnn-nhwc-b2.onnx");
const reference = JSON.parse(readFileSync(join(FIXTURES, "reference.json"), "utf8")) as {
  inputShape: [number, number, number];
  inputs: number[];
  logits: number[];
  features: number[];
  numClasses: number;
  featureDim: number;
};
const SAMPLES = reference.inputs.length / 64;
/** float32 inference vs the float64 numpy reference: values are O(1), float32 error ~1e-7 relative. */
const TOLERANCE = 1e-5;

const inputs = () => tf.tensor4d(reference.inputs, [SAMPLES, ...reference.inputShape]);

function expectClose(actual: ArrayLike<number>, expected: number[]) {
  expect(actual.length).toBe(expected.length);
  const worst = Math.max(...expected.map((e, i) => Math.abs(e - actual[i]!)));
  expect(worst).toBeLessThan(TOLERANCE);
}

beforeAll(async () => {
  await selectBackend("cpu", () => {});
});

describe("ONNX teacher", () => {
  it("NCHW, dynamic batch: logits and features match the numpy reference", async () => {
    const teacher = await loadOnnxTeacher(NCHW, reference.inputShape);
    expect(teacher.numClasses).toBe(3);
    expect(teacher.featureDim).toBe(4);
    // conv 4x1x3x3 + 4, fc 3x4 + 3
    expect(parameterCount(teacher)).toBe(36 + 4 + 12 + 3);
    const xs = inputs();
    const [logits, features] = predict(teacher, xs);
    expectClose(logits.dataSync(), reference.logits);
    expectClose(features.dataSync(), reference.features);
    tf.dispose([xs, logits, features]);
    teacher.model.dispose();
  });

  it("NHWC, fixed batch 2 with an odd sample count; a softmax first output is undone to its logits", async () => {
    const teacher = await loadTeacherOfAnyFormat({ model: NHWC_B2 }, reference.inputShape);
    const xs = inputs();
    const [logits, features] = predict(teacher, xs);
    expect(logits.shape).toEqual([SAMPLES, 3]);
    expectClose(logits.dataSync(), reference.logits);
    expectClose(features.dataSync(), reference.features);
    tf.dispose([xs, logits, features]);
    teacher.model.dispose();
  });

  it("reads a named output, and an intermediate value as the features (flattened)", async () => {
    const named = await loadOnnxTeacher(NHWC_B2, reference.inputShape, {
      outputName: "logits",
      featureName: "features",
    });
    const xs = inputs();
    const [logits] = predict(named, xs);
    expectClose(logits.dataSync(), reference.logits);
    const pooled = await loadOnnxTeacher(NCHW, reference.inputShape, { featureName: "p1" });
    expect(pooled.featureDim).toBe(4 * 4 * 4);
    const [, p1] = predict(pooled, xs);
    // The global average of the pooled map is the features.
    const mean = tf.tidy(() => p1.reshape([SAMPLES, 4, 16]).mean(2));
    expectClose(mean.dataSync(), reference.features);
    tf.dispose([xs, logits, p1, mean]);
    named.model.dispose();
    pooled.model.dispose();
  });

  it("fills the teacher output cache in one pass with the live teacher's outputs; evaluates", async () => {
    const teacher = await loadOnnxTeacher(NCHW, reference.inputShape);
    const labels = [0, 1, 2, 0, 1];
    const split: Split = {
      size: SAMPLES,
      augments: false,
      *batches({ batchSize }) {
        for (let start = 0; start < SAMPLES; start += batchSize) {
          const end = Math.min(SAMPLES, start + batchSize);
          const indices = Int32Array.from({ length: end - start }, (_, i) => start + i);
          const xs = tf.tidy(() => inputs().slice(start, end - start)) as tf.Tensor4D;
          yield { xs, ys: tf.tensor1d(labels.slice(start, end), "int32"), indices } satisfies Batch;
        }
      },
    };
    const cache = (await TeacherOutputCache.fill(teacher, split, true, 2))!;
    const all = { xs: inputs(), ys: tf.tensor1d(labels, "int32"), indices: Int32Array.from([0, 1, 2, 3, 4]) };
    const cached = cache.outputs(all);
    expectClose(cached.teacherLogits.dataSync(), reference.logits);
    expectClose(cached.teacherFeatures!.dataSync(), reference.features);
    const accuracy = evaluateAccuracy(teacher, split, 3);
    const argmax = [0, 1, 2, 3, 4].map((i) => {
      const row = reference.logits.slice(i * 3, i * 3 + 3);
      return row.indexOf(Math.max(...row));
    });
    expect(accuracy).toBeCloseTo(argmax.filter((a, i) => a === labels[i]).length / SAMPLES, 10);
    tf.dispose([all.xs, all.ys, cached.teacherLogits, cached.teacherFeatures!]);
    teacher.model.dispose();
  });

  it("infers the format from the path", () => {
    expect(teacherFormatOf(NCHW)).toBe("onnx");
    expect(teacherFormatOf("https://models.example/t.onnx?sig=1")).toBe("onnx");
    expect(teacherFormatOf("/m/saved_model.pb")).toBe("savedmodel");
    expect(teacherFormatOf(FIXTURES)).toBe("tfjs");
    expect(teacherFormatOf("/m/model.json")).toBe("tfjs");
    expect(teacherFormatOf("/m/teacher.bin", "onnx")).toBe("onnx");
  });

  it("chooses NCHW or NHWC from the input's dims, flattened for a rank-2 input", () => {
    expect(chooseLayout([1, 8, 8], [8, 8, 1], "auto")).toBe("nchw");
    expect(chooseLayout([8, 8, 1], [8, 8, 1], "auto")).toBe("nhwc");
    expect(chooseLayout([-1, -1, -1], [8, 8, 3], "auto")).toBe("nchw");
    expect(chooseLayout([-1, -1, -1], [8, 8, 3], "nhwc")).toBe("nhwc");
    expect(chooseLayout([64], [8, 8, 1], "auto")).toBe("flat");
    expect(chooseLayout([3, 8, 8], [8, 8, 1], "auto")).toBeUndefined();
  });
});

describe("ONNX teacher errors: a DataError (exit 3) naming the file and what was expected", () => {
  it("wrong input shape", async () => {
    const error = loadOnnxTeacher(NCHW, [28, 28, 1]);
    await expect(error).rejects.toThrow(DataError);
    await expect(error).rejects.toThrow(
      `${NCHW}: input "input" has shape [N, 1, 8, 8]; the data is 28x28x1, so expected [N, 1, 28, 28] (NCHW) or [N, 28, 28, 1] (NHWC)`,
    );
    await expect(loadOnnxTeacher(NCHW, [8, 8, 1], { inputLayout: "nhwc" })).rejects.toThrow(
      /expected \[N, 8, 8, 1\] \(NHWC\)/,
    );
  });

  it("missing output, feature value or input name", async () => {
    await expect(loadOnnxTeacher(NCHW, [8, 8, 1], { outputName: "scores" })).rejects.toThrow(
      `${NCHW}: no graph output named "scores" for the logits (outputs: logits, features; teacher.outputName)`,
    );
    await expect(loadOnnxTeacher(NCHW, [8, 8, 1], { featureName: "nope" })).rejects.toThrow(
      /no graph value named "nope" for the features/,
    );
    await expect(loadOnnxTeacher(NCHW, [8, 8, 1], { inputName: "x" })).rejects.toThrow(
      /no graph input named "x" \(inputs: input; teacher.inputName\)/,
    );
  });

  it("corrupt, truncated or missing file", async () => {
    const dir = tempDir("mokd-onnx-");
    const bytes = readFileSync(NCHW);
    const truncated = join(dir, "truncated.onnx");
    writeFileSync(truncated, bytes.subarray(0, 200));
    await expect(loadOnnxTeacher(truncated, [8, 8, 1])).rejects.toThrow(DataError);
    await expect(loadOnnxTeacher(truncated, [8, 8, 1])).rejects.toThrow(`${truncated}: not an ONNX model`);
    const garbage = join(dir, "garbage.onnx");
    writeFileSync(garbage, "this is not a model");
    await expect(loadOnnxTeacher(garbage, [8, 8, 1])).rejects.toThrow(new RegExp(`^${garbage}: `));
    const missing = join(dir, "missing.onnx");
    await expect(loadOnnxTeacher(missing, [8, 8, 1])).rejects.toThrow(
      `${missing}: cannot read the ONNX teacher`,
    );
  });
});

describe("spec fields", () => {
  const issues = (spec: unknown) =>
    (TrainerSpec.safeParse(spec).error?.issues ?? []).map((i) => `${i.path.join(".")}: ${i.message}`);

  it("defaults: student in both formats, compression on with 200 timed runs, auto input layout", () => {
    const spec = TrainerSpec.parse({});
    expect(spec.output.formats).toEqual(["tfjs", "onnx"]);
    expect(spec.output.compression).toMatchObject({ enabled: true, latencyRuns: 200, throughputBatch: 256 });
    expect(spec.teacher.inputLayout).toBe("auto");
    expect(spec.teacher.format).toBeUndefined();
  });

  it("refuses a teacher format without a model, unknown or repeated output formats", () => {
    expect(issues({ teacher: { format: "onnx" } })).toEqual([
      "teacher.format: format applies to a loaded teacher: set teacher.model too",
    ]);
    expect(issues({ teacher: { model: "t.pt", format: "torchscript" } })[0]).toMatch(/^teacher.format: /);
    expect(issues({ output: { formats: ["onnx", "onnx"] } })).toEqual([
      "output.formats: formats must not repeat",
    ]);
    expect(issues({ output: { formats: ["tflite"] } })[0]).toMatch(/^output.formats.0: /);
  });
});
