// "A method's best loss, the best of anything" (issue 16), chosen on validation like every other choice.
import type { Run } from "../quality-report.ts";
import {
  chooseOnValidation,
  configurations,
  distinctComparisons,
  type Choice,
  type Comparison,
  type Config,
  type Row,
  comparisonsOf,
} from "./choices.ts";

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
  const items: Row[] = [
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
    ...perLoss.flatMap((l): Row[] => [
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
  const comparisons = comparisonsOf(distinctComparisons(items), stepsPerEpoch);
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
    comparisons,
  };
}
