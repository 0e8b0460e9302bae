// Per-run figures of the student's step records that the HTML report tabulates: for each objective the mean
// weight the strategy reported beside the mean share of the step it actually got, and for each pair of objectives
// the conflict (cosine) beside the dominance (norm ratio). Weights and shares differ by design for mokd and
// mokd-amortized, whose weights are on log-loss gradients: that is why both are shown.
import type { StepRecord } from "../contracts.ts";

export interface ObjectiveFigures {
  objective: string;
  /** Mean over applied steps of the weight the strategy reported. */
  meanWeight: number;
  /** Mean over measured steps of |c_i g_i| / sum_j |c_j g_j|; undefined when no step was measured. */
  meanStepShare?: number;
}

export interface PairFigures {
  pair: string;
  /** Over measured steps. */
  medianCosine: number;
  /** Fraction of measured steps whose cosine was < 0. */
  conflictShare: number;
  /** Median of larger / smaller gradient norm over measured steps (>= 1). */
  medianNormRatio: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Values of `key` in the records that have one. */
function column(
  records: StepRecord[],
  pick: (r: StepRecord) => Record<string, number> | undefined,
  key: string,
) {
  return records.flatMap((r) => {
    const v = pick(r)?.[key];
    return v === undefined || !Number.isFinite(v) ? [] : [v];
  });
}

export function objectiveFigures(steps: StepRecord[]): ObjectiveFigures[] {
  const applied = steps.filter((r) => !r.nonFinite);
  const names = [...new Set(applied.flatMap((r) => Object.keys(r.weights)))];
  return names.map((objective) => {
    const shares = column(applied, (r) => r.stepShares, objective);
    return {
      objective,
      meanWeight: mean(column(applied, (r) => r.weights, objective)),
      ...(shares.length ? { meanStepShare: mean(shares) } : {}),
    };
  });
}

export function pairFigures(steps: StepRecord[]): PairFigures[] {
  const pairs = [...new Set(steps.flatMap((r) => Object.keys(r.cosines ?? {})))];
  return pairs.flatMap((pair) => {
    const cosines = column(steps, (r) => r.cosines, pair);
    const ratios = column(steps, (r) => r.normRatios, pair);
    if (cosines.length === 0 || ratios.length === 0) return [];
    return [
      {
        pair,
        medianCosine: median(cosines),
        conflictShare: cosines.filter((c) => c < 0).length / cosines.length,
        medianNormRatio: median(ratios),
      },
    ];
  });
}
