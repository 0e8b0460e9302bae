// The evidence study's analysis (issue 16): from a quality results file, every choice made on VALIDATION accuracy
// (a method's learning rate, the best fixed cell and learning rate, the best sum-log cell), test accuracy read once
// for each chosen configuration, and the headline comparisons as paired differences over seeds with 95%
// t-intervals (df = n - 1) and Holm-adjusted p-values. Only seeds every configuration of the setting finished are
// used. Prints markdown; --json writes the numbers too.
//   node trainer/bench/evidence.ts trainer/bench/results/evidence.json[,more.json] [--json out.json]
//     [--loss kd] (the loss of the headline analysis) [--adaptation kd+feature] (the adaptation-module analysis:
//     that loss's mokd, with the feature objective, against the headline loss's mokd)
//     [--best-loss kd,lskd,dist,dkd] (mokd's loss chosen on validation against the best fixed cell of any loss)
//     [--pairs "variant:base,..."] (named methods against each other, each one's learning rate on validation; a
//     side "a|b|c" is a grid of variants, one chosen with its rate on validation)
// Several files (one per range of seeds, --first-seed) are merged; a (setting, method, seed) two files both hold
// is taken from the first.
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { Run } from "./quality-report.ts";
import { holm, mean, pairedInterval, se, type Interval } from "./stats.ts";

