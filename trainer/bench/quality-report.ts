// The quality benchmark's report: per setting, every method's test accuracy (mean ± standard error over seeds)
// and its difference from the student alone paired by seed; per loss, the fixed-weight grid's spread and each
// automatic weighting against the grid's best cell, paired by seed.
import { mean, paired, pm, se, signed } from "./stats.ts";
import type { MethodKind } from "./study.ts";

export interface Run {
  setting: string;
  /** The method's name, with " lr=<rate>" when the setting has a learning-rate grid. */
  method: string;
  /** The method without its learning rate; absent in results from before the grid. */
  baseMethod?: string;
  /** The student's learning rate of this run; absent in results from before the grid. */
  learningRate?: number;
  loss?: string;
  kind: MethodKind;
  seed: number;
  testAccuracy: number;
  bestValidationAccuracy: number;
  epochsToTarget: number | null;
  secondsPerEpoch: number;
  conflictRate: number;
  /** [optimiser steps, validation accuracy] of every evaluation (the speed comparison reads it). */
  validationCurve?: [number, number][];
  /** Wall time of the run (training, evaluations, test). */
  seconds?: number;
}

/** Test accuracy in points, keyed by seed. */
const bySeed = (runs: Run[]) => new Map(runs.map((r) => [r.seed, r.testAccuracy * 100]));

function methodTable(runs: Run[], target: number): string[] {
  const names = [...new Set(runs.map((r) => r.method))];
  const alone = runs.filter((r) => r.kind === "alone");
  const lines = [
    `| method | test accuracy % (mean ± SE) | vs student alone (paired, points) | best val. % | epochs to ${target} val. | s/epoch | conflict |`,
    "|---|---|---|---|---|---|---|",
  ];
  for (const name of names) {
    const r = runs.filter((x) => x.method === name);
    const acc = r.map((x) => x.testAccuracy * 100);
    const d = paired(bySeed(r), bySeed(alone));
    const vsAlone =
      r[0]!.kind === "alone" || !alone.length ? "—" : `${signed(d.mean, d.se)} (${d.wins}/${d.n})`;
    const reached = r.flatMap((x) => (x.epochsToTarget === null ? [] : [x.epochsToTarget]));
    const epochs = reached.length
      ? `${mean(reached).toFixed(2)} (${reached.length}/${r.length})`
      : `— (0/${r.length})`;
    lines.push(
      `| ${name} | ${pm(mean(acc), se(acc))} (n=${r.length}) | ${vsAlone} | ` +
        `${mean(r.map((x) => x.bestValidationAccuracy * 100)).toFixed(2)} | ${epochs} | ` +
        `${mean(r.map((x) => x.secondsPerEpoch)).toFixed(1)} | ${(mean(r.map((x) => x.conflictRate)) * 100).toFixed(1)}% |`,
    );
  }
  return lines;
}

/** Per loss: the grid's best and worst cell, and each automatic weighting minus the best cell, paired by seed. */
function lossTable(runs: Run[]): string[] {
  const lines = [
    "| loss | best fixed cell (mean) | grid spread best - worst (points) | mean SE of a cell | automatic weighting | minus best cell (paired) | wins |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const loss of [...new Set(runs.flatMap((r) => (r.loss ? [r.loss] : [])))]) {
    const cells = group(runs.filter((r) => r.loss === loss && r.kind === "fixed"));
    if (!cells.length) continue;
    const means = cells.map(([name, r]) => ({
      name,
      r,
      mean: mean(r.map((x) => x.testAccuracy * 100)),
      validation: mean(r.map((x) => x.bestValidationAccuracy)),
    }));
    // The best cell is chosen on validation accuracy, never on test.
    const best = [...means].sort((a, b) => b.validation - a.validation)[0]!;
    const testMeans = means.map((m) => m.mean);
    const spread = Math.max(...testMeans) - Math.min(...testMeans);
    const cellSe = mean(means.map((m) => se(m.r.map((x) => x.testAccuracy * 100))));
    for (const [name, r] of group(runs.filter((x) => x.loss === loss && x.kind === "auto"))) {
      const d = paired(bySeed(r), bySeed(best.r));
      lines.push(
        `| ${loss} | ${best.name} (${best.mean.toFixed(2)}) | ${spread.toFixed(2)} | ${cellSe.toFixed(2)} | ${name} | ` +
          `${signed(d.mean, d.se)} | ${d.wins}/${d.n} |`,
      );
    }
  }
  return lines;
}

function group(runs: Run[]): [string, Run[]][] {
  const groups = new Map<string, Run[]>();
  for (const r of runs) groups.set(r.method, [...(groups.get(r.method) ?? []), r]);
  return [...groups];
}

export function report(runs: Run[], settings: string[], target: number): string {
  const sections = settings.map((setting) => {
    const r = runs.filter((x) => x.setting === setting);
    return [
      `### ${setting}`,
      "",
      ...methodTable(r, target),
      "",
      "The best fixed cell is picked by its mean validation accuracy; the spread is of test accuracy.",
      "",
      ...lossTable(r),
    ].join("\n");
  });
  return sections.join("\n\n");
}
