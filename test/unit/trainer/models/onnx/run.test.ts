// Whole runs with ONNX in and out: a run publishes a parity-checked ONNX student beside the tfjs one and a
// compression report (summary.json, termination result, metrics); a second run distils from the first run's
// teacher exported to ONNX, through ONNX Runtime, with the teacher output cache; output.formats; a student with
// a layer the exporter does not know still succeeds with tfjs only.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InferenceSession, Tensor } from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../../../trainer/src/config.ts";
import { runJob } from "../../../../../trainer/src/engine/run.ts";
import { loadLayersModel } from "../../../../../trainer/src/models/index.ts";
import { exportOnnx } from "../../../../../trainer/src/models/onnx/export.ts";
import {
  compressionHtml,
  compressionRows,
  formatCompressionTable,
} from "../../../../../trainer/src/report/compression.ts";
import { terminationResult } from "../../../../../trainer/src/telemetry/run-summary.ts";
import { tinyJob, writeTinyIdx } from "../../../../fixtures/tiny-run.ts";

async function run(out: string, data: string, patch: (spec: ReturnType<typeof tinyJob>["spec"]) => object) {
  const job = tinyJob(data, out, { epochs: 1 });
  const spec = patch(job.spec);
  const log: string[] = [];
  const result = await runJob({
    config: parseConfig({ ...job, spec }, "test", {}),
    backend: "cpu",
    log: { info: (m) => log.push(m), warn: (m) => log.push(`WARN ${m}`) },
  });
  return { ...result, log: log.join("\n") };
}