/** A configuration: a method at one learning rate. */
interface Config {
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

const base = (r: Run) => r.baseMethod ?? r.method;

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
const isPublished = (c: Config, fixed: Config[]) =>
  fixed.some((f) => f.method.includes("(published)"))
    ? c.method.includes("(published)")
    : alphaOf(c.method) === 0.9;
const publishedCell = (fixed: Config[]) =>
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
const maybeChoose = (label: string, candidates: Config[], gridAlphas: number[] = []) =>
  candidates.length ? chooseOnValidation(label, candidates, gridAlphas) : undefined;

type Row = [claim: string, question: string, a: Choice | undefined, b: Choice | undefined];

/**
 * The comparisons a study can make, each once: a row whose side did not run is left out, so is a configuration
 * against itself (one learning rate: tuned is the default), and a row repeating an earlier pair joins its claim
 * to that row's (with mokd's chosen LR the default, "no tuning needed" is "better than tuned KD"), so Holm counts
 * each distinct comparison once.
 */
export function distinctComparisons(rows: Row[]): [string, string, Choice, Choice][] {
  const out: [string, string, Choice, Choice][] = [];
  for (const [claim, question, a, b] of rows) {
    if (!a || !b || a.config === b.config) continue;
    const same = out.find(([, , x, y]) => x.config === a.config && y.config === b.config);
    if (same) same[0] = `${same[0]}; ${claim}`;
    else out.push([claim, question, a, b]);
  }
  return out;
}

const testBySeed = (c: Config) => new Map([...c.runs].map(([s, r]) => [s, r.testAccuracy * 100]));

/** Epochs (fractional) at which a run's validation first reaches `target`; the run's length when it never does. */
function epochsToReach(
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
const speedTarget = (fixed: Choice) =>
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

/**
 * Epochs saved by `fast` over `fixed` to the fixed cell's mean final validation accuracy, paired by seed: the
 * fixed cell's epochs minus the other's (positive, and a "win": it got there sooner).
 */
function epochsSaved(fast: Choice, fixed: Choice, stepsPerEpoch: number): Interval {
  const target = speedTarget(fixed);
  const epochsBySeed = (c: Config) =>
    new Map([...c.runs].map(([s, r]) => [s, epochsToReach(r, target, stepsPerEpoch).epochs]));
  return pairedInterval(epochsBySeed(fixed.config), epochsBySeed(fast.config));
}

export interface SettingAnalysis {
  setting: string;
  seeds: number[];
  defaultLearningRate: number;
  choices: Choice[];
  comparisons: Comparison[];
  speed: {
    target: number;
    rows: { label: string; epochs: number; reached: number; n: number; secondsPerEpoch: number }[];
  };
  /** Validation gained over the last quarter of training by each chosen configuration (mean, SE; points). */
  plateau: { label: string; gain: number; se: number }[];
  grid: Config[];
}

export function analyse(
  setting: string,
  runs: Run[],
  defaultLearningRate: number,
  stepsPerEpoch: number,
): SettingAnalysis {
  const { configs, seeds } = configurations(runs.filter((r) => r.setting === setting));
  const of = (pred: (c: Config) => boolean) => configs.filter(pred);
  const atDefault = (c: Config) => c.learningRate === defaultLearningRate;
  const named = (name: string) => (c: Config) => c.method.endsWith(` ${name}`) && c.kind === "auto";
  const fixed = of((c) => c.kind === "fixed");
  // The student alone is the KD grid's alpha 0 (cross-entropy only): a best cell next to it is not at an edge.
  const aloneAlpha = of((c) => c.kind === "alone").length ? [0] : [];
  const optional = {
    alone: maybeChoose(
      "student alone, LR tuned",
      of((c) => c.kind === "alone"),
    ),
    fixed: maybeChoose("best fixed cell, alpha and LR tuned", fixed, aloneAlpha),
    fixedDefault: maybeChoose("best fixed cell at the default LR", fixed.filter(atDefault), aloneAlpha),
    published: maybeChoose(
      `published weighting (${publishedCell(fixed)}), LR tuned`,
      fixed.filter((c) => isPublished(c, fixed)),
    ),
    mokd: maybeChoose("mokd, LR tuned", of(named("mokd"))),
    mokdDefault: maybeChoose("mokd at the default LR (untuned)", of(named("mokd")).filter(atDefault)),
    normalized: maybeChoose("mokd-normalized, LR tuned", of(named("mokd-normalized"))),
    sumLog: maybeChoose(
      "best sum-log cell, alpha and LR tuned",
      of((c) => c.kind === "fixed-log"),
    ),
    mokdAmortized: maybeChoose("FAMO (mokd-amortized), LR tuned", of(named("mokd-amortized"))),
  };
  const { fixed: fixedChoice, mokd: mokdChoice } = optional;
  if (!fixedChoice || !mokdChoice) throw new Error(`${setting}: the analysis needs fixed cells and mokd`);
  const choices = { ...optional, fixed: fixedChoice, mokd: mokdChoice };
  const rows = distinctComparisons([
    ["better than tuned KD", "mokd vs the best fixed cell, both LR tuned", choices.mokd, choices.fixed],
    [
      "no tuning needed",
      "mokd at the default LR vs the best fixed cell with alpha and LR tuned",
      choices.mokdDefault,
      choices.fixed,
    ],
    [
      "no tuning needed (weighting only)",
      "mokd vs the best fixed cell, both at the default LR",
      choices.mokdDefault,
      choices.fixedDefault,
    ],
    [
      "control: step size",
      "mokd-normalized vs the best fixed cell, both LR tuned",
      choices.normalized,
      choices.fixed,
    ],
    ["control: step size", "mokd vs mokd-normalized, both LR tuned", choices.mokd, choices.normalized],
    [
      "control: log scaling",
      "best sum-log cell vs the best fixed cell, both tuned",
      choices.sumLog,
      choices.fixed,
    ],
    ["control: log scaling", "mokd vs the best sum-log cell, both tuned", choices.mokd, choices.sumLog],
    [
      "mokd-amortized",
      "mokd-amortized (FAMO) vs the best fixed cell, both LR tuned",
      choices.mokdAmortized,
      choices.fixed,
    ],
    [
      "learning rate vs weighting",
      "best fixed cell: tuned LR vs the default LR",
      choices.fixed,
      choices.fixedDefault,
    ],
    ["learning rate vs weighting", "mokd: tuned LR vs the default LR", choices.mokd, choices.mokdDefault],
  ]);
  const target = speedTarget(choices.fixed);
  const intervals = [
    ...rows.map(([, , a, b]) => pairedInterval(testBySeed(a.config), testBySeed(b.config))),
    epochsSaved(choices.mokd, choices.fixed, stepsPerEpoch),
  ];
  const adjusted = holm(intervals.map((i) => i.p));
  const speedComparison: [string, string, Choice, Choice] = [
    "fewer epochs",
    "epochs saved by mokd over the best fixed cell, both LR tuned, to the fixed cell's mean final validation accuracy (never reached: the run's length)",
    choices.mokd,
    choices.fixed,
  ];
  const comparisons: Comparison[] = [...rows, speedComparison].map(([claim, question, a, b], i) => ({
    claim,
    question,
    a,
    b,
    unit: i < rows.length ? "points" : "epochs",
    interval: intervals[i]!,
    holmP: adjusted[i]!,
  }));
  const speedOf = (c: Choice) => {
    const runs = [...c.config.runs.values()];
    const reach = runs.map((r) => epochsToReach(r, target, stepsPerEpoch));
    return {
      label: c.label,
      epochs: mean(reach.map((x) => x.epochs)),
      reached: reach.filter((x) => x.reached).length,
      n: reach.length,
      // Training steps' wall time per epoch (evaluation excluded): MoKD's per-objective backward passes counted.
      secondsPerEpoch: mean(runs.map((r) => r.secondsPerEpoch)),
    };
  };
  const speed = {
    target,
    rows: [choices.fixed, choices.mokd, choices.normalized, choices.sumLog, choices.mokdAmortized]
      .filter((c) => c !== undefined)
      .map(speedOf),
  };
  const chosen = Object.values(choices).filter((c) => c !== undefined);
  const plateau = chosen.map((c) => {
    const gains = [...c.config.runs.values()].map(lateValidationGain);
    return { label: c.label, gain: mean(gains), se: se(gains) };
  });
  return { setting, seeds, defaultLearningRate, choices: chosen, comparisons, speed, plateau, grid: configs };
}

export interface AdaptationAnalysis {
  setting: string;
  seeds: number[];
  choices: Choice[];
  comparisons: Comparison[];
}

/**
 * The adaptation module (claim 4): exact MoKD with the feature objective through the projector (`featureLoss
 * mokd`) against exact MoKD without it (`baseLoss mokd`), and the projector's own update (`featureLoss mokd
 * projector=own`) against the weighted one; each method's learning rate chosen on validation, test paired by seed
 * over the seeds all of them finished, Holm over these comparisons.
 */
export function analyseAdaptation(
  setting: string,
  runs: Run[],
  baseLoss: string,
  featureLoss: string,
  defaultLearningRate: number,
): AdaptationAnalysis {
  const names = [`${baseLoss} mokd`, `${featureLoss} mokd`, `${featureLoss} mokd projector=own`];
  // The same question under FAMO, when both of its configurations ran (evidence-adaptation-famo.yaml).
  const famoNames = [`${baseLoss} mokd-amortized`, `${featureLoss} mokd-amortized`];
  const withFamo = famoNames.every((n) => runs.some((r) => r.setting === setting && base(r) === n));
  const wanted = withFamo ? [...names, ...famoNames] : names;
  const relevant = runs.filter((r) => r.setting === setting && r.kind === "auto" && wanted.includes(base(r)));
  const { configs, seeds } = configurations(relevant);
  const of = (name: string) => configs.filter((c) => c.method === name);
  const atDefault = (c: Config) => c.learningRate === defaultLearningRate;
  const without = chooseOnValidation("mokd without the feature objective, LR tuned", of(names[0]!));
  const withModule = chooseOnValidation(
    "mokd with the feature objective (weighted projector), LR tuned",
    of(names[1]!),
  );
  const own = chooseOnValidation(
    "mokd with the feature objective (projector's own update), LR tuned",
    of(names[2]!),
  );
  const withoutDefault = chooseOnValidation(
    "mokd without the feature objective, default LR",
    of(names[0]!).filter(atDefault),
  );
  const withDefault = chooseOnValidation(
    "mokd with the feature objective (weighted), default LR",
    of(names[1]!).filter(atDefault),
  );
  const rows: [string, string, Choice, Choice][] = [
    [
      "the adaptation module helps",
      "mokd with the feature objective vs without, both LR tuned",
      withModule,
      without,
    ],
    ["the adaptation module helps", "the same, both at the default LR", withDefault, withoutDefault],
    ["projectorUpdate", "`own` vs `weighted` (both with the feature objective, LR tuned)", own, withModule],
  ];
  const famoChoices: Choice[] = [];
  if (withFamo) {
    const famoWithout = chooseOnValidation("FAMO without the feature objective, LR tuned", of(famoNames[0]!));
    const famoWith = chooseOnValidation("FAMO with the feature objective, LR tuned", of(famoNames[1]!));
    famoChoices.push(famoWithout, famoWith);
    rows.push([
      "the adaptation module helps",
      "under FAMO: with the feature objective vs without, both LR tuned",
      famoWith,
      famoWithout,
    ]);
  }
  const intervals = rows.map(([, , a, b]) => pairedInterval(testBySeed(a.config), testBySeed(b.config)));
  const adjusted = holm(intervals.map((i) => i.p));
  return {
    setting,
    seeds,
    choices: [without, withModule, own, withoutDefault, withDefault, ...famoChoices],
    comparisons: rows.map(([claim, question, a, b], i) => ({
      claim,
      question,
      a,
      b,
      unit: "points",
      interval: intervals[i]!,
      holmP: adjusted[i]!,
    })),
  };
}

export interface PairsAnalysis {
  setting: string;
  seeds: number[];
  choices: Choice[];
  comparisons: Comparison[];
}

/**
 * Named variants against their bases (`--pairs "kd mokd minWeight=0.1:kd mokd"`): each method's learning rate
 * chosen on validation, test paired by seed over the seeds all of them finished, Holm over these pairs.
 */
export function analysePairs(setting: string, runs: Run[], pairs: [string, string][]): PairsAnalysis {
  // A side may be a set of methods, "a|b|c" (a grid of variants): the choice is made among all of them.
  const sides = [...new Set(pairs.flat())];
  const members = (side: string) => side.split("|");
  const names = sides.flatMap(members);
  const relevant = runs.filter((r) => r.setting === setting && names.includes(base(r)));
  const { configs, seeds } = configurations(relevant);
  const chosen = new Map(
    sides.map((side) => [
      side,
      chooseOnValidation(
        `${members(side).join(" or ")}, ${members(side).length > 1 ? "variant and " : ""}LR tuned`,
        configs.filter((c) => members(side).includes(c.method)),
      ),
    ]),
  );
  const rows = pairs.map(([a, b]) => [chosen.get(a)!, chosen.get(b)!] as const);
  const intervals = rows.map(([a, b]) => pairedInterval(testBySeed(a.config), testBySeed(b.config)));
  const adjusted = holm(intervals.map((i) => i.p));
  return {
    setting,
    seeds,
    choices: [...chosen.values()],
    comparisons: rows.map(([a, b], i) => ({
      claim: "variant",
      question: `${a.config.method} vs ${b.config.method}, both LR tuned`,
      a,
      b,
      unit: "points",
      interval: intervals[i]!,
      holmP: adjusted[i]!,
    })),
  };
}

export interface BestLossAnalysis {
  setting: string;
  losses: string[];
  seeds: number[];
  choices: Choice[];
  comparisons: Comparison[];
}

/**
 * Issue 16's "a method's best loss, the best of anything", chosen on validation like every other choice: exact
 * MoKD's loss and learning rate against the best fixed cell of any loss (loss, alpha and learning rate), and MoKD
 * at the default rate (its loss chosen on validation) against the same; paired by seed over the seeds every
 * configuration of these losses finished, Holm over these comparisons.
 */
export function analyseBestLoss(
  setting: string,
  runs: Run[],
  losses: string[],
  defaultLearningRate: number,
  stepsPerEpoch: number,
): BestLossAnalysis {
  const relevant = runs.filter(
    (r) => r.setting === setting && r.loss !== undefined && losses.includes(r.loss),
  );
  const { configs, seeds } = configurations(relevant);
  const mokdOf = (loss: string) => configs.filter((c) => c.kind === "auto" && c.method === `${loss} mokd`);
  const fixedOf = (loss: string) =>
    configs.filter((c) => c.kind === "fixed" && c.method.startsWith(`${loss} sum `));
  const atDefault = (c: Config) => c.learningRate === defaultLearningRate;
  const mokd = losses.flatMap(mokdOf);
  const fixedChoice = chooseOnValidation(
    "best fixed cell of any loss, loss, alpha and LR tuned",
    losses.flatMap(fixedOf),
  );
  const mokdChoice = chooseOnValidation("mokd, loss and LR tuned", mokd);
  const mokdDefault = chooseOnValidation("mokd at the default LR, loss tuned", mokd.filter(atDefault));
  // Each loss's own claims beside the any-loss ones, in one Holm family: reading four losses' tables multiplies
  // the comparisons, and this family counts them.
  const aloneAlpha = runs.some((r) => r.setting === setting && r.kind === "alone") ? [0] : [];
  const perLoss = losses.map((loss) => ({
    loss,
    fixed: chooseOnValidation(`${loss}: best fixed cell, alpha and LR tuned`, fixedOf(loss), aloneAlpha),
    mokd: chooseOnValidation(`${loss}: mokd, LR tuned`, mokdOf(loss)),
    mokdDefault: chooseOnValidation(`${loss}: mokd at the default LR`, mokdOf(loss).filter(atDefault)),
  }));
  type Item = [claim: string, question: string, a: Choice, b: Choice, unit: Comparison["unit"]];
  const items: Item[] = [
    [
      "better than tuned KD (any loss)",
      "mokd vs the best fixed cell of any loss",
      mokdChoice,
      fixedChoice,
      "points",
    ],
    [
      "no tuning needed (any loss)",
      "mokd at the default LR vs the best fixed cell of any loss",
      mokdDefault,
      fixedChoice,
      "points",
    ],
    ...perLoss.flatMap((l): Item[] => [
      [
        `better than tuned KD (${l.loss})`,
        "mokd vs the best fixed cell, both LR tuned",
        l.mokd,
        l.fixed,
        "points",
      ],
      [
        `no tuning needed (${l.loss})`,
        "mokd at the default LR vs the best fixed cell, alpha and LR tuned",
        l.mokdDefault,
        l.fixed,
        "points",
      ],
      [
        `fewer epochs (${l.loss})`,
        "epochs saved by mokd (LR tuned) to the best fixed cell's mean final validation accuracy",
        l.mokd,
        l.fixed,
        "epochs",
      ],
    ]),
  ];
  // A loss's row repeats the any-loss pair when that loss holds both choices: counted once, claims joined.
  const distinct: Item[] = [];
  for (const item of items) {
    const same = distinct.find(
      ([, , a, b, u]) => a.config === item[2].config && b.config === item[3].config && u === item[4],
    );
    if (same) same[0] = `${same[0]}; ${item[0]}`;
    else distinct.push([...item]);
  }
  const intervals = distinct.map(([, , a, b, unit]) =>
    unit === "epochs"
      ? epochsSaved(a, b, stepsPerEpoch)
      : pairedInterval(testBySeed(a.config), testBySeed(b.config)),
  );
  const adjusted = holm(intervals.map((i) => i.p));
  return {
    setting,
    losses,
    seeds,
    choices: [
      fixedChoice,
      mokdChoice,
      mokdDefault,
      ...perLoss.flatMap((l) => [l.fixed, l.mokd, l.mokdDefault]),
    ],
    comparisons: distinct.map(([claim, question, a, b, unit], i) => ({
      claim,
      question,
      a,
      b,
      unit,
      interval: intervals[i]!,
      holmP: adjusted[i]!,
    })),
  };
}

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "—");
const signed = (x: number) => `${x >= 0 ? "+" : ""}${f2(x)}`;
const p3 = (p: number) => (Number.isNaN(p) ? "—" : p < 0.001 ? "<0.001" : p.toFixed(3));
const describeChoice = (c: Choice) =>
  `${c.config.method} @ lr ${c.config.learningRate}${c.edges.length ? ` (edge: ${c.edges.join("; ")})` : ""}`;

const choiceRow = (c: Choice) => {
  const t = [...c.config.runs.values()].map((r) => r.testAccuracy * 100);
  return `| ${c.label} | ${describeChoice(c)} | ${f2(c.config.validation)} | ${f2(mean(t))} ± ${f2(se(t))} |`;
};

const comparisonRow = (c: Comparison) =>
  `| ${c.claim} | ${c.question} | ${signed(c.interval.mean)} ${c.unit} | [${signed(c.interval.low)}, ${signed(c.interval.high)}] | ` +
  `${c.interval.wins}/${c.interval.n} | ${p3(c.interval.p)} | ${p3(c.holmP)} |`;

export function markdown(a: SettingAnalysis): string {
  const lines = [
    `### ${a.setting}: ${a.seeds.length} seeds (${a.seeds.join(", ")}), default LR ${a.defaultLearningRate}`,
    "",
    "Choices (mean validation accuracy over the seeds; test accuracy of the chosen configuration, read once):",
    "",
    "| choice | configuration | validation % | test % (mean ± SE) |",
    "|---|---|---|---|",
    ...a.choices.map(choiceRow),
    "",
    `Headline comparisons (test accuracy, paired by seed; 95% t-interval df = n - 1; Holm over these ${a.comparisons.length}):`,
    "",
    "| claim | comparison | difference | 95% CI | wins | p | Holm p |",
    "|---|---|---|---|---|---|---|",
    ...a.comparisons.map(comparisonRow),
    "",
    `Speed: epochs to the best tuned fixed cell's mean final validation accuracy (${f2(a.speed.target)}%); a run that never reaches it counts its full length:`,
    "",
    "| configuration | epochs (mean) | seeds reaching | step wall time per epoch, s (loaded machine) | to reach, s |",
    "|---|---|---|---|---|",
    ...a.speed.rows.map(
      (r) =>
        `| ${r.label} | ${f2(r.epochs)} | ${r.reached}/${r.n} | ${f2(r.secondsPerEpoch)} | ${f2(r.epochs * r.secondsPerEpoch)} |`,
    ),
    "",
    "Plateau: validation accuracy gained over the last quarter of the training steps (near 0: the runs had plateaued):",
    "",
    "| choice | gain, points (mean ± SE) |",
    "|---|---|",
    ...a.plateau.map((p) => `| ${p.label} | ${signed(p.gain)} ± ${f2(p.se)} |`),
    "",
    "Every configuration (results over the learning-rate grid):",
    "",
    "| method | LR | validation % | test % (mean ± SE) |",
    "|---|---|---|---|",
    ...[...a.grid]
      .sort((x, y) => x.method.localeCompare(y.method) || x.learningRate - y.learningRate)
      .map((c) => {
        const t = [...c.runs.values()].map((r) => r.testAccuracy * 100);
        return `| ${c.method} | ${c.learningRate} | ${f2(c.validation)} | ${f2(mean(t))} ± ${f2(se(t))} |`;
      }),
  ];
  return lines.join("\n");
}

/** A titled section of choices and their paired comparisons (the adaptation, best-loss and pairs analyses). */
function comparisonSection(title: string, a: { choices: Choice[]; comparisons: Comparison[] }): string {
  return [
    title,
    "",
    "Choices (mean validation accuracy over the seeds; test accuracy of the chosen configuration, read once):",
    "",
    "| choice | configuration | validation % | test % (mean ± SE) |",
    "|---|---|---|---|",
    ...a.choices.map(choiceRow),
    "",
    `Comparisons (test accuracy, paired by seed; 95% t-interval df = n - 1; Holm over these ${a.comparisons.length}):`,
    "",
    "| claim | comparison | difference | 95% CI | wins | p | Holm p |",
    "|---|---|---|---|---|---|---|",
    ...a.comparisons.map(comparisonRow),
  ].join("\n");
}

const seedList = (seeds: number[]) => `${seeds.length} seeds (${seeds.join(", ")})`;

export const adaptationMarkdown = (a: AdaptationAnalysis) =>
  comparisonSection(`### ${a.setting}: the adaptation module, ${seedList(a.seeds)}`, a);

export const bestLossMarkdown = (a: BestLossAnalysis) =>
  comparisonSection(`### ${a.setting}: the best loss (${a.losses.join(", ")}), ${seedList(a.seeds)}`, a);

export const pairsMarkdown = (a: PairsAnalysis) =>
  comparisonSection(`### ${a.setting}: variants against their bases, ${seedList(a.seeds)}`, a);

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

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      json: { type: "string" },
      loss: { type: "string", default: "kd" },
      adaptation: { type: "string" },
      "best-loss": { type: "string" },
      pairs: { type: "string" },
    },
    allowPositionals: true,
  });
  const files = (positionals[0] ?? "trainer/bench/results/evidence.json").split(",");
  const all = files.map(
    (f) =>
      JSON.parse(readFileSync(f, "utf8")) as {
        study: { settings: { name: string; trainSamples: number; training: Record<string, unknown> }[] };
        runs: Run[];
      },
  );
  const runs = mergeRuns(all.map((r) => r.runs));
  // Every setting of any file, once (files may hold other settings or other rates of the same one).
  const settings = [...new Map(all.flatMap((r) => r.study.settings).map((s) => [s.name, s])).values()];
  // The headline analysis sees the student alone and the headline loss only (another loss, e.g. the feature
  // variant, has its own analysis).
  const headline = runs.filter((r) => r.loss === undefined || r.loss === values.loss);
  const analyses = settings.map((s) => {
    const batch = Number(s.training.batchSize ?? 64);
    return analyse(s.name, headline, Number(s.training.learningRate), Math.ceil(s.trainSamples / batch));
  });
  const featureLoss = values.adaptation;
  const adaptations = featureLoss
    ? settings
        .filter((s) => runs.some((r) => r.setting === s.name && r.loss === featureLoss))
        .map((s) =>
          analyseAdaptation(s.name, runs, values.loss, featureLoss, Number(s.training.learningRate)),
        )
    : [];
  const bestLossOf = values["best-loss"]?.split(",");
  const bestLoss = bestLossOf
    ? settings
        .filter((s) => bestLossOf.every((l) => runs.some((r) => r.setting === s.name && r.loss === l)))
        .map((s) =>
          analyseBestLoss(
            s.name,
            runs,
            bestLossOf,
            Number(s.training.learningRate),
            Math.ceil(s.trainSamples / Number(s.training.batchSize ?? 64)),
          ),
        )
    : [];
  const pairsOf = values.pairs?.split(",").map((p) => p.split(":") as [string, string]);
  const pairs = pairsOf
    ? settings
        .filter((s) =>
          pairsOf
            .flat()
            .flatMap((side) => side.split("|"))
            .every((n) => runs.some((r) => r.setting === s.name && base(r) === n)),
        )
        .map((s) => analysePairs(s.name, runs, pairsOf))
    : [];
  const sections = [
    ...analyses.map(markdown),
    ...adaptations.map(adaptationMarkdown),
    ...bestLoss.map(bestLossMarkdown),
    ...pairs.map(pairsMarkdown),
  ];
  process.stdout.write(`${sections.join("\n\n")}\n`);
  if (values.json)
    writeFileSync(values.json, JSON.stringify({ analyses, adaptations, bestLoss, pairs }, null, 2) + "\n");
}

if (import.meta.main) await main();
