// A small line-chart renderer producing inline SVG (no dependencies, no scripts): the HTML report's plots.

export interface Series {
  name: string;
  points: [number, number][];
  dashed?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  yMin?: number;
  yMax?: number;
  /** Draw a horizontal reference line at this y (e.g. cosine 0). */
  referenceY?: number;
}

const WIDTH = 640;
const HEIGHT = 300;
const MARGIN = { left: 56, right: 150, top: 28, bottom: 40 };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

export const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** Averages consecutive points into at most `max` points so long runs stay small and readable. */
export function downsample(points: [number, number][], max = 300): [number, number][] {
  if (points.length <= max) return points;
  const size = Math.ceil(points.length / max);
  const out: [number, number][] = [];
  for (let i = 0; i < points.length; i += size) {
    const chunk = points.slice(i, i + size);
    const mean = (k: 0 | 1) => chunk.reduce((a, p) => a + p[k], 0) / chunk.length;
    out.push([mean(0), mean(1)]);
  }
  return out;
}

function ticks(min: number, max: number, count = 5): number[] {
  if (max <= min) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step)
    out.push(Number(t.toPrecision(6)));
  return out;
}

export function lineChart(series: Series[], o: ChartOptions): string {
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (all.length === 0) return `<p><em>${escapeHtml(o.title)}: no data</em></p>`;
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [o.yMin ?? Math.min(...ys), o.yMax ?? Math.max(...ys)];
  if (o.referenceY !== undefined) [y0, y1] = [Math.min(y0, o.referenceY), Math.max(y1, o.referenceY)];
  if (y1 === y0) [y0, y1] = [y0 - 1, y1 + 1];
  const pw = WIDTH - MARGIN.left - MARGIN.right;
  const ph = HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (x: number) => MARGIN.left + (x1 === x0 ? pw / 2 : ((x - x0) / (x1 - x0)) * pw);
  const sy = (y: number) => MARGIN.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img">`,
    `<text x="${WIDTH / 2 - MARGIN.right / 2}" y="18" text-anchor="middle" font-weight="bold">${escapeHtml(o.title)}</text>`,
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  ];
  for (const t of ticks(y0, y1)) {
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + pw}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eee"/>`,
      `<text x="${MARGIN.left - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="11">${t}</text>`,
    );
  }
  for (const t of ticks(x0, x1)) {
    parts.push(
      `<text x="${sx(t)}" y="${MARGIN.top + ph + 16}" text-anchor="middle" font-size="11">${t}</text>`,
    );
  }
  if (o.referenceY !== undefined) {
    const y = sy(o.referenceY);
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + pw}" y1="${y}" y2="${y}" stroke="#555" stroke-dasharray="2,3"/>`,
    );
  }
  parts.push(
    `<text x="${MARGIN.left + pw / 2}" y="${HEIGHT - 6}" text-anchor="middle" font-size="12">${escapeHtml(o.xLabel)}</text>`,
    `<text transform="translate(14 ${MARGIN.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escapeHtml(o.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const d = s.points.map(([x, y], k) => `${k ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    const dash = s.dashed ? ` stroke-dasharray="6,3"` : "";
    const marker =
      s.points.length <= 30
        ? s.points.map(([x, y]) => `<circle cx="${sx(x)}" cy="${sy(y)}" r="2.5" fill="${color}"/>`).join("")
        : "";
    const ly = MARGIN.top + 14 + i * 18;
    parts.push(
      `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"${dash}/>${marker}`,
      `<line x1="${WIDTH - MARGIN.right + 10}" x2="${WIDTH - MARGIN.right + 30}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${dash}/>`,
      `<text x="${WIDTH - MARGIN.right + 34}" y="${ly}" font-size="11">${escapeHtml(s.name)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}
