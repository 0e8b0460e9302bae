import { mkdtempSync, readFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { TrainerMetric } from "../../../../api/metrics.ts";
import { Result } from "../../../../api/v1alpha1/index.ts";
import type { StepRecord } from "../../../../trainer/src/contracts.ts";
import { pairStatistics } from "../../../../trainer/src/engine/student-step.ts";
import { TrainerMetrics } from "../../../../trainer/src/telemetry/metrics.ts";
import {
  failureMessage,
  terminationResult,
  writeTerminationMessage,
  type RunSummary,
} from "../../../../trainer/src/telemetry/run-summary.ts";

/** A port that was free a moment ago (port 0 means "disabled" to the trainer). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe("trainer metrics", () => {
  it("serves the shared metric names with job labels on /metrics", async () => {
    const m = new TrainerMetrics("fm", "ml");
    m.startStage("student", 3);
    m.step(
      {
        type: "step",
        stage: "student",
        epoch: 1,
        step: 0,
        losses: { task: 0.5, distillation: 0.25 },
        weights: { task: 0.6, distillation: 0.4 },
        cosines: { "task:distillation": -0.1 },
        normRatios: { "task:distillation": 2 },
        conflict: true,
        seconds: 0.01,
      },
      32,
    );
    m.testAccuracy("student", 0.9);
    const port = await freePort();
    const server = (await m.serve(port, "127.0.0.1"))!;
    try {
      const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(body).toContain(`${TrainerMetric.loss}{objective="task",mokd_job="fm",mokd_namespace="ml"} 0.5`);
      expect(body).toContain(`${TrainerMetric.gradientCosine}{pair="task:distillation",mokd_job="fm"`);
      expect(body).toMatch(new RegExp(`${TrainerMetric.conflictSteps}\\{[^}]*\\} 1`));
      expect(body).toMatch(new RegExp(`${TrainerMetric.samples}\\{stage="student"[^}]*\\} 32`));
      expect(body).toContain(`${TrainerMetric.accuracy}{stage="student",split="test"`);
      expect(body).toContain(`${TrainerMetric.epochsTotal}{stage="student"`);
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      server.close();
    }
  });

  it("counts measured steps (the conflict rate's denominator) apart from all steps", async () => {
    const m = new TrainerMetrics("fm", "ml");
    const base = {
      type: "step",
      stage: "student",
      epoch: 1,
      losses: {},
      weights: {},
      seconds: 0.01,
    } as const;
    // A single-backward strategy: gradients measured on steps 0 and 10 only; one of the two conflicted.
    for (let step = 0; step < 20; step++) {
      const measured = step % 10 === 0;
      m.step(
        { ...base, step, ...(measured ? { conflict: step === 0, cosines: {}, normRatios: {} } : {}) },
        8,
      );
    }
    const value = async (name: string) =>
      (await m.registry.getSingleMetric(name)!.get()).values.reduce((a, v) => a + v.value, 0);
    expect(await value(TrainerMetric.steps)).toBe(20);
    expect(await value(TrainerMetric.measuredSteps)).toBe(2);
    expect(await value(TrainerMetric.conflictSteps)).toBe(1);
  });

  it("exports norm ratios as larger / smaller, the same values the JSONL record carries", async () => {
    const m = new TrainerMetrics("fm", "ml");
    const names = ["task", "distillation", "feature"];
    const gauge = async (name: string) =>
      Object.fromEntries(
        (await m.registry.getSingleMetric(name)!.get()).values.map((v) => [v.labels.pair, v.value]),
      );
    // |g_task| = 1, |g_distillation| = 2, |g_feature| = 0 (a stationary objective).
    const gram = [
      [1, -0.5, 0],
      [-0.5, 4, 0],
      [0, 0, 0],
    ];
    const stats = pairStatistics(gram, names);
    const record = { type: "step", stage: "student", epoch: 1, step: 0, losses: {}, weights: {}, seconds: 0 };
    const jsonl = JSON.parse(JSON.stringify({ ...record, ...stats })) as typeof stats;
    m.step({ ...(record as StepRecord), ...stats }, 8);
    // The smaller norm over the larger would be 0.5; a zero norm has no finite ratio and is left out of both.
    expect(jsonl.normRatios).toEqual({ "task:distillation": 2 });
    expect(await gauge(TrainerMetric.gradientNormRatio)).toEqual(jsonl.normRatios);
    expect(await gauge(TrainerMetric.gradientCosine)).toEqual(jsonl.cosines);
    expect(jsonl.cosines["task:distillation"]).toBeCloseTo(-0.25);
    // The next measured step replaces the pairs: no stale series for a pair it leaves out.
    const next = pairStatistics(
      [
        [9, 0, 0],
        [0, 1, 0],
        [0, 0, 0],
      ],
      names,
    );
    m.step({ ...(record as StepRecord), step: 1, ...next }, 8);
    expect(await gauge(TrainerMetric.gradientNormRatio)).toEqual({ "task:distillation": 3 });
  });

  it("does not listen when the port is 0", async () => {
    expect(await new TrainerMetrics("a", "b").serve(0)).toBeUndefined();
  });
});

const summary: RunSummary = {
  job: { name: "fm", namespace: "ml" },
  strategy: "mokd",
  backend: "wasm",
  device: "cpu",
  teacher: { accuracy: 0.91234567, parameters: 10, path: "/t", source: "trained" },
  student: { accuracy: 0.85, parameters: 5, path: "/output/student" },
  bestEpoch: 3,
  bestValidationAccuracy: 0.86,
  conflictRate: 0.125,
  measuredSteps: 8,
  nonFiniteSteps: 0,
  steps: 8,
  durationSeconds: 12.345,
  samplesPerSecond: 100,
  epochs: [],
  exports: { onnx: { status: "written", path: "/output/student.onnx" } },
  compression: {
    teacher: { parameters: 10, sizeBytes: { tfjs: 4000 }, timings: [] },
    student: { parameters: 5, sizeBytes: { tfjs: 1500, onnx: 1000 }, timings: [] },
    accuracyGivenUp: 0.06,
    parameterRatio: 2,
    sizeRatio: 4,
    speedup: { runtime: "onnxruntime", value: 3.21 },
  },
};

describe("termination message", () => {
  it("has exactly the Result fields and fits 4 KiB", () => {
    const path = join(mkdtempSync(join(tmpdir(), "mokd-term-")), "termination-log");
    expect(writeTerminationMessage(terminationResult(summary), path)).toBe(true);
    const text = readFileSync(path, "utf8");
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(4096);
    const parsed = JSON.parse(text) as Record<string, unknown>;
    // The storage URIs only with object storage (test/unit/trainer/storage/run.test.ts).
    // Those of a study's variant (test/unit/trainer/study/), and epochsToTarget only with a target accuracy.
    const storageOnly = ["outputUri", "checkpointUri", "variant", "epochsToTarget"];
    expect(Object.keys(parsed).sort()).toEqual(
      Object.keys(Result.shape)
        .filter((k) => !storageOnly.includes(k))
        .sort(),
    );
    expect(Result.parse(parsed)).toMatchObject({
      studentAccuracy: 0.85,
      teacherAccuracy: 0.9123,
      bestEpoch: 3,
      onnxModelPath: "/output/student.onnx",
      sizeRatio: 4,
      speedup: 3.21,
    });
  });

  it("of a failure is {error, reason}, cut to 4 KiB with an ellipsis when the error is long", () => {
    expect(JSON.parse(failureMessage("BadData", "/data/x: truncated"))).toEqual({
      error: "/data/x: truncated",
      reason: "BadData",
    });
    // Multi-byte characters and JSON escapes take more bytes than characters.
    for (const unit of ["é", '"', "\n", "x", "\u0001"]) {
      const text = failureMessage("BadConfig", `invalid DistillationJob:${unit.repeat(9000)}`);
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(4096);
      expect(Buffer.byteLength(text)).toBeGreaterThan(4000);
      const parsed = JSON.parse(text) as { error: string; reason: string };
      expect(parsed.reason).toBe("BadConfig");
      expect(parsed.error).toMatch(/^invalid DistillationJob:.*…$/s);
    }
  });

  it("is skipped when the path is not writable", () => {
    expect(writeTerminationMessage(terminationResult(summary), "/nonexistent-dir/termination-log")).toBe(
      false,
    );
  });
});
