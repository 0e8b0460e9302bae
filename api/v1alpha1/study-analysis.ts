// The study's answer from its runs: each arm over its seeds, the winner chosen on validation accuracy, and each
// automatic weighting against the best fixed cell, paired by seed, with a 95% t-interval. The operator writes it
// to status and the trainer's study report prints it; defined once so the two never disagree.
//
// Every choice (the best arm, the best fixed cell) is made on mean best-validation accuracy; test accuracy is
// only reported, for the arm chosen, and in the paired differences of the chosen comparisons.
import { mean, pairedInterval } from "../stats.ts";
import type { DistillationStudyStatus, VariantStatus } from "./distillationstudy.ts";

type Answer = Pick<DistillationStudyStatus, "arms" | "best" | "comparisons">;
type ArmSummary = NonNullable<DistillationStudyStatus["arms"]>[number];
type Comparison = NonNullable<DistillationStudyStatus["comparisons"]>[number];

const isFixedArm = (arm: string) => arm.includes("@");
const isAutomaticArm = (arm: string) => arm !== "alone" && !isFixedArm(arm);

/** Succeeded runs with a validation accuracy, grouped by arm in first-seen order. */
function succeededByArm(variants: VariantStatus[]): Map<string, VariantStatus[]> {
  const byArm = new Map<string, VariantStatus[]>();
  for (const v of variants) {
    if (v.phase !== "Succeeded" || v.bestValidationAccuracy === undefined) continue;
    byArm.set(v.arm, [...(byArm.get(v.arm) ?? []), v]);
  }
  return byArm;
}

function summarise(arm: string, runs: VariantStatus[]): ArmSummary {
  const tests = runs.flatMap((r) => (r.testAccuracy === undefined ? [] : [r.testAccuracy]));
  return {
    arm,
    seeds: runs.length,
    meanValidationAccuracy: mean(runs.map((r) => r.bestValidationAccuracy ?? 0)),
    ...(tests.length === runs.length ? { meanTestAccuracy: mean(tests) } : {}),
    deviceSeconds: runs.reduce((s, r) => s + (r.deviceSeconds ?? 0), 0),
  };
}

/** The arm with the highest mean validation accuracy (ties: the first in study order). */
function bestOf(arms: ArmSummary[]): ArmSummary | undefined {
  return arms.reduce<ArmSummary | undefined>(
    (best, a) => (best === undefined || a.meanValidationAccuracy > best.meanValidationAccuracy ? a : best),
    undefined,
  );
}

const testBySeed = (runs: VariantStatus[]) =>
  new Map(runs.flatMap((r) => (r.testAccuracy === undefined ? [] : [[r.seed, r.testAccuracy] as const])));

function compare(arm: string, runs: VariantStatus[], against: string, fixed: VariantStatus[]): Comparison {
  const d = pairedInterval(testBySeed(runs), testBySeed(fixed));
  return {
    arm,
    against,
    pairs: d.n,
    meanDifference: d.n > 0 ? d.mean : 0,
    ...(Number.isFinite(d.low) ? { lower: d.low, upper: d.high } : {}),
    wins: d.wins,
  };
}

/** The answer so far: complete once every run has ended, provisional (and marked so by the caller) before. */
export function analyseStudy(variants: VariantStatus[]): Answer {
  const byArm = succeededByArm(variants);
  const arms = [...byArm].map(([arm, runs]) => summarise(arm, runs));
  if (arms.length === 0) return {};
  const best = bestOf(arms)!;
  const bestFixed = bestOf(arms.filter((a) => isFixedArm(a.arm)));
  const comparisons = bestFixed
    ? arms
        .filter((a) => isAutomaticArm(a.arm))
        .map((a) => compare(a.arm, byArm.get(a.arm)!, bestFixed.arm, byArm.get(bestFixed.arm)!))
    : [];
  return {
    arms,
    best: {
      arm: best.arm,
      meanValidationAccuracy: best.meanValidationAccuracy,
      ...(best.meanTestAccuracy === undefined ? {} : { meanTestAccuracy: best.meanTestAccuracy }),
    },
    ...(comparisons.length ? { comparisons } : {}),
  };
}
