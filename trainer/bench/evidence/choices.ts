// The evidence analysis's common machinery: configurations (a method at one learning rate) over the seeds every
// one finished, choices made on validation accuracy with the grid edges they sit on, paired test differences and
// the speed measure (epochs to a target validation accuracy).
import type { Run } from "../quality-report.ts";
import { holm, mean, pairedInterval, se, type Interval } from "../stats.ts";

/** A configuration: a method at one learning rate. */
export interface Config {
  method: string;
  kind: Run["kind"];
  learningRate: number;
  runs: Map<number, Run>;
  validation: number;
  test: number;
}

export interface Choice {
  label: string;
  config: Config;
  /** The grids it was chosen from, and whether the choice sits at an edge of one. */
  edges: string[];
}

export interface Comparison {
  claim: string;
  question: string;
  a: Choice;
  b: Choice;
  /** What the difference is in: test accuracy points, or epochs saved to the speed target. */
  unit: "points" | "epochs";
  interval: Interval;
  holmP: number;
}

export const base = (r: Run) => r.baseMethod ?? r.method;

/** Configurations of a setting over the seeds that every configuration finished. */
export function configurations(runs: Run[]): { configs: Config[]; seeds: number[] } {
  const groups = new Map<string, Run[]>();
  for (const r of runs) {
    const key = `${base(r)}|${r.learningRate}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const seedSets = [...groups.values()].map((g) => new Set(g.map((r) => r.seed)));
  const seeds = [...(seedSets[0] ?? [])]
    .filter((s) => seedSets.every((set) => set.has(s)))
    .sort((a, b) => a - b);
  const configs = [...groups.values()].map((g) => {
    const bySeed = new Map(g.filter((r) => seeds.includes(r.seed)).map((r) => [r.seed, r]));
    const rs = [...bySeed.values()];
    return {
      method: base(g[0]!),
      kind: g[0]!.kind,
      learningRate: g[0]!.learningRate ?? Number.NaN,
      runs: bySeed,
      validation: mean(rs.map((r) => r.bestValidationAccuracy * 100)),
      test: mean(rs.map((r) => r.testAccuracy * 100)),
    };
  });
  return { configs, seeds };
}

const alphaOf = (method: string) => Number(/alpha=([0-9.]+)/.exec(method)?.[1] ?? Number.NaN);

/** The grid cell a study labels "(published)" (each loss's own weighting); alpha 0.9 (KD's) when none is. */
export const isPublished = (c: Config, fixed: Config[]) =>
  fixed.some((f) => f.method.includes("(published)"))
    ? c.method.includes("(published)")
    : alphaOf(c.method) === 0.9;
export const publishedCell = (fixed: Config[]) =>
  `alpha ${alphaOf(fixed.find((c) => isPublished(c, fixed))?.method ?? "alpha=0.9")}`;

/** The configuration of highest mean validation accuracy among `candidates`, with the grid edges it sits on. */
export function chooseOnValidation(label: string, candidates: Config[], gridAlphas: number[] = []): Choice {
  if (!candidates.length) throw new Error(`${label}: no configuration to choose from`);
  const best = candidates.reduce((a, b) => (b.validation > a.validation ? b : a));
  const edges: string[] = [];
  const lrs = [...new Set(candidates.map((c) => c.learningRate))].sort((a, b) => a - b);
  if (lrs.length > 1 && (best.learningRate === lrs[0] || best.learningRate === lrs.at(-1)))
    edges.push(`learning rate ${best.learningRate} at the edge of ${lrs.join("/")}`);
  const alphas = [...new Set([...candidates.map((c) => alphaOf(c.method)), ...gridAlphas])]
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  const alpha = alphaOf(best.method);
  if (alphas.length > 1 && (alpha === alphas[0] || alpha === alphas.at(-1)))
    edges.push(`alpha ${alpha} at the edge of ${alphas.join("/")}`);
  return { label, config: best, edges };
}

/** chooseOnValidation, or undefined when the study ran no such configuration (a reduced study). */
export const maybeChoose = (label: string, candidates: Config[], gridAlphas: number[] = []) =>
  candidates.length ? chooseOnValidation(label, candidates, gridAlphas) : undefined;

export type Row = [
  claim: string,
  question: string,
  a: Choice | undefined,
  b: Choice | undefined,
  unit?: Comparison["unit"],
];
export type DistinctRow = [claim: string, question: string, a: Choice, b: Choice, unit: Comparison["unit"]];

/**
 * The comparisons a study can make, each once: a row whose side did not run is left out, so is a configuration
 * against itself (one learning rate: tuned is the default), and a row repeating an earlier pair (in the same
 * unit) joins its claim to that row's (with mokd's chosen LR the default, "no tuning needed" is "better than tuned
 * KD"), so Holm counts each distinct comparison once. Rows are in test accuracy points unless they say otherwise.
 */
export function distinctComparisons(rows: Row[]): DistinctRow[] {
  const out: DistinctRow[] = [];
  for (const [claim, question, a, b, unit = "points"] of rows) {
    if (!a || !b || a.config === b.config) continue;
    const same = out.find(([, , x, y, u]) => x.config === a.config && y.config === b.config && u === unit);
    if (same) same[0] = `${same[0]}; ${claim}`;
    else out.push([claim, question, a, b, unit]);
  }
  return out;
}

export const testBySeed = (c: Config) => new Map([...c.runs].map(([s, r]) => [s, r.testAccuracy * 100]));

/** Epochs (fractional) at which a run's validation first reaches `target`; the run's length when it never does. */
export function epochsToReach(
  run: Run,
  target: number,
  stepsPerEpoch: number,
): { epochs: number; reached: boolean } {
  const curve = run.validationCurve ?? [];
  const hit = curve.find(([, acc]) => acc * 100 >= target);
  const last = curve.at(-1)?.[0] ?? 0;
  return hit
    ? { epochs: hit[0] / stepsPerEpoch, reached: true }
    : { epochs: last / stepsPerEpoch, reached: false };
}

/** The speed target: the fixed cell's mean final validation accuracy (points). */
export const speedTarget = (fixed: Choice) =>
  mean([...fixed.config.runs.values()].map((r) => (r.validationCurve?.at(-1)?.[1] ?? 0) * 100));

/**
 * Validation accuracy a run gained over the last quarter of its steps (points): from its last evaluation at or
 * before 75% of its final step to its final one. Near 0, the run had plateaued (issue 16's converged setting).
 */
export function lateValidationGain(run: Run): number {
  const curve = run.validationCurve ?? [];
  const last = curve.at(-1);
  const before = last && curve.findLast(([step]) => step <= 0.75 * last[0]);
  return last && before ? (last[1] - before[1]) * 100 : Number.NaN;
}

/** A configuration's plateau row: its runs' late validation gain, mean and SE (points). */
export function plateauOf(label: string, config: Config): { label: string; gain: number; se: number } {
  const gains = [...config.runs.values()].map(lateValidationGain);
  return { label, gain: mean(gains), se: se(gains) };
}

/**
 * Epochs saved by `fast` over `fixed` to the fixed cell's mean final validation accuracy, paired by seed: the
 * fixed cell's epochs minus the other's (positive, and a "win": it got there sooner).
 */
export function epochsSaved(fast: Choice, fixed: Choice, stepsPerEpoch: number): Interval {
  const target = speedTarget(fixed);
  const epochsBySeed = (c: Config) =>
    new Map([...c.runs].map(([s, r]) => [s, epochsToReach(r, target, stepsPerEpoch).epochs]));
  return pairedInterval(epochsBySeed(fixed.config), epochsBySeed(fast.config));
}

/** The runs of several files, each (setting, method, seed) once: the first file's. */
export function mergeRuns(files: Run[][]): Run[] {
  const seen = new Set<string>();
  return files.flat().filter((r) => {
    const key = `${r.setting}|${r.method}|${r.seed}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The comparisons of distinct rows as one Holm family: a difference in test accuracy points paired by seed, or
 * in epochs saved to the speed target (`stepsPerEpoch` needed then).
 */
export function comparisonsOf(rows: DistinctRow[], stepsPerEpoch = Number.NaN): Comparison[] {
  const intervals = rows.map(([, , a, b, unit]) =>
    unit === "epochs"
      ? epochsSaved(a, b, stepsPerEpoch)
      : pairedInterval(testBySeed(a.config), testBySeed(b.config)),
  );
  const adjusted = holm(intervals.map((i) => i.p));
  return rows.map(([claim, question, a, b, unit], i) => ({
    claim,
    question,
    a,
    b,
    unit,
    interval: intervals[i]!,
    holmP: adjusted[i]!,
  }));
}
