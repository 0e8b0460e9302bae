// The MoKD Grafana dashboard, as code. `npm run generate` writes it to charts/mokd-operator/dashboards/mokd.json,
// which the chart ships in a ConfigMap for Grafana's dashboard sidecar.
import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import * as prometheus from "@grafana/grafana-foundation-sdk/prometheus";
import * as stat from "@grafana/grafana-foundation-sdk/stat";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";
import { dashboardQueries as q, Variable, variableQueries } from "./queries.ts";

export const DASHBOARD_UID = "mokd-distillation";
const DATASOURCE_VAR = "datasource";
const datasource = { type: "prometheus", uid: `\${${DATASOURCE_VAR}}` };

interface Series {
  expr: string;
  legend: string;
}

function target(s: Series, refId: string): prometheus.DataqueryBuilder {
  return new prometheus.DataqueryBuilder().expr(s.expr).legendFormat(s.legend).refId(refId).range();
}

function timeSeries(title: string, unit: string, series: Series[], width = 12): timeseries.PanelBuilder {
  const panel = new timeseries.PanelBuilder()
    .title(title)
    .unit(unit)
    .datasource(datasource)
    .height(8)
    .span(width);
  series.forEach((s, i) => panel.withTarget(target(s, String.fromCharCode(65 + i))));
  return panel;
}

function statPanel(title: string, unit: string, s: Series, width = 6): stat.PanelBuilder {
  return new stat.PanelBuilder()
    .title(title)
    .unit(unit)
    .datasource(datasource)
    .height(6)
    .span(width)
    .withTarget(target(s, "A"));
}

function queryVariable(name: string, label: string, query: string): dashboard.QueryVariableBuilder {
  return new dashboard.QueryVariableBuilder(name)
    .label(label)
    .datasource(datasource)
    .query(query)
    .definition(query)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue(".*");
}

const perJob = "{{mokd_namespace}}/{{mokd_job}}";
const perVariant = "{{mokd_study}}/{{mokd_variant}}";

