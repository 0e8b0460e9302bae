// A longer schedule against the study's own (issue 16's plateau): the configurations chosen on validation at the
// shorter schedule run again on the longer one, nothing re-chosen. Each is paired with itself across the two
// schedules (what the longer schedule gains), and the methods are compared with each other on the longer one.
import type { Run } from "../quality-report.ts";
import {
  base,
  configurations,
  distinctComparisons,
  plateauOf,
  type Choice,
  type Comparison,
  type Config,
  comparisonsOf,
  type Row,
} from "./choices.ts";

export interface ScheduleAnalysis {
  longer: string;
  shorter: string;
  seeds: number[];
  choices: Choice[];
  comparisons: Comparison[];
  /** Validation gained over the last quarter of the longer schedule (mean, SE; points). */
  plateau: { label: string; gain: number; se: number }[];
}

const key = (method: string, learningRate: number | undefined) => `${method}|${learningRate}`;

export function analyseSchedule(longer: string, shorter: string, runs: Run[]): ScheduleAnalysis {
  const longRuns = runs.filter((r) => r.setting === longer);
  const ran = new Set(longRuns.map((r) => key(base(r), r.learningRate)));
  const shortRuns = runs.filter((r) => r.setting === shorter && ran.has(key(base(r), r.learningRate)));
  // Seeds every configuration finished on both schedules.
  const shortSeeds = configurations(shortRuns).seeds;
  const seeds = configurations(longRuns).seeds.filter((s) => shortSeeds.includes(s));
  const atSeeds = (rs: Run[]) => configurations(rs.filter((r) => seeds.includes(r.seed))).configs;
  const longConfigs = atSeeds(longRuns);
  const shortConfigs = atSeeds(shortRuns);
  const choice = (setting: string, config: Config): Choice => ({ label: setting, config, edges: [] });
  const onLonger = new Map(longConfigs.map((c) => [c, choice(longer, c)]));
  const rows: Row[] = [];
  for (const c of longConfigs) {
    const s = shortConfigs.find((x) => key(x.method, x.learningRate) === key(c.method, c.learningRate));
    rows.push([
      "longer schedule",
      `${c.method}: ${longer} vs ${shorter}`,
      onLonger.get(c),
      s && choice(shorter, s),
    ]);
  }
  // On the longer schedule, every other method against each fixed cell (the study's "better than tuned KD").
  for (const f of longConfigs.filter((c) => c.kind === "fixed"))
    for (const c of longConfigs.filter((x) => x.kind !== "fixed"))
      rows.push([`on ${longer}`, `${c.method} vs ${f.method}`, onLonger.get(c), onLonger.get(f)]);
  const distinct = distinctComparisons(rows);
  const choices = [...new Set(distinct.flatMap(([, , a, b]) => [a, b]))];
  const plateau = longConfigs.map((c) => plateauOf(`${c.method} @ lr ${c.learningRate}`, c));
  return { longer, shorter, seeds, choices, comparisons: comparisonsOf(distinct), plateau };
}
