// Named variants against their bases (e.g. an option against the method without it).
import type { Run } from "../quality-report.ts";
import {
  base,
  chooseOnValidation,
  configurations,
  type Choice,
  type Comparison,
  comparisonsOf,
} from "./choices.ts";

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
  return {
    setting,
    seeds,
    choices: [...chosen.values()],
    comparisons: comparisonsOf(
      rows.map(([a, b]) => [
        "variant",
        `${a.config.method} vs ${b.config.method}, both LR tuned`,
        a,
        b,
        "points",
      ]),
    ),
  };
}
