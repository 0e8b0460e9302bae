// A real Prometheus scrapes a real trainer run and the real operator; every dashboard query and every alert
// expression must be accepted by Prometheus itself, and the core ones must return data.
import { tinyTrainerJob } from "../../fixtures/tiny-job.ts";
import { spawn } from "node:child_process";
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { CHART_DIR, ROOT } from "../../../scripts/generate.ts";
import { TRAINER_LABELS, TrainerMetric } from "../../../api/metrics.ts";
import { alertRules } from "../../../dashboards/alerts.ts";
import {
  conflictRate,
  dashboardQueries,
  expandGrafanaVariables,
  secondsSinceLastStep,
} from "../../../dashboards/queries.ts";
import type { RunSummary } from "../../../trainer/src/telemetry/run-summary.ts";
import { createTestNamespace, deleteNamespace, kubeconfigPath, kubectl, waitFor } from "../../bed/env.ts";
import { stopGroups, tail } from "../../bed/processes.ts";
import { freePort, Prometheus, prometheusBinDir } from "./prometheus.ts";

/** The CRD as the chart ships it (identical to crds/: the staleness test compares both with the schema). */
const CHART_CRD = join(CHART_DIR, "files", "crds", "distillation.mokd.io_distillationjobs.yaml");
const CHART_STUDY_CRD = join(CHART_DIR, "files", "crds", "distillation.mokd.io_distillationstudies.yaml");
const NODE = process.execPath;
const RULES = join(CHART_DIR, "files", "prometheus-rules.yaml");
const JOB = "tiny";

/** Dashboard panels that must show data for a finished run of two objectives (task + distillation). */
const CORE_TRAINER = [
  "losses",
  "gradientCosine",
  "conflictRate",
  "normRatio",
  "weights",
  "stepShare",
  "accuracy",
  "samplesPerSecond",
  "epochThroughput",
  "epochProgress",
  "stepDurationP90",
  "secondsSinceLastStep",
] as const;
const CORE_OPERATOR = ["jobsByPhase", "reconcileErrors", "reconcileRate", "queueDepth"] as const;

interface Proc {
  pid: number;
  log: string;
  exit: Promise<number | null>;
}

function startProcess(args: string[], env: Record<string, string>, dir: string, name: string): Proc {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, "a");
  const child = spawn(NODE, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { pid: child.pid!, log, exit };
}

function trainerManifest(namespace: string, dir: string, port: number) {
  return tinyTrainerJob({
    name: JOB,
    namespace,
    dir,
    metricsPort: port,
    maxTrainSamples: 2048,
    // Many seconds of student steps (~3900 steps; the fused wasm step of this MLP is ~2-5 ms): rates need at
    // least two scrapes (1 s apart) of the student counters while they grow. 20 epochs were once too few in CI
    // (the counters' first scrape came after the last step): the margin is wide on purpose.
    epochs: 60,
  });
}

let dir = "";
let namespace = "";
let prom: Prometheus | undefined;
let operator: Proc | undefined;
let trainer: Proc | undefined;
/** A moment when both targets were up: queries are evaluated there (the trainer's series go stale after it exits). */
let evalTime = 0;

beforeAll(async () => {
  execFileSync("bash", [join(ROOT, "scripts", "ensure-datasets.sh")]);
  prometheusBinDir();
  dir = mkdtempSync(join(tmpdir(), "mokd-prom-test-"));
  namespace = await createTestNamespace("prom");
  const crd = await kubectl([
    "apply",
    "--server-side",
    "--force-conflicts",
    "-f",
    CHART_CRD,
    "-f",
    CHART_STUDY_CRD,
  ]);
  expect(crd.code, crd.stderr).toBe(0);

  const [operatorPort, trainerPort] = [await freePort(), await freePort()];
  operator = startProcess(
    ["operator/src/main.ts", `--namespace=${namespace}`, `--port=${operatorPort}`, "--no-leader-elect"],
    { KUBECONFIG: kubeconfigPath() },
    dir,
    "operator",
  );
  prom = await Prometheus.start(
    [
      { job: "operator", address: `127.0.0.1:${operatorPort}` },
      { job: "trainer", address: `127.0.0.1:${trainerPort}` },
    ],
    [RULES],
  );
  // A DistillationJob for the operator to reconcile (its Job's pod runs on a kwok node: status only).
  const manifest = trainerManifest(namespace, dir, trainerPort);
  const applied = await kubectl(["apply", "-f", "-"], { input: JSON.stringify(manifest) });
  expect(applied.code, applied.stderr).toBe(0);

  const config = join(dir, "job.yaml");
  writeFileSync(config, stringify(manifest));
  trainer = startProcess(
    ["trainer/src/cli.ts", "train", "--config", config],
    // Linger: the final values must be scraped, and several scrapes after the last step give a window in which
    // no step was measured (the conflict rate's 0/0 case, see below).
    { MOKD_TERMINATION_LOG: join(dir, "termination-log"), MOKD_METRICS_LINGER_SECONDS: "4" },
    dir,
    "trainer",
  );
  const code = await trainer.exit;
  expect(code, tail(trainer.log)).toBe(0);
  // Two more operator scrapes after the run, so its rates have points on both sides.
  await new Promise((r) => setTimeout(r, 2500));
  evalTime = (await prom.lastUpTime("trainer")) ?? 0;
  expect(evalTime, `the trainer was never scraped\n${prom.log()}`).toBeGreaterThan(0);
}, 240_000);

