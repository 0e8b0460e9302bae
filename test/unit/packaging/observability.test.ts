// The dashboard, the alert rules and the metrics reference use only metrics that api/metrics.ts defines, with
// the labels the trainer and operator put on them; and the dashboard has the panels and variables users need.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { OperatorMetric, TRAINER_LABELS, TrainerMetric } from "../../../api/metrics.ts";
import { STUDY_METRIC_LABELS } from "../../../api/v1alpha1/study-contract.ts";
import { CHART_DIR, ROOT } from "../../../scripts/generate.ts";
import { alertRules } from "../../../dashboards/alerts.ts";
import { buildDashboard } from "../../../dashboards/mokd.ts";
import {
  conflictRate,
  dashboardQueries,
  expandGrafanaVariables,
  OperatorLabel,
  TrainerLabel,
} from "../../../dashboards/queries.ts";

const defined = new Set<string>([...Object.values(TrainerMetric), ...Object.values(OperatorMetric)]);
const histograms = new Set<string>([
  TrainerMetric.stepDuration,
  OperatorMetric.reconcileDuration,
  OperatorMetric.queueLatency,
  OperatorMetric.jobDuration,
]);
const knownLabels = new Set<string>([
  ...Object.values(TRAINER_LABELS),
  ...Object.values(TrainerLabel),
  ...Object.values(OperatorLabel),
  // A DistillationStudy's pods add these (api/v1alpha1/study-contract.ts).
  ...Object.values(STUDY_METRIC_LABELS),
  "le",
]);

/** Metric names an expression reads, with histogram series suffixes mapped back to the histogram. */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\bmokd_(?:trainer|operator)_[a-z0-9_]+/g)].map(([name]) => {
    const base = name.replace(/_(bucket|count|sum)$/, "");
    return base !== name && histograms.has(base) ? base : name;
  });
}

/** Label names an expression groups or filters by. */
function labelsIn(expr: string): string[] {
  const grouped = [...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) =>
    m[1]!.split(",").map((s) => s.trim()),
  );
  const filtered = [...expr.matchAll(/[{,]\s*([a-z_]+)\s*(=~|!=|!~|=)/g)].map((m) => m[1]!);
  return [...grouped, ...filtered];
}

interface PanelJson {
  title?: string;
  type?: string;
  targets?: { expr?: string }[];
}
const dashboard = JSON.parse(readFileSync(join(CHART_DIR, "dashboards", "mokd.json"), "utf8")) as {
  panels: PanelJson[];
  templating: { list: { name: string; query?: string }[] };
};
const panelExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ""));
const ruleFile = parse(readFileSync(join(CHART_DIR, "files", "prometheus-rules.yaml"), "utf8")) as {
  groups: { rules: { alert: string; expr: string }[] }[];
};
const ruleExprs = ruleFile.groups.flatMap((g) => g.rules.map((r) => r.expr));

describe("metric names and labels", () => {
  it.each([
    ["dashboard", panelExprs],
    ["alert rules", ruleExprs],
  ])("the %s use only metrics and labels from api/metrics.ts", (_what, exprs) => {
    expect(exprs.length).toBeGreaterThan(0);
    for (const expr of exprs) {
      const metrics = metricsIn(expr);
      expect(metrics.length, expr).toBeGreaterThan(0);
      for (const m of metrics) expect(defined, `${m} in ${expr}`).toContain(m);
      for (const l of labelsIn(expr)) expect(knownLabels, `label ${l} in ${expr}`).toContain(l);
    }
  });

  it("the metric names follow Prometheus conventions", () => {
    for (const name of defined) {
      expect(name).toMatch(/^mokd_(trainer|operator)_[a-z0-9_]+$/);
      if (histograms.has(name)) expect(name).toMatch(/_seconds$/);
    }
    for (const counter of [
      TrainerMetric.steps,
      TrainerMetric.samples,
      TrainerMetric.conflictSteps,
      TrainerMetric.measuredSteps,
      OperatorMetric.reconcileTotal,
      OperatorMetric.reconcileErrors,
    ]) {
      expect(counter).toMatch(/_total$/);
    }
  });

  it("docs/metrics.md documents every metric and no other", () => {
    const doc = readFileSync(join(ROOT, "docs", "metrics.md"), "utf8");
    const documented = new Set(
      doc.match(/`mokd_(?:trainer|operator)_[a-z0-9_]+`/g)?.map((s) => s.slice(1, -1)),
    );
    for (const m of defined) expect(documented, `${m} missing from docs/metrics.md`).toContain(m);
    for (const m of documented) {
      expect(
        defined.has(m) || histograms.has(m.replace(/_(bucket|count|sum)$/, "")),
        `${m} is not a metric`,
      ).toBe(true);
    }
  });
});

