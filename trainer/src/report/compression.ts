// The compression report as a teacher-vs-student table, for the printed summary of `run` and the HTML report.
// Every timing row names its runtime, backend and device. The last column is how many times better the student
// is (teacher / student for sizes, counts and latencies; student / teacher for throughput).
import type { CompressionReport, ModelCost, RuntimeTiming } from "../engine/compression.ts";
import type { RunSummary } from "../telemetry/run-summary.ts";

export type CompressionRow = [what: string, teacher: string, student: string, ratio: string];

const kib = (bytes: number | undefined) => (bytes === undefined ? "-" : `${(bytes / 1024).toFixed(1)} KiB`);
const count = (n: number | undefined) =>
  n === undefined
    ? "-"
    : n >= 1e6
      ? `${(n / 1e6).toFixed(2)} M`
      : n >= 1e3
        ? `${(n / 1e3).toFixed(1)} k`
        : String(n);
const ratio = (t: number | undefined, s: number | undefined) => (t && s ? `${(t / s).toFixed(1)}x` : "");

function timingRows(teacher: ModelCost, student: ModelCost): CompressionRow[] {
  const rows: CompressionRow[] = [];
  const runtimes = [...new Set([...teacher.timings, ...student.timings].map((t) => t.runtime))];
  for (const runtime of runtimes) {
    const [t, s] = [teacher.timings, student.timings].map((list) => list.find((x) => x.runtime === runtime));
    const where = (x: RuntimeTiming | undefined) => (x ? `${x.backend}, ${x.device}` : "");
    const label = `${runtime} (${[...new Set([where(t), where(s)].filter(Boolean))].join(" / ")})`;
    const ms = (x: RuntimeTiming | undefined, k: "p50Ms" | "p95Ms") => (x ? `${x[k].toFixed(3)} ms` : "-");
    rows.push([`${label} batch-1 p50`, ms(t, "p50Ms"), ms(s, "p50Ms"), ratio(t?.p50Ms, s?.p50Ms)]);
    rows.push([`${label} batch-1 p95`, ms(t, "p95Ms"), ms(s, "p95Ms"), ratio(t?.p95Ms, s?.p95Ms)]);
    const tp = (x: RuntimeTiming | undefined) => (x ? `${x.samplesPerSecond.toFixed(0)}/s @${x.batch}` : "-");
    rows.push([`${label} throughput`, tp(t), tp(s), ratio(s?.samplesPerSecond, t?.samplesPerSecond)]);
  }
  return rows;
}

export function compressionRows(report: CompressionReport, summary: RunSummary): CompressionRow[] {
  const { teacher, student } = report;
  const formats = [...new Set([...Object.keys(teacher.sizeBytes), ...Object.keys(student.sizeBytes)])];
  const sizes = formats.map((f): CompressionRow => {
    const [t, s] = [teacher.sizeBytes, student.sizeBytes].map((b) => b[f as keyof ModelCost["sizeBytes"]]);
    return [`size on disk (${f})`, kib(t), kib(s), ratio(t, s)];
  });
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  return [
    [
      "parameters",
      count(teacher.parameters),
      count(student.parameters),
      ratio(teacher.parameters, student.parameters),
    ],
    ...sizes,
    [
      "multiply-adds / sample",
      count(teacher.macsPerSample),
      count(student.macsPerSample),
      ratio(teacher.macsPerSample, student.macsPerSample),
    ],
    ...timingRows(teacher, student),
    [
      "test accuracy",
      pct(summary.teacher.accuracy),
      pct(summary.student.accuracy),
      `${(report.accuracyGivenUp * 100).toFixed(2)} points given up`,
    ],
  ];
}

export function formatCompressionTable(rows: CompressionRow[]): string {
  const all: CompressionRow[] = [["compression", "teacher", "student", "student gain"], ...rows];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: CompressionRow) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(all[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function compressionHtml(summary: RunSummary, escape: (s: string) => string): string {
  if (!summary.compression) return "";
  const rows = compressionRows(summary.compression, summary)
    .map((r) => `<tr>${r.map((c) => `<td>${escape(c)}</td>`).join("")}</tr>`)
    .join("\n");
  const onnx = summary.exports?.onnx;
  const parity = onnx?.parity
    ? `<p>ONNX student: ${escape(onnx.status)}; parity in ONNX Runtime on ${onnx.parity.samples} test samples: max |logit difference| ${onnx.parity.maxAbsDiff.toExponential(2)} (tolerance ${onnx.parity.tolerance.atol} + ${onnx.parity.tolerance.rtol} x |logit|), top-1 agreement ${(onnx.parity.top1Agreement * 100).toFixed(2)}%.</p>`
    : onnx
      ? `<p>ONNX student: ${escape(onnx.status)}${onnx.message ? ` (${escape(onnx.message)})` : ""}.</p>`
      : "";
  return `<h2>Compression (measured on this run's device after training)</h2>
<table><tr><th>compression</th><th>teacher</th><th>student</th><th>student gain</th></tr>
${rows}
</table>
${parity}`;
}