export function buildDashboard(): dashboard.Dashboard {
  return new dashboard.DashboardBuilder("MoKD distillation")
    .uid(DASHBOARD_UID)
    .description(
      "Knowledge-distillation jobs run by mokd-operator: losses, gradient conflict, accuracy, operator.",
    )
    .tags(["mokd", "distillation"])
    .refresh("30s")
    .time({ from: "now-3h", to: "now" })
    .timezone("browser")
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .withVariable(
      new dashboard.DatasourceVariableBuilder(DATASOURCE_VAR).label("Data source").type("prometheus"),
    )
    .withVariable(queryVariable(Variable.namespace, "Namespace", variableQueries.namespace))
    .withVariable(queryVariable(Variable.job, "DistillationJob", variableQueries.job))
    .withVariable(queryVariable(Variable.study, "DistillationStudy", variableQueries.study))
    .withRow(new dashboard.RowBuilder("Objectives"))
    .withPanel(
      timeSeries(
        "Losses (task, distillation, feature)",
        "none",
        [{ expr: q.losses, legend: `${perJob} {{objective}}` }],
        8,
      ),
    )
    .withPanel(
      timeSeries(
        "Step share |c_i g_i| / sum |c_j g_j| (what the update followed)",
        "percentunit",
        [{ expr: q.stepShare, legend: `${perJob} {{objective}}` }],
        8,
      )
        .description(
          "Share of the applied update each objective's raw gradient contributed, on measured steps (every step of mokd, pcgrad, mgda, cagrad, imtl; every 10th of sum and mokd-amortized).",
        )
        .min(0)
        .max(1),
    )
    .withPanel(
      timeSeries(
        "Strategy weights (mokd, mokd-amortized: on log-loss gradients)",
        "none",
        [{ expr: q.weights, legend: `${perJob} {{objective}}` }],
        8,
      ).description(
        "The weights the strategy reports. For mokd and mokd-amortized they weight the log-loss gradients g_i / L_i, not the step: compare with the step share.",
      ),
    )
    .withRow(new dashboard.RowBuilder("Gradient conflict and dominance"))
    .withPanel(
      timeSeries("Gradient cosine (conflict < 0)", "none", [
        { expr: q.gradientCosine, legend: `${perJob} {{pair}}` },
      ])
        .min(-1)
        .max(1),
    )
    .withPanel(
      timeSeries("Gradient norm ratio (dominance, larger / smaller)", "none", [
        { expr: q.normRatio, legend: `${perJob} {{pair}}` },
      ]).min(1),
    )
    .withPanel(
      timeSeries("Conflict rate (measured steps with cos < 0)", "percentunit", [
        { expr: q.conflictRate, legend: perJob },
      ])
        .min(0)
        .max(1),
    )
    .withPanel(
      timeSeries("Non-finite steps skipped", "none", [{ expr: q.nonFiniteSteps, legend: perJob }]).min(0),
    )
    .withRow(new dashboard.RowBuilder("Training"))
    .withPanel(
      timeSeries("Accuracy (train / validation)", "percentunit", [
        { expr: q.accuracy, legend: `${perJob} {{stage}} {{split}}` },
      ])
        .min(0)
        .max(1),
    )
    .withPanel(
      timeSeries("Samples/s", "none", [
        { expr: q.samplesPerSecond, legend: `${perJob} {{stage}} (live)` },
        { expr: q.epochThroughput, legend: `${perJob} {{stage}} (last epoch)` },
      ]),
    )
    .withPanel(
      timeSeries(
        "Epoch progress",
        "percentunit",
        [{ expr: q.epochProgress, legend: `${perJob} {{stage}}` }],
        8,
      )
        .min(0)
        .max(1),
    )
    .withPanel(timeSeries("Step time p90", "s", [{ expr: q.stepDurationP90, legend: perJob }], 8))
    .withPanel(
      timeSeries("Seconds since last step", "s", [{ expr: q.secondsSinceLastStep, legend: perJob }], 8),
    )
    .withRow(new dashboard.RowBuilder("Compression (teacher vs student, measured after training)"))
    .withPanel(
      timeSeries(
        "Batch-1 latency p50",
        "s",
        [{ expr: q.inferenceLatencyP50, legend: `${perJob} {{stage}} {{runtime}}` }],
        6,
      ).min(0),
    )
    .withPanel(
      timeSeries(
        "Inference throughput (large batch)",
        "none",
        [{ expr: q.inferenceThroughput, legend: `${perJob} {{stage}} {{runtime}}` }],
        6,
      ).min(0),
    )
    .withPanel(
      timeSeries(
        "Size on disk",
        "bytes",
        [{ expr: q.modelSize, legend: `${perJob} {{stage}} {{format}}` }],
        6,
      ).min(0),
    )
    .withPanel(
      timeSeries(
        "Forward multiply-adds per sample",
        "none",
        [{ expr: q.modelForwardMacs, legend: `${perJob} {{stage}}` }],
        6,
      ).min(0),
    )
    .withRow(new dashboard.RowBuilder("DistillationStudy variants (the study selector)"))
    .withPanel(
      timeSeries(
        "Validation accuracy per variant",
        "percentunit",
        [{ expr: q.studyValidationAccuracy, legend: perVariant }],
        6,
      ).description("The study's winner is chosen on validation accuracy (mean over seeds), never on test."),
    )
    .withPanel(
      timeSeries(
        "Losses per variant",
        "none",
        [{ expr: q.studyLosses, legend: `${perVariant} {{objective}}` }],
        6,
      ),
    )
    .withPanel(
      timeSeries(
        "Epoch progress per variant",
        "percentunit",
        [{ expr: q.studyEpochProgress, legend: perVariant }],
        6,
      )
        .min(0)
        .max(1),
    )
    .withPanel(
      timeSeries(
        "Samples/s per variant",
        "none",
        [{ expr: q.studySamplesPerSecond, legend: perVariant }],
        6,
      ).min(0),
    )
    .withRow(new dashboard.RowBuilder("Operator"))
    .withPanel(statPanel("Jobs by phase", "none", { expr: q.jobsByPhase, legend: "{{phase}}" }, 8))
    .withPanel(statPanel("Reconcile errors/s", "reqps", { expr: q.reconcileErrors, legend: "errors" }, 4))
    .withPanel(statPanel("Work queue depth", "none", { expr: q.queueDepth, legend: "depth" }, 4))
    .withPanel(
      timeSeries("Reconciles/s by result", "reqps", [{ expr: q.reconcileRate, legend: "{{result}}" }], 4),
    )
    .withPanel(timeSeries("Reconcile p90", "s", [{ expr: q.reconcileP90, legend: "p90" }], 4))
    .build();
}

/** The dashboard JSON as checked in (stable key order from the builder). */
export function renderDashboard(): string {
  return JSON.stringify(buildDashboard(), null, 2) + "\n";
}
