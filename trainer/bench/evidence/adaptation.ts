// Claim 4, the adaptation module: exact MoKD (and FAMO) with the feature objective against the same without it.
import type { Run } from "../quality-report.ts";
import {
  base,
  chooseOnValidation,
  configurations,
  type Choice,
  type Comparison,
  type Config,
  comparisonsOf,
} from "./choices.ts";

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
  return {
    setting,
    seeds,
    choices: [without, withModule, own, withoutDefault, withDefault, ...famoChoices],
    comparisons: comparisonsOf(rows.map(([claim, question, a, b]) => [claim, question, a, b, "points"])),
  };
}