describe("dashboard", () => {
  it("is the checked-in JSON (generated from dashboards/mokd.ts)", () => {
    expect(dashboard).toEqual(JSON.parse(JSON.stringify(buildDashboard())));
  });

  it("has a panel for each thing users watch, each with a query", () => {
    const titles = dashboard.panels.filter((p) => p.type !== "row").map((p) => p.title ?? "");
    for (const topic of [
      /loss/i,
      /cosine/i,
      /conflict rate/i,
      /norm ratio/i,
      /weights/i,
      /accuracy/i,
      /samples\/s/i,
      /epoch progress/i,
      /jobs by phase/i,
      /reconcile errors/i,
    ]) {
      expect(
        titles.some((t) => topic.test(t)),
        `no panel for ${topic}`,
      ).toBe(true);
    }
    for (const p of dashboard.panels.filter((x) => x.type !== "row"))
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
  });

  it("filters trainer panels by the namespace and job variables", () => {
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(
      expect.arrayContaining(["namespace", "job", "study"]),
    );
    for (const expr of panelExprs.filter((e) => e.includes("mokd_trainer_"))) {
      expect(expr).toContain(`${TRAINER_LABELS.namespace}=~"$namespace"`);
      expect(expr).toContain(`${TRAINER_LABELS.job}=~"$job"`);
    }
  });

  it("divides conflicted steps by measured steps (not all steps) for the conflict rate", () => {
    for (const expr of [dashboardQueries.conflictRate, conflictRate("30m", false)]) {
      const [numerator, denominator] = expr.split(" / ");
      expect(numerator).toContain(TrainerMetric.conflictSteps);
      expect(denominator).toContain(TrainerMetric.measuredSteps);
      expect(expr).not.toContain(TrainerMetric.steps + "{");
    }
    const rule = ruleFile.groups.flatMap((g) => g.rules).find((r) => r.alert === "MokdGradientConflictHigh");
    expect(rule?.expr).toContain(
      `/ (sum by (mokd_namespace, mokd_job) (rate(${TrainerMetric.measuredSteps}[30m])) > 0)`,
    );
  });

  it("guards every ratio of rates against 0/0 (no step measured in the window: empty, not NaN)", () => {
    const exprs = [
      ...Object.values(dashboardQueries),
      ...ruleFile.groups.flatMap((g) => g.rules.map((r) => r.expr)),
    ];
    for (const expr of exprs.filter((e) => /\)\)\s*\/\s*\(?sum/.test(e))) {
      expect(expr, expr).toMatch(/\/ \(sum by \([^)]*\) \(rate\([^)]*\)\) > 0\)/);
    }
    expect(exprs.filter((e) => e.includes("/ (sum")).length).toBeGreaterThanOrEqual(2);
  });

  it("expands Grafana variables into plain PromQL for testing", () => {
    expect(expandGrafanaVariables(dashboardQueries.conflictRate)).not.toMatch(/\$/);
    expect(expandGrafanaVariables('rate(x{a=~"$job"}[$__rate_interval])')).toBe('rate(x{a=~".*"}[1m])');
  });
});

describe("alert rules", () => {
  it("cover failed jobs, stalled training and persistent gradient conflict", () => {
    const names = ruleFile.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(names).toEqual(alertRules.map((r) => r.alert));
    expect(names).toEqual(
      expect.arrayContaining([
        "MokdDistillationJobFailed",
        "MokdTrainingStalled",
        "MokdGradientConflictHigh",
      ]),
    );
  });
});
