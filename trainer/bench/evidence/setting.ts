// A setting's headline analysis: the method's claims (better than tuned KD, no tuning needed, fewer epochs) and
// the controls that explain them, each choice on validation, Holm over the setting's distinct comparisons.
import type { Run } from "../quality-report.ts";
import { mean } from "../stats.ts";
import {
  distinctComparisons,
  epochsToReach,
  isPublished,
  maybeChoose,
  plateauOf,
  publishedCell,
  speedTarget,
  configurations,
  type Choice,
  type Comparison,
  type Config,
  comparisonsOf,
} from "./choices.ts";

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
    [
      "fewer epochs",
      "epochs saved by mokd over the best fixed cell, both LR tuned, to the fixed cell's mean final validation accuracy (never reached: the run's length)",
      choices.mokd,
      choices.fixed,
      "epochs",
    ],
  ]);
  const target = speedTarget(choices.fixed);
  const comparisons = comparisonsOf(rows, stepsPerEpoch);
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
  const plateau = chosen.map((c) => plateauOf(c.label, c.config));
  return { setting, seeds, defaultLearningRate, choices: chosen, comparisons, speed, plateau, grid: configs };
}
