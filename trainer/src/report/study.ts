// The study report (report.html at the study's root) and its console table: the answer first (the best arm,
// chosen on validation; each automatic weighting against the best fixed cell, paired by seed, with its 95%
// interval), then every arm, the cost of the grid against each automatic run, every run, and every run's
// validation curve. Drawn with the run report's chart (svg.ts).
import type { StudyAnswer } from "../study/answer.ts";
import { escapeHtml, lineChart, type Series } from "./svg.ts";

const pct = (x: number | undefined) => (x === undefined ? "—" : `${(x * 100).toFixed(2)}%`);
const points = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(2)} pt`;
const secs = (x: number) => `${x.toFixed(1)} s`;

/** "+1.20 pt [−0.40, +2.80]" (the interval in points; none with one pair). */
export function differenceText(c: NonNullable<StudyAnswer["comparisons"]>[number]): string {
  const interval =
    c.lower !== undefined && c.upper !== undefined ? ` [${points(c.lower)}, ${points(c.upper)}]` : "";
  return `${points(c.meanDifference)}${interval}`;
}

/** What the interval says, in words (no claim beyond it). */
export function verdict(c: NonNullable<StudyAnswer["comparisons"]>[number]): string {
  if (c.lower === undefined || c.upper === undefined)
    return c.pairs < 2 ? "one seed: no interval (run 2 or more seeds)" : "no interval";
  if (c.lower > 0) return `better than ${c.against} (the interval excludes 0)`;
  if (c.upper < 0) return `worse than ${c.against} (the interval excludes 0)`;
  return "no difference shown (the interval includes 0)";
}

function table(head: string[], rows: string[][]): string {
  const cells = (r: string[], tag: string) => r.map((c) => `<${tag}>${escapeHtml(c)}</${tag}>`).join("");
  return `<table><tr>${cells(head, "th")}</tr>${rows.map((r) => `<tr>${cells(r, "td")}</tr>`).join("")}</table>`;
}

/** Rows of the comparison: every arm, best first marked, with its figures over its seeds. */
export function armRows(answer: StudyAnswer): string[][] {
  return (answer.arms ?? []).map((a) => [
    `${a.arm}${answer.best?.arm === a.arm ? " (best on validation)" : ""}`,
    String(a.seeds),
    pct(a.meanValidationAccuracy),
    pct(a.meanTestAccuracy),
    secs(a.deviceSeconds),
  ]);
}
const ARM_HEAD = ["arm", "seeds", "mean best val. acc.", "mean test acc.", "device-seconds"];

export function comparisonRows(answer: StudyAnswer): string[][] {
  return (answer.comparisons ?? []).map((c) => [
    `${c.arm} vs ${c.against}`,
    String(c.pairs),
    differenceText(c),
    `${c.wins}/${c.pairs}`,
    verdict(c),
  ]);
}
const COMPARISON_HEAD = ["paired by seed", "pairs", "test acc. difference [95% CI]", "wins", "reading"];

function costRows(answer: StudyAnswer): string[][] {
  const { cost } = answer;
  return [
    ["fixed-weight grid (every cell and seed)", secs(cost.gridDeviceSeconds), ""],
    ...cost.automatic.map((a) => [
      `${a.arm} (every seed)`,
      secs(a.deviceSeconds),
      a.gridMultiple === null ? "" : `the grid cost ${a.gridMultiple.toFixed(1)}x this`,
    ]),
    ["teacher pass (trained once, shared)", secs(cost.teacherSeconds * cost.devicesPerRun), ""],
    ["whole study", secs(cost.totalDeviceSeconds), ""],
  ];
}

/** The console summary of `trainer run <study.yaml>`: the answer and the arms. */
export function formatStudyTable(answer: StudyAnswer): string {
  const text = (head: string[], rows: string[][]) => {
    const all = [head, ...rows];
    const widths = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
    const line = (r: string[]) =>
      r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
    return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
  };
  const parts = [text(ARM_HEAD, armRows(answer))];
  if (answer.comparisons?.length) parts.push(text(COMPARISON_HEAD, comparisonRows(answer)));
  parts.push(text(["cost", "device-seconds", ""], costRows(answer)));
  const best = answer.best
    ? `best on validation: ${answer.best.arm} (mean val. ${pct(answer.best.meanValidationAccuracy)}, ` +
      `test ${pct(answer.best.meanTestAccuracy)})`
    : "no run succeeded";
  const teacher = `teacher: ${pct(answer.teacher.accuracy)} test accuracy (${answer.teacher.source ?? "?"}), trained ${answer.teacher.trainings} time(s) in this study`;
  return [`${answer.succeeded}/${answer.runs} runs succeeded; ${best}; ${teacher}`, ...parts].join("\n\n");
}

function curves(answer: StudyAnswer): string {
  const all: Series[] = answer.curves.map((c) => ({
    name: c.name,
    points: c.points,
    dashed: c.arm.includes("@"),
  }));
  const byArm = new Map<string, [number, number][][]>();
  for (const c of answer.curves) byArm.set(c.arm, [...(byArm.get(c.arm) ?? []), c.points]);
  const means: Series[] = [...byArm].map(([arm, runs]) => {
    const epochs = Math.min(...runs.map((r) => r.length));
    return {
      name: arm,
      dashed: arm.includes("@"),
      points: Array.from({ length: epochs }, (_, i) => [
        runs[0]![i]![0],
        runs.reduce((s, r) => s + r[i]![1], 0) / runs.length,
      ]),
    };
  });
  const options = (title: string) => ({ title, xLabel: "epoch", yLabel: "validation accuracy" });
  return `<div class="plots">${lineChart(means, options("Validation accuracy, mean over seeds per arm"))}${lineChart(all, options("Validation accuracy, every run"))}</div>`;
}

export function renderStudyReport(answer: StudyAnswer): string {
  const name = `${answer.study.namespace}/${answer.study.name}`;
  const runs = answer.variants.map((v) => [
    v.name,
    v.phase,
    pct(v.bestValidationAccuracy),
    pct(v.testAccuracy),
    v.bestEpoch === undefined ? "—" : String(v.bestEpoch),
    v.epochsToTarget === undefined ? "—" : String(v.epochsToTarget ?? "not reached"),
    v.durationSeconds === undefined ? "—" : secs(v.durationSeconds),
    v.reason ?? "",
  ]);
  const best = answer.best
    ? `<p><b>Best on validation: ${escapeHtml(answer.best.arm)}</b> — mean best validation accuracy ` +
      `${pct(answer.best.meanValidationAccuracy)}, its mean test accuracy ${pct(answer.best.meanTestAccuracy)}. ` +
      "Every choice here is made on validation accuracy; test accuracy is only reported.</p>"
    : "<p><b>No run succeeded.</b></p>";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MoKD study ${escapeHtml(name)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1340px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}</style></head>
<body>
<h1>Distillation study ${escapeHtml(name)}</h1>
<p>${answer.succeeded} of ${answer.runs} runs succeeded. Teacher: ${pct(answer.teacher.accuracy)} test accuracy
(${escapeHtml(answer.teacher.source ?? "unknown")}), trained ${answer.teacher.trainings} time(s); its outputs were
computed once (${answer.teacher.shardsDone}/${answer.teacher.shards} shard(s)) and shared by every variant.</p>
${best}
<h2>Automatic weighting against the best fixed cell</h2>
${answer.comparisons?.length ? table(COMPARISON_HEAD, comparisonRows(answer)) : "<p>No comparison: the study has no automatic weighting or no fixed cell that succeeded.</p>"}
<p>The best fixed cell is chosen on mean validation accuracy; the difference is of test accuracy, paired by seed,
with a 95% t-interval (df = pairs - 1).</p>
<h2>Arms</h2>
${table(ARM_HEAD, armRows(answer))}
<h2>Cost</h2>
${table(["", "device-seconds", ""], costRows(answer))}
<p>Device-seconds: run seconds x ${answer.cost.devicesPerRun} device(s) per run (GPUs, or one for a CPU run).</p>
${curves(answer)}
<h2>Runs</h2>
${table(["run", "phase", "best val. acc.", "test acc.", "best epoch", "epochs to target", "duration", "reason"], runs)}
</body></html>
`;
}
