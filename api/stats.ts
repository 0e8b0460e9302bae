// Statistics of study comparisons and of the quality benchmark: means with standard errors, and differences
// paired by seed (same student initialisation and data order), as a researcher comparing methods reports them.

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

/** Regularised incomplete beta I_x(a, b) by its continued fraction (Numerical Recipes 6.4), |error| < 1e-12. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  // The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  return (front * betaFraction(x, a, b)) / a;
}

function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  d = 1 / (Math.abs(d) < tiny ? tiny : d);
  let h = d;
  for (let m = 1; m <= 300; m++) {
    for (const num of [
      (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)),
      (-(a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1)),
    ]) {
      d = 1 + num * d;
      d = 1 / (Math.abs(d) < tiny ? tiny : d);
      c = 1 + num / c;
      c = Math.abs(c) < tiny ? tiny : c;
      h *= d * c;
    }
    if (Math.abs(d * c - 1) < 1e-15) break;
  }
  return h;
}

/** ln Gamma(x), Lanczos (g = 7, n = 9), relative error ~1e-15 for x > 0. */
export function logGamma(x: number): number {
  const g = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let s = g[0]!;
  for (let i = 1; i < 9; i++) s += g[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(s);
}

/** Two-sided p-value of Student's t statistic with df degrees of freedom. */
export function tTwoSidedP(t: number, df: number): number {
  if (!Number.isFinite(t)) return Number.isNaN(t) ? Number.NaN : 0;
  return incompleteBeta(df / (df + t * t), df / 2, 0.5);
}

/** The t quantile q with P(|T| <= q) = level (two-sided), by bisection on tTwoSidedP. */
export function tQuantile(level: number, df: number): number {
  let lo = 0;
  let hi = 1e4;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (tTwoSidedP(mid, df) > 1 - level) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface Interval {
  n: number;
  mean: number;
  /** 95% t-interval of the mean difference, df = n - 1. */
  low: number;
  high: number;
  /** Two-sided p-value of the paired t-test (mean 0). */
  p: number;
  wins: number;
}

/** The paired difference a - b with its 95% t-interval (df = n - 1) and two-sided p-value. */
export function pairedInterval(a: Map<number, number>, b: Map<number, number>): Interval {
  const d = paired(a, b);
  if (d.n < 2)
    return { n: d.n, mean: d.mean, low: Number.NaN, high: Number.NaN, p: Number.NaN, wins: d.wins };
  const q = tQuantile(0.95, d.n - 1);
  const p = d.se > 0 ? tTwoSidedP(d.mean / d.se, d.n - 1) : d.mean === 0 ? 1 : 0;
  return { n: d.n, mean: d.mean, low: d.mean - q * d.se, high: d.mean + q * d.se, p, wins: d.wins };
}

/**
 * Holm's step-down adjustment of p-values (family-wise error): sorted ascending, p_(i) * (m - i + 1), made
 * monotone, capped at 1; returned in the input order. NaN stays NaN and does not count in m.
 */
export function holm(ps: number[]): number[] {
  const order = ps
    .map((p, i) => ({ p, i }))
    .filter((x) => !Number.isNaN(x.p))
    .sort((x, y) => x.p - y.p);
  const out = ps.map(() => Number.NaN);
  let running = 0;
  order.forEach(({ p, i }, rank) => {
    running = Math.max(running, Math.min(1, p * (order.length - rank)));
    out[i] = running;
  });
  return out;
}
