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
//     [--schedule "longer:shorter"] (the configurations a longer-schedule setting ran, against themselves in the
//     shorter setting and against each other: the plateau check)
//     [--cost] (only the study's cost per setting: runs, configurations, seeds, recorded wall time)
// Several files (one per range of seeds, --first-seed) are merged; a (setting, method, seed) two files both hold
// is taken from the first.
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { Run } from "./quality-report.ts";
import { analyseAdaptation } from "./evidence/adaptation.ts";
import { analyseBestLoss } from "./evidence/best-loss.ts";
import { base, mergeRuns } from "./evidence/choices.ts";
import { analyseCost } from "./evidence/cost.ts";
import {
  adaptationMarkdown,
  bestLossMarkdown,
  costMarkdown,
  markdown,
  pairsMarkdown,
  scheduleMarkdown,
} from "./evidence/markdown.ts";
import { analysePairs } from "./evidence/pairs.ts";
import { analyseSchedule } from "./evidence/schedule.ts";
import { analyse } from "./evidence/setting.ts";

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      json: { type: "string" },
      loss: { type: "string", default: "kd" },
      adaptation: { type: "string" },
      "best-loss": { type: "string" },
      pairs: { type: "string" },
      schedule: { type: "string" },
      cost: { type: "boolean", default: false },
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
  if (values.cost) {
    process.stdout.write(`${costMarkdown(analyseCost(runs))}\n`);
    return;
  }
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
  const [longer, shorter] = values.schedule?.split(":") ?? [];
  const schedules = longer && shorter ? [analyseSchedule(longer, shorter, runs)] : [];
  const sections = [
    ...analyses.map(markdown),
    ...adaptations.map(adaptationMarkdown),
    ...bestLoss.map(bestLossMarkdown),
    ...pairs.map(pairsMarkdown),
    ...schedules.map(scheduleMarkdown),
  ];
  process.stdout.write(`${sections.join("\n\n")}\n`);
  if (values.json)
    writeFileSync(
      values.json,
      JSON.stringify({ analyses, adaptations, bestLoss, pairs, schedules }, null, 2) + "\n",
    );
}

if (import.meta.main) await main();
