// Which ONNX Runtime execution providers the ONNX teacher asks for (trainer/src/models/onnx/runtime.ts): CUDA
// first on the GPU backend, the CPU otherwise; CUDA unavailable (as here: no GPU, and the provider libraries are
// in the GPU image only) falls back to the CPU with a warning that names ONNX Runtime's reason. What this cannot
// show: the teacher running on CUDA (no GPU here; docs/gpu.md).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SyncOnnxSession, teacherExecutionProviders } from "../../../../trainer/src/models/onnx/runtime.ts";

const FIXTURES = join(import.meta.dirname, "../../../../trainer/test-fixtures/onnx");
const MODEL = readFileSync(join(FIXTURES, "tiny-cnn-nchw.onnx"));

function logitsOf(session: SyncOnnxSession): Float32Array {
  const input = session.inputs[0]!;
  const dims = input.shape.map((d) => (d < 0 ? 2 : d));
  const data = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i));
  const output = session.outputs[0]!.name;
  return session.run(input.name, data, dims, [output]).get(output)!.data;
}

describe("the ONNX teacher's execution providers", () => {
  it.each([
    ["tensorflow-gpu", ["cuda", "cpu"]],
    ["tensorflow", ["cpu"]],
    [undefined, ["cpu"]],
  ])("on backend %s: %j", (backend, providers) => {
    expect(teacherExecutionProviders(backend)).toEqual(providers);
  });

  it("falls back from CUDA to the CPU with a warning naming why, and computes the same logits", () => {
    const warnings: string[] = [];
    const asked = new SyncOnnxSession(MODEL, ["cuda", "cpu"], (m) => warnings.push(m));
    const cpu = new SyncOnnxSession(MODEL);
    try {
      expect(asked.executionProviders).toEqual(["cpu"]);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(
        /^ONNX Runtime: the CUDA execution provider is unavailable \(.*Cuda.*\); the ONNX teacher runs on the CPU$/,
      );
      expect(logitsOf(asked)).toEqual(logitsOf(cpu));
    } finally {
      asked.release();
      cpu.release();
    }
  });

  it("still fails on a model ONNX Runtime cannot load (the fallback hides no bad model)", () => {
    const warnings: string[] = [];
    expect(
      () => new SyncOnnxSession(new Uint8Array([1, 2, 3]), ["cuda", "cpu"], (m) => warnings.push(m)),
    ).toThrow();
    expect(warnings).toEqual([]);
  });
});
