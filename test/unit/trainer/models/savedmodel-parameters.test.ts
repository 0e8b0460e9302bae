// A SavedModel teacher's parameter count (trainer/src/models/savedmodel-parameters.ts): its weights are
// TensorFlow's, so tfjs's countParams() says 0; the count read from saved_model.pb's serve graph must equal the
// same network's as ONNX (trainer/test-fixtures/onnx: generate.py and generate_savedmodel.py share weights:
// conv 3x3x1x4 + 4, dense 4x3 + 3 = 55).
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { loadedNativePackage } from "../../../../trainer/src/backend/native.ts";
import { parameterCount } from "../../../../trainer/src/models/build.ts";
import { loadTeacherOfAnyFormat } from "../../../../trainer/src/models/index.ts";
import { savedModelParameterCount } from "../../../../trainer/src/models/savedmodel-parameters.ts";
import { tempDir } from "../../../fixtures/dataset-files.ts";

const FIXTURES = join(import.meta.dirname, "../../../../trainer/test-fixtures/onnx");
const SHAPE = [8, 8, 1];

beforeAll(async () => {
  await selectBackend("tensorflow", () => {});
});

describe("the parameters of a SavedModel teacher", () => {
  it("are counted from its variables, equal to the same network's as ONNX (not 0)", async () => {
    const saved = await loadTeacherOfAnyFormat({ model: join(FIXTURES, "tiny-cnn-savedmodel") }, SHAPE);
    const onnx = await loadTeacherOfAnyFormat({ model: join(FIXTURES, "tiny-cnn-nchw.onnx") }, SHAPE);
    expect(saved.model.countParams()).toBe(0); // what the report used to show
    expect(parameterCount(saved)).toBe(55);
    expect(parameterCount(saved)).toBe(parameterCount(onnx));
    saved.model.dispose();
    onnx.model.dispose();
  });

  it("are unknown (undefined), not 0, for a directory without a readable saved_model.pb", () => {
    expect(savedModelParameterCount(tempDir("mokd-no-savedmodel-"), loadedNativePackage()!)).toBeUndefined();
  });
});
