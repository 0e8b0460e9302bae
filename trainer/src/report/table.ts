// The final table of `run`: teacher vs student (a study's comparison is report/study.ts).
import type { RunSummary } from "../telemetry/run-summary.ts";

export interface TableRow {
  model: string;
  parameters: string;
  testAccuracy: string;
  bestEpoch: string;
}

export function resultRows(summary: RunSummary): TableRow[] {
  // A study's student alone has no teacher (its accuracy is NaN).
  const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : "—");
  const rows: TableRow[] = [
    {
      model: `teacher (${summary.teacher.source})`,
      parameters: String(summary.teacher.parameters),
      testAccuracy: pct(summary.teacher.accuracy),
      bestEpoch: "",
    },
    {
      model: `student: ${summary.strategy}`,
      parameters: String(summary.student.parameters),
      testAccuracy: pct(summary.student.accuracy),
      bestEpoch: String(summary.bestEpoch),
    },
  ];
  return rows;
}

export function formatTable(rows: TableRow[]): string {
  const header: TableRow = {
    model: "model",
    parameters: "parameters",
    testAccuracy: "test accuracy",
    bestEpoch: "best epoch",
  };
  const all = [header, ...rows];
  const keys = Object.keys(header) as (keyof TableRow)[];
  const widths = keys.map((k) => Math.max(...all.map((r) => r[k].length)));
  const line = (r: TableRow) =>
    keys.map((k, i) => (i === 0 ? r[k].padEnd(widths[i]!) : r[k].padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