afterAll(async () => {
  const pids = [operator?.pid, trainer?.pid].filter((p): p is number => p !== undefined);
  await stopGroups(pids);
  await prom?.stop();
  if (namespace) await deleteNamespace(namespace);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The summary.json the trainer wrote for this run. */
function runSummary(): RunSummary {
  return JSON.parse(readFileSync(join(dir, "output", "summary.json"), "utf8")) as RunSummary;
}

/** Whether each gradient-measured student step conflicted, in step order, from the run's metrics.jsonl. */
function measuredConflictFlags(): boolean[] {
  const records = readFileSync(join(dir, "output", "metrics.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { type: string; stage?: string; step?: number; conflict?: boolean });
  return records
    .filter((r) => r.type === "step" && r.stage === "student" && r.conflict !== undefined)
    .sort((a, b) => a.step! - b.step!)
    .map((r) => r.conflict!);
}

/** The raw samples [unix seconds, value] of a trainer series in the `window` before `time`. */
async function rawSamples(metric: string, window: string, time: number): Promise<[number, number][]> {
  const [series] = await prom!.query(`${metric}[${window}]`, time);
  return (series?.values ?? []).map(([t, v]) => [t, Number(v)]);
}

/**
 * Prometheus 2.x's rate() of one counter series over [start, end] (seconds), as promql/functions.go's
 * extrapolatedRate computes it: the increase between the first and last sample (resets added), extrapolated to
 * the window's edges when a sample is within 1.1 average intervals of them (else by half an interval), never
 * back past the counter's zero point; divided by the window.
 */
function prometheusRate(samples: [number, number][], start: number, end: number): number {
  const [first, last] = [samples[0]!, samples.at(-1)!];
  let increase = last[1] - first[1];
  for (let i = 1; i < samples.length; i++)
    if (samples[i]![1] < samples[i - 1]![1]) increase += samples[i - 1]![1];
  const sampled = last[0] - first[0];
  const average = sampled / (samples.length - 1);
  let toStart = first[0] - start;
  const toEnd = end - last[0];
  if (increase > 0 && first[1] >= 0) toStart = Math.min(toStart, sampled * (first[1] / increase));
  const threshold = average * 1.1;
  const extrapolated =
    sampled + (toStart < threshold ? toStart : average / 2) + (toEnd < threshold ? toEnd : average / 2);
  return (increase * (extrapolated / sampled)) / (end - start);
}

describe("Prometheus with a real trainer and operator", () => {
  it("accepts every dashboard query, and the core ones return data", async () => {
    const empty: string[] = [];
    for (const [panel, expr] of Object.entries(dashboardQueries)) {
      const result = await prom!.query(expandGrafanaVariables(expr), evalTime);
      if (result.length === 0) empty.push(panel);
    }
    const core: string[] = [...CORE_TRAINER, ...CORE_OPERATOR];
    expect(
      empty.filter((p) => core.includes(p)),
      `panels without data (all empty: ${empty.join(", ")})`,
    ).toEqual([]);
  });

  it("labels trainer series with the job and namespace the dashboard variables select", async () => {
    const series = await prom!.query(expandGrafanaVariables(dashboardQueries.losses), evalTime);
    expect(series.map((s) => s.metric[TRAINER_LABELS.job])).toContain(JOB);
    expect(series.map((s) => s.metric[TRAINER_LABELS.namespace])).toContain(namespace);
    expect(new Set(series.map((s) => s.metric.objective))).toEqual(new Set(["task", "distillation"]));
    const accuracy = await prom!.query(expandGrafanaVariables(dashboardQueries.accuracy), evalTime);
    for (const s of accuracy) {
      expect(Number(s.value![1])).toBeGreaterThanOrEqual(0);
      expect(Number(s.value![1])).toBeLessThanOrEqual(1);
    }
    const progress = await prom!.query(expandGrafanaVariables(dashboardQueries.epochProgress), evalTime);
    expect(Math.max(...progress.map((s) => Number(s.value![1])))).toBeLessThanOrEqual(1);
  });

  it("loads the alert rules (promtool and the server) and evaluates them without errors", async () => {
    const check = execFileSync(join(prometheusBinDir(), "promtool"), ["check", "rules", RULES], {
      encoding: "utf8",
    });
    expect(check).toContain(`SUCCESS: ${alertRules.length} rules found`);
    const rules = await waitFor("every rule evaluated", async () => {
      const r = await prom!.rules();
      return r.length === alertRules.length && r.every((x) => x.health !== "unknown") && r;
    });
    for (const r of rules) expect(r.health, `${r.name}: ${r.lastError}`).toBe("ok");
    for (const rule of alertRules) await prom!.query(rule.expr, evalTime);
  });

  it("the conflict counters at the last scrape are exactly the run's summary", async () => {
    const summary = runSummary();
    const [measured] = await prom!.query(TrainerMetric.measuredSteps, evalTime);
    const [conflicts] = await prom!.query(TrainerMetric.conflictSteps, evalTime);
    expect(Number(measured!.value![1])).toBe(summary.measuredSteps);
    expect(summary.measuredSteps).toBeGreaterThan(0);
    expect(Number(conflicts!.value![1]) / summary.measuredSteps).toBeCloseTo(summary.conflictRate, 12);
  });

  it("computes the alert's and dashboard's conflict rate as the run's own step records do", async () => {
    const [rate, ...others] = await prom!.query(conflictRate("1h", false), evalTime);
    expect(others).toEqual([]);
    // Prometheus sees the counters from their first scrape on, which may come after the first student steps:
    // the run's records say which steps those were. The counters' first samples must be exactly the counts of
    // the first records, and the rate over the scraped span is the records' conflict share after them.
    const measured = await rawSamples(TrainerMetric.measuredSteps, "1h", evalTime);
    const conflicts = await rawSamples(TrainerMetric.conflictSteps, "1h", evalTime);
    const flags = measuredConflictFlags();
    expect(flags.length).toBe(runSummary().measuredSteps);
    const [m0, c0] = [measured[0]![1], conflicts[0]![1]];
    expect(flags.slice(0, m0).filter(Boolean).length).toBe(c0);
    const later = flags.slice(m0);
    const recordsShare = later.filter(Boolean).length / later.length;
    // rate() extrapolates each counter from its first and last sample towards the window's edges, and a counter
    // no further than its zero point (up to 1.1 scrape intervals back): the two counters' first values differ, so
    // their extrapolations do too. Computed exactly as Prometheus does from the raw samples, the ratio must be
    // what Prometheus returned; and it stays within that extrapolation of the records' own share.
    const window: [number, number] = [evalTime - 3600, evalTime];
    const expected = prometheusRate(conflicts, ...window) / prometheusRate(measured, ...window);
    const debug = JSON.stringify({ rate: rate!.value, expected, recordsShare, measured, conflicts });
    expect(Number(rate!.value![1]), debug).toBeCloseTo(expected, 8);
    const sampled = measured.at(-1)![0] - measured[0]![0];
    const interval = sampled / (measured.length - 1);
    expect(Math.abs(expected - recordsShare), debug).toBeLessThanOrEqual(
      (recordsShare * 1.1 * interval) / sampled + 1e-12,
    );
  });

  it("gives no series, not NaN, over a window in which no step was measured", async () => {
    // The scrapes after the last step (the trainer lingers 4 s): the measured counter is flat there.
    const samples = await rawSamples(TrainerMetric.measuredSteps, "1h", evalTime);
    const final = samples.at(-1)![1];
    const flat = samples.slice(samples.findIndex(([, v]) => v === final));
    expect(flat.length, "scrapes after the last step").toBeGreaterThanOrEqual(2);
    const at = flat.at(-1)![0];
    const window = `${Math.round((at - flat[0]![0]) * 1000) + 1}ms`;
    expect(await prom!.query(conflictRate(window, false), at)).toEqual([]);
    // The unguarded ratio of the same window is 0/0: what the dashboard and the alert showed before the guard.
    const sel = `[${window}]`;
    const unguarded = await prom!.query(
      `sum(rate(${TrainerMetric.conflictSteps}${sel})) / sum(rate(${TrainerMetric.measuredSteps}${sel}))`,
      at,
    );
    expect(unguarded.map((r) => r.value![1])).toEqual(["NaN"]);
  });

  it("computes the seconds since the last step from the trainer's own timestamp", async () => {
    const [last] = await prom!.query(TrainerMetric.lastStepTime, evalTime);
    const [since] = await prom!.query(secondsSinceLastStep(false), evalTime);
    expect(Number(since!.value![1])).toBeCloseTo(evalTime - Number(last!.value![1]), 6);
  });

  it("exposes the operator's own metrics", async () => {
    const up = await prom!.query('up{job="operator"}', evalTime);
    expect(up[0]?.value?.[1], tail(operator!.log)).toBe("1");
    const reconciles = await prom!.query("sum(mokd_operator_reconcile_total)", evalTime);
    expect(Number(reconciles[0]?.value?.[1] ?? 0), tail(operator!.log)).toBeGreaterThan(0);
  });
});
