// Statistics of the quality benchmark: means with standard errors, and differences paired by seed (same student
// initialisation and data order), as a researcher comparing methods reports them.

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Sample standard deviation (n - 1); 0 for fewer than two values. */
export function sd(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** Standard error of the mean. */
export const se = (xs: number[]) => (xs.length ? sd(xs) / Math.sqrt(xs.length) : 0);

export interface Paired {
  /** Seeds both methods ran. */
  n: number;
  mean: number;
  se: number;
  /** Seeds where a beat b, and where they tied. */
  wins: number;
  ties: number;
}

/** a - b over the seeds both have (values keyed by seed). */
export function paired(a: Map<number, number>, b: Map<number, number>): Paired {
  const diffs: number[] = [];
  for (const [seed, x] of a) {
    const y = b.get(seed);
    if (y !== undefined) diffs.push(x - y);
  }
  return {
    n: diffs.length,
    mean: diffs.length ? mean(diffs) : Number.NaN,
    se: se(diffs),
    wins: diffs.filter((d) => d > 0).length,
    ties: diffs.filter((d) => d === 0).length,
  };
}

export const pm = (m: number, e: number, digits = 2) => `${m.toFixed(digits)} ± ${e.toFixed(digits)}`;
export const signed = (m: number, e: number, digits = 2) =>
  `${m >= 0 ? "+" : ""}${m.toFixed(digits)} ± ${e.toFixed(digits)}`;
