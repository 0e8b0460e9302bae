// A TensorFlow SavedModel teacher through tfjs-node's SavedModel loader on the native backend
// (trainer/src/models/savedmodel.ts), on the fixture of trainer/test-fixtures/onnx/generate_savedmodel.py: the
// same network and weights as the ONNX fixtures, so reference.json holds its expected outputs.
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { DataError } from "../../../../trainer/src/data/errors.ts";
import { predict } from "../../../../trainer/src/engine/evaluate.ts";
import { loadTeacherOfAnyFormat, teacherFormatOf } from "../../../../trainer/src/models/index.ts";
import { tempDir } from "../../../fixtures/dataset-files.ts";

const FIXTURES = join(import.meta.dirname, "../../../../trainer/test-fixtures/onnx");
const SAVED = join(FIXTURES, "tiny-cnn-savedmodel");
const reference = JSON.parse(readFileSync(join(FIXTURES, "reference.json"), "utf8")) as {
  inputShape: [number, number, number];
  inputs: number[];
  logits: number[];
  features: number[];
};
const SAMPLES = reference.inputs.length / 64;
const TOLERANCE = 1e-5;

function expectClose(actual: ArrayLike<number>, expected: number[]) {
  expect(actual.length).toBe(expected.length);
  expect(Math.max(...expected.map((e, i) => Math.abs(e - actual[i]!)))).toBeLessThan(TOLERANCE);
}

beforeAll(async () => {
  await selectBackend("tensorflow", () => {});
});

describe("SavedModel teacher (native TensorFlow)", () => {
  it("is recognised by its saved_model.pb and matches the reference logits and features", async () => {
    expect(teacherFormatOf(SAVED)).toBe("savedmodel");
    const teacher = await loadTeacherOfAnyFormat(
      { model: SAVED, outputName: "logits", featureLayer: "features" },
      reference.inputShape,
    );
    expect([teacher.numClasses, teacher.featureDim]).toEqual([3, 4]);
    const xs = tf.tensor4d(reference.inputs, [SAMPLES, ...reference.inputShape]);
    const [logits, features] = predict(teacher, xs);
    expectClose(logits.dataSync(), reference.logits);
    expectClose(features.dataSync(), reference.features);
    tf.dispose([xs, logits, features]);
    teacher.model.dispose();
  });

  it("a wrong input shape, a missing signature or output, a corrupt model: DataError naming the directory", async () => {
    const load = (
      source: Partial<Parameters<typeof loadTeacherOfAnyFormat>[0]>,
      shape = reference.inputShape,
    ) => loadTeacherOfAnyFormat({ model: SAVED, ...source }, shape);
    await expect(load({}, [28, 28, 1])).rejects.toThrow(
      `${SAVED}: input "image" is float32 [-1, 8, 8, 1]; the data needs float32 [N, 28, 28, 1] (NHWC)`,
    );
    await expect(load({ signature: "predict" })).rejects.toThrow(/no signature "predict" \(signatures: /);
    await expect(load({ outputName: "scores" })).rejects.toThrow(
      /no output "scores" for the logits \(outputs: (features, logits|logits, features)\)/,
    );
    const corrupt = join(tempDir("mokd-savedmodel-"), "model");
    cpSync(SAVED, corrupt, { recursive: true });
    const pb = join(corrupt, "saved_model.pb");
    const bytes = readFileSync(pb);
    writeFileSync(pb, bytes.subarray(0, 100));
    await expect(loadTeacherOfAnyFormat({ model: corrupt }, reference.inputShape)).rejects.toThrow(DataError);
    await expect(loadTeacherOfAnyFormat({ model: corrupt }, reference.inputShape)).rejects.toThrow(
      new RegExp(`^${corrupt}: `),
    );
  });
});
