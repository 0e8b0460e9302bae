import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { TrainerSpec } from "../../../../api/v1alpha1/index.ts";
import type { StepRecord } from "../../../../trainer/src/contracts.ts";
import { median, objectiveFigures, pairFigures } from "../../../../trainer/src/report/figures.ts";
import { renderReport } from "../../../../trainer/src/report/html.ts";
import { formatTable, type TableRow } from "../../../../trainer/src/report/table.ts";

describe("results table", () => {
  it("aligns model names left and numbers right under a header rule", () => {
    const rows: TableRow[] = [
      { model: "teacher (trained)", parameters: "105866", testAccuracy: "84.36%", bestEpoch: "" },
      { model: "student: mokd", parameters: "52650", testAccuracy: "84.86%", bestEpoch: "4" },
    ];
    expect(formatTable(rows).split("\n")).toEqual([
      "model              parameters  test accuracy  best epoch",
      "-----------------  ----------  -------------  ----------",
      "teacher (trained)      105866         84.36%            ",
      "student: mokd           52650         84.86%           4",
    ]);
  });
});

describe("HTML report: weights beside step shares, conflict beside dominance", () => {
  // A FAMO-like run: weights on the log-loss gradients favour distillation, the applied step does not.
  const step = (n: number, extra: Partial<StepRecord> = {}): StepRecord => ({
    type: "step",
    stage: "student",
    epoch: 1,
    step: n,
    losses: { task: 0.5, distillation: 0.1 },
    weights: { task: 0.3, distillation: 0.7 },
    seconds: 0.01,
    ...extra,
  });
  const measured = (n: number, cosine: number, ratio: number, share: number) =>
    step(n, {
      cosines: { "task:distillation": cosine },
      normRatios: { "task:distillation": ratio },
      conflict: cosine < 0,
      stepShares: { task: 1 - share, distillation: share },
    });
  const steps = [
    measured(0, 0.2, 2, 0.4),
    step(1),
    measured(2, -0.1, 4, 0.45),
    measured(3, 0.3, 3, 0.5),
    step(4, {
      nonFinite: true,
      losses: { task: NaN, distillation: NaN },
      weights: { task: 0.5, distillation: 0.5 },
    }),
  ];

  it("objective figures: mean weight over applied steps, mean step share over measured ones", () => {
    const figures = objectiveFigures(steps);
    expect(figures.map((f) => f.objective)).toEqual(["task", "distillation"]);
    expect(figures[1]!.meanWeight).toBeCloseTo(0.7, 12);
    expect(figures[1]!.meanStepShare).toBeCloseTo(0.45, 12);
    expect(objectiveFigures([step(0)])[0]!.meanStepShare).toBeUndefined();
  });

  it("pair figures: median cosine, conflicting share and median norm ratio", () => {
    expect(pairFigures(steps)).toEqual([
      { pair: "task:distillation", medianCosine: 0.2, conflictShare: 1 / 3, medianNormRatio: 3 },
    ]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it("renders both tables and the dominance and step-share plots", () => {
    const dir = mkdtempSync(join(tmpdir(), "mokd-report-"));
    const jsonl = join(dir, "metrics.jsonl");
    writeFileSync(jsonl, steps.map((s) => JSON.stringify(s)).join("\n") + "\n");
    const summary = {
      job: { name: "j", namespace: "n" },
      strategy: "mokd-amortized",
      backend: "cpu",
      device: "cpu" as const,
      teacher: { accuracy: 0.9, parameters: 10, path: "/t", source: "trained" as const },
      student: { accuracy: 0.8, parameters: 5, path: "/s" },
      bestEpoch: 1,
      bestValidationAccuracy: 0.8,
      conflictRate: 1 / 3,
      measuredSteps: 3,
      nonFiniteSteps: 1,
      steps: 5,
      durationSeconds: 1,
      samplesPerSecond: 100,
      epochs: [],
    };
    const config = {
      spec: TrainerSpec.parse({}),
      jobName: "j",
      namespace: "n",
      source: "test",
      unknownFields: [],
    };
    const html = renderReport({ summary, outputPath: dir }, config, jsonl);
    expect(html).toContain("<th>mean strategy weight</th><th>mean step share</th>");
    expect(html).toContain("<td>distillation</td><td>70.0%</td><td>45.0%</td>");
    expect(html).toContain("<td>task:distillation</td><td>0.200</td><td>33.3%</td><td>3.00</td>");
    expect(html).toContain("Gradient norm ratio (dominance)");
    expect(html).toContain("Step share |c_i g_i| / sum |c_j g_j|");
    expect(html).toContain("<td>non-finite steps (skipped)</td><td>1</td>");
  });
});
