// The self-contained HTML report (<output>/report.html): result table, per-objective weights beside step shares,
// per-pair conflict beside dominance, and inline SVG plots of losses, gradient cosine, gradient norm ratio,
// strategy weights, step shares and accuracy, drawn from the run's JSONL records.
import { existsSync, readFileSync } from "node:fs";
import type { TrainerConfig } from "../config.ts";
import type { EpochRecord, StepRecord } from "../contracts.ts";
import type { RunResult } from "../engine/run.ts";
import { compressionHtml } from "./compression.ts";
import { objectiveFigures, pairFigures } from "./figures.ts";
import { downsample, escapeHtml, lineChart, type Series } from "./svg.ts";
import { resultRows } from "./table.ts";

/** Step and epoch records; a resumed run repeats steps after its checkpoint, so the last record of a step wins. */
export function readRecords(jsonlPath: string): { steps: StepRecord[]; epochs: EpochRecord[] } {
  if (!existsSync(jsonlPath)) return { steps: [], epochs: [] };
  const steps = new Map<string, StepRecord>();
  const epochs = new Map<string, EpochRecord>();
  for (const line of readFileSync(jsonlPath, "utf8").split("\n")) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as StepRecord | EpochRecord | { type: string };
    if (r.type === "step") steps.set(`${(r as StepRecord).stage}:${(r as StepRecord).step}`, r as StepRecord);
    if (r.type === "epoch")
      epochs.set(`${(r as EpochRecord).stage}:${(r as EpochRecord).epoch}`, r as EpochRecord);
  }
  const byStep = (a: { step: number }, b: { step: number }) => a.step - b.step;
  return { steps: [...steps.values()].sort(byStep), epochs: [...epochs.values()].sort(byStep) };
}

function keyedSeries(
  records: StepRecord[],
  pick: (r: StepRecord) => Record<string, number> | undefined,
): Series[] {
  const names = new Set(records.flatMap((r) => Object.keys(pick(r) ?? {})));
  return [...names].map((name) => ({
    name,
    points: downsample(
      records.flatMap((r) => {
        const v = pick(r)?.[name];
        return v === undefined ? [] : [[r.step, v] as [number, number]];
      }),
    ),
  }));
}

export function renderReport(result: RunResult, config: TrainerConfig, jsonlPath: string): string {
  const { summary } = result;
  const { steps, epochs } = readRecords(jsonlPath);
  const student = steps.filter((r) => r.stage === "student");
  const accuracy: Series[] = [];
  for (const stage of ["teacher", "student"] as const) {
    const e = epochs.filter((r) => r.stage === stage);
    accuracy.push({ name: `${stage} validation`, points: e.map((r) => [r.epoch, r.validationAccuracy]) });
    accuracy.push({ name: `${stage} train`, points: e.map((r) => [r.epoch, r.trainAccuracy]), dashed: true });
  }
  const rows = resultRows(summary)
    .map(
      (r) =>
        `<tr><td>${escapeHtml(r.model)}</td><td>${r.parameters}</td><td>${r.testAccuracy}</td><td>${r.bestEpoch}</td></tr>`,
    )
    .join("\n");
  const facts: [string, string][] = [
    ["job", `${config.namespace}/${config.jobName}`],
    ["strategy", summary.strategy],
    [
      "backend",
      `${summary.backend}${summary.tensorflowVersion ? ` (TensorFlow ${summary.tensorflowVersion})` : ""}, ` +
        `ops on ${summary.device}`,
    ],
    ["student steps", String(summary.steps)],
    ["non-finite steps (skipped)", String(summary.nonFiniteSteps)],
    [
      "conflict rate",
      `${(summary.conflictRate * 100).toFixed(1)}% of ${summary.measuredSteps} measured steps`,
    ],
    ["samples/s (student)", summary.samplesPerSecond.toFixed(0)],
    ["duration", `${summary.durationSeconds.toFixed(1)} s`],
  ];
  if (summary.targetAccuracy !== undefined) {
    facts.push([
      `epochs to ${summary.targetAccuracy} val. accuracy`,
      String(summary.epochsToTarget ?? "not reached"),
    ]);
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MoKD run ${escapeHtml(config.jobName)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1340px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}</style></head>
<body>
<h1>Distillation run ${escapeHtml(config.namespace)}/${escapeHtml(config.jobName)}</h1>
<table><tr><th>model</th><th>parameters</th><th>test accuracy</th><th>best epoch</th></tr>
${rows}
</table>
<table>${facts.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join("")}</table>
${compressionHtml(summary, escapeHtml)}
${objectivesTable(student)}
${pairsTable(student)}
<div class="plots">
${lineChart(
  keyedSeries(student, (r) => r.losses),
  { title: "Student losses", xLabel: "step", yLabel: "loss" },
)}
${lineChart(
  keyedSeries(student, (r) => r.cosines),
  {
    title: "Gradient cosine",
    xLabel: "step",
    yLabel: "cosine",
    yMin: -1,
    yMax: 1,
    referenceY: 0,
  },
)}
${lineChart(
  keyedSeries(student, (r) => r.normRatios),
  { title: "Gradient norm ratio (dominance)", xLabel: "step", yLabel: "larger / smaller norm", yMin: 1 },
)}
${lineChart(
  keyedSeries(student, (r) => r.weights),
  {
    title: "Strategy weights",
    xLabel: "step",
    yLabel: "weight",
    yMin: 0,
    yMax: 1,
  },
)}
${lineChart(
  keyedSeries(student, (r) => r.stepShares),
  { title: "Step share |c_i g_i| / sum |c_j g_j|", xLabel: "step", yLabel: "share", yMin: 0, yMax: 1 },
)}
${lineChart(accuracy, { title: "Accuracy", xLabel: "epoch", yLabel: "top-1 accuracy" })}
</div>
<p>Step curves are averaged over windows when a run has more than 300 steps. Gradient cosines, norm ratios and
step shares of single-backward strategies (sum, mokd-amortized) are measured every few steps only. The strategy
weights of mokd and mokd-amortized are weights on the log-loss gradients g_i / L_i; the step share is the part of
the applied update each objective's raw gradient contributed, |c_i g_i| / sum_j |c_j g_j|.</p>
</body></html>
`;
}

const pct = (x: number | undefined) => (x === undefined ? "not measured" : `${(x * 100).toFixed(1)}%`);

function objectivesTable(steps: StepRecord[]): string {
  const rows = objectiveFigures(steps)
    .map(
      (f) =>
        `<tr><td>${escapeHtml(f.objective)}</td><td>${pct(f.meanWeight)}</td><td>${pct(f.meanStepShare)}</td></tr>`,
    )
    .join("");
  return `<table><tr><th>objective</th><th>mean strategy weight</th><th>mean step share</th></tr>${rows}</table>`;
}

function pairsTable(steps: StepRecord[]): string {
  const rows = pairFigures(steps)
    .map(
      (f) =>
        `<tr><td>${escapeHtml(f.pair)}</td><td>${f.medianCosine.toFixed(3)}</td><td>${pct(f.conflictShare)}</td>` +
        `<td>${f.medianNormRatio.toFixed(2)}</td></tr>`,
    )
    .join("");
  const head =
    "<tr><th>pair</th><th>median cosine</th><th>conflicting steps (cos &lt; 0)</th>" +
    "<th>median norm ratio (dominance)</th></tr>";
  return rows ? `<table>${head}${rows}</table>` : "";
}