describe("ONNX in and out of a run", () => {
  const data = writeTinyIdx();

  it("publishes a parity-checked ONNX student and a compression report; distils from an ONNX teacher", async () => {
    const out = mkdtempSync(join(tmpdir(), "mokd-onnx-run-"));
    const first = await run(out, data, (spec) => spec);
    const { summary, outputPath } = first;
    const onnxPath = join(outputPath, "student.onnx");
    expect(summary.exports?.onnx).toMatchObject({ status: "written", path: onnxPath });
    expect(summary.exports?.onnx.parity).toMatchObject({
      passed: true,
      outsideTolerance: 0,
      top1Agreement: 1,
    });
    expect(existsSync(join(outputPath, "student", "model.json"))).toBe(true);
    // The published file runs on its own and gives the student's accuracy.
    const session = await InferenceSession.create(onnxPath);
    expect(session.inputNames).toEqual(["input"]);
    const probe = await session.run({ input: new Tensor("float32", new Float32Array(64), [1, 8, 8, 1]) });
    expect(probe["logits"]!.dims).toEqual([1, 4]);
    await session.release();
    expect(summary.exports?.onnx.parity?.onnxAccuracy).toBe(summary.student.accuracy);

    const c = summary.compression!;
    expect(c.teacher.parameters).toBe(summary.teacher.parameters);
    expect(c.student.parameters).toBe(summary.student.parameters);
    expect(c.student.sizeBytes.onnx).toBeGreaterThan(0);
    expect(c.student.sizeBytes.tfjs).toBeGreaterThan(0);
    expect(c.teacher.sizeBytes.tfjs).toBeGreaterThan(0);
    // mlp 64-16-16-4 teacher and 64-8-8-4 student: multiply-adds of their Gemms.
    expect(c.teacher.macsPerSample).toBe(64 * 16 + 16 * 16 + 16 * 4);
    expect(c.student.macsPerSample).toBe(64 * 8 + 8 * 8 + 8 * 4);
    for (const cost of [c.teacher, c.student]) {
      expect(cost.timings.map((t) => t.runtime).sort()).toEqual(["onnxruntime", "tfjs"]);
      for (const t of cost.timings) {
        expect(t.runs).toBe(5);
        expect(t.p95Ms).toBeGreaterThanOrEqual(t.p50Ms);
        expect(t.samplesPerSecond).toBeGreaterThan(0);
      }
    }
    expect(c.accuracyGivenUp).toBeCloseTo(summary.teacher.accuracy - summary.student.accuracy, 10);
    const result = terminationResult(summary);
    expect(result.onnxModelPath).toBe(onnxPath);
    expect(result.sizeRatio).toBeGreaterThan(1);
    expect(result.speedup).toBeGreaterThan(0);
    const table = formatCompressionTable(compressionRows(c, summary));
    expect(table).toMatch(/^parameters +[\d.]+ k +[\d.]+ +\d+\.\dx$/m);
    expect(table).toMatch(/^onnxruntime \(cpu, cpu\) batch-1 p50 +[\d.]+ ms +[\d.]+ ms/m);
    expect(table).toMatch(/^tfjs \(cpu, cpu\) throughput +\d+\/s @16/m);
    expect(compressionHtml(summary, (x) => x)).toMatch(/parity in ONNX Runtime on 64 test samples/);
    const written = JSON.parse(readFileSync(join(outputPath, "summary.json"), "utf8"));
    expect(written.compression.student.macsPerSample).toBe(c.student.macsPerSample);

    // The first run's teacher, exported to ONNX, is the second run's teacher.
    const teacherOnnx = join(out, "teacher.onnx");
    const trained = await loadLayersModel(join(outputPath, "teacher"));
    writeFileSync(teacherOnnx, exportOnnx(trained));
    const out2 = mkdtempSync(join(tmpdir(), "mokd-onnx-run-"));
    const second = await run(out2, data, (spec) => ({
      ...spec,
      teacher: { model: teacherOnnx },
      output: { ...(spec.output as object), formats: ["onnx"] },
    }));
    expect(second.log).toMatch(/teacher output cache: logits of/);
    // Same logits, same test accuracy as the tfjs teacher it came from.
    expect(second.summary.teacher.accuracy).toBe(summary.teacher.accuracy);
    expect(second.summary.teacher.parameters).toBe(summary.teacher.parameters);
    expect(second.summary.exports?.onnx.status).toBe("written");
    // formats: [onnx] and the export passed: no tfjs student.
    expect(existsSync(join(second.outputPath, "student"))).toBe(false);
    expect(second.summary.student.path).toBe(join(second.outputPath, "student.onnx"));
    // The ONNX teacher is timed in ONNX Runtime only (its tfjs forward is ONNX Runtime inside a layer).
    expect(second.summary.compression!.teacher.timings.map((t) => t.runtime)).toEqual(["onnxruntime"]);
    expect(second.summary.compression!.teacher.sizeBytes.onnx).toBeGreaterThan(0);
  });

  it("a student layer without an ONNX mapping: a warning naming it, tfjs only, the run succeeds", async () => {
    const out = mkdtempSync(join(tmpdir(), "mokd-onnx-run-"));
    // A student topology of our own with a Conv1D (tfjs model.json; weights are not read).
    const tf = await import("@tensorflow/tfjs");
    const input = tf.input({ shape: [8, 8, 1] });
    let y = tf.layers
      .reshape({ targetShape: [8, 8] })
      .apply(input) as import("@tensorflow/tfjs").SymbolicTensor;
    y = tf.layers.conv1d({ filters: 2, kernelSize: 3, name: "odd_conv1d" }).apply(y) as typeof y;
    y = tf.layers.flatten().apply(y) as typeof y;
    y = tf.layers.dense({ units: 8, activation: "relu" }).apply(y) as typeof y;
    const logits = tf.layers.dense({ units: 4 }).apply(y) as typeof y;
    const model = tf.model({ inputs: input, outputs: logits });
    const { saveNetwork } = await import("../../../../../trainer/src/models/index.ts");
    await saveNetwork({ model, featureDim: 8, numClasses: 4 }, join(out, "own-student"));
    const { summary, log } = await run(out, data, (spec) => ({
      ...spec,
      student: { model: join(out, "own-student", "model.json") },
      output: { ...(spec.output as object), compression: { enabled: false } },
    }));
    expect(summary.exports?.onnx.status).toBe("unsupported-layer");
    expect(log).toMatch(/WARN ONNX export skipped: layer odd_conv1d \(Conv1D\) has no ONNX mapping/);
    expect(existsSync(join(summary.student.path, "model.json"))).toBe(true);
    expect(summary.compression).toBeUndefined();
  });
});
