// What the study cost (issue 16, point 4 asks for its run time and a budget): per setting, the runs the analysis
// merged and the wall time each run's process recorded. The runs ran at `nice -n 19`, two or three at a time and
// often beside CI, so the hours are those of a loaded 2-core machine, not of a quiet one; the median run is the
// fairer figure to scale from.
import { median } from "../../src/report/figures.ts";
import type { Run } from "../quality-report.ts";

export interface SettingCost {
  setting: string;
  runs: number;
  /** Distinct methods at one learning rate. */
  configurations: number;
  seeds: number;
  /** Runs that recorded their wall time (older results files did not). */
  timed: number;
  hours: number;
  medianSeconds: number;
}

/** Per setting, in order of first appearance. */
export function analyseCost(runs: Run[]): SettingCost[] {
  const bySetting = Map.groupBy(runs, (r) => r.setting);
  return [...bySetting].map(([setting, rs]) => {
    const seconds = rs.flatMap((r) => (r.seconds === undefined ? [] : [r.seconds]));
    return {
      setting,
      runs: rs.length,
      configurations: new Set(rs.map((r) => r.method)).size,
      seeds: new Set(rs.map((r) => r.seed)).size,
      timed: seconds.length,
      hours: seconds.reduce((a, b) => a + b, 0) / 3600,
      medianSeconds: median(seconds),
    };
  });
}
