// The evidence analysis as markdown: trainer/bench/results/evidence-analysis.md and the docs' full analysis.
import { mean, se } from "../stats.ts";
import type { AdaptationAnalysis } from "./adaptation.ts";
import type { BestLossAnalysis } from "./best-loss.ts";
import type { Choice, Comparison } from "./choices.ts";
import type { SettingCost } from "./cost.ts";
import type { PairsAnalysis } from "./pairs.ts";
import type { ScheduleAnalysis } from "./schedule.ts";
import type { SettingAnalysis } from "./setting.ts";

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

/** The table of choices every section opens with. */
const choicesTable = (choices: Choice[]) => [
  "Choices (mean validation accuracy over the seeds; test accuracy of the chosen configuration, read once):",
  "",
  "| choice | configuration | validation % | test % (mean ± SE) |",
  "|---|---|---|---|",
  ...choices.map(choiceRow),
];

/** A Holm family's table of paired comparisons, titled. */
const comparisonsTable = (title: string, comparisons: Comparison[]) => [
  `${title} (test accuracy, paired by seed; 95% t-interval df = n - 1; Holm over these ${comparisons.length}):`,
  "",
  "| claim | comparison | difference | 95% CI | wins | p | Holm p |",
  "|---|---|---|---|---|---|---|",
  ...comparisons.map(comparisonRow),
];

/** Validation gained over the last quarter of training by each configuration. */
const plateauTable = (rows: SettingAnalysis["plateau"]) => [
  "Plateau: validation accuracy gained over the last quarter of the training steps (near 0: the runs had plateaued):",
  "",
  "| choice | gain, points (mean ± SE) |",
  "|---|---|",
  ...rows.map((p) => `| ${p.label} | ${signed(p.gain)} ± ${f2(p.se)} |`),
];

export function markdown(a: SettingAnalysis): string {
  const lines = [
    `### ${a.setting}: ${a.seeds.length} seeds (${a.seeds.join(", ")}), default LR ${a.defaultLearningRate}`,
    "",
    ...choicesTable(a.choices),
    "",
    ...comparisonsTable("Headline comparisons", a.comparisons),
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
    ...plateauTable(a.plateau),
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
  return [title, "", ...choicesTable(a.choices), "", ...comparisonsTable("Comparisons", a.comparisons)].join(
    "\n",
  );
}

const seedList = (seeds: number[]) => `${seeds.length} seeds (${seeds.join(", ")})`;

export const adaptationMarkdown = (a: AdaptationAnalysis) =>
  comparisonSection(`### ${a.setting}: the adaptation module, ${seedList(a.seeds)}`, a);

export const bestLossMarkdown = (a: BestLossAnalysis) =>
  comparisonSection(`### ${a.setting}: the best loss (${a.losses.join(", ")}), ${seedList(a.seeds)}`, a);

export const pairsMarkdown = (a: PairsAnalysis) =>
  comparisonSection(`### ${a.setting}: variants against their bases, ${seedList(a.seeds)}`, a);

export const scheduleMarkdown = (a: ScheduleAnalysis) =>
  [
    comparisonSection(
      `### ${a.longer} against ${a.shorter}: the configurations chosen on validation at the shorter schedule, nothing re-chosen, ${seedList(a.seeds)}`,
      a,
    ),
    "",
    ...plateauTable(a.plateau),
  ].join("\n");

/** The study's cost per setting, with the total. */
export function costMarkdown(costs: SettingCost[]): string {
  const total = costs.reduce((a, c) => ({ runs: a.runs + c.runs, hours: a.hours + c.hours }), {
    runs: 0,
    hours: 0,
  });
  return [
    "### The study's cost: every committed run and the wall time its process recorded",
    "",
    "Hours are summed over processes that ran at `nice -n 19`, two or three at a time, often beside CI (a loaded",
    "machine): the median run is the figure to scale from.",
    "",
    "| setting | runs | configurations | seeds | process hours | median run, s |",
    "|---|---|---|---|---|---|",
    ...costs.map(
      (c) =>
        `| ${c.setting} | ${c.runs}${c.timed < c.runs ? ` (${c.timed} timed)` : ""} | ${c.configurations} | ` +
        `${c.seeds} | ${c.hours.toFixed(1)} | ${c.medianSeconds.toFixed(1)} |`,
    ),
    `| all | ${total.runs} | | | ${total.hours.toFixed(1)} | |`,
  ].join("\n");
}
