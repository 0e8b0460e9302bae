// PromQL of the dashboard and the alert rules, built from the shared metric names in api/metrics.ts: one source
// for every expression, so the dashboard, the rules, the docs and the Prometheus test cannot drift apart.
import { OperatorMetric, TRAINER_LABELS, TrainerLabel, TrainerMetric } from "../api/metrics.ts";
import { STUDY_METRIC_LABELS } from "../api/v1alpha1/study-contract.ts";

export { TrainerLabel };
/** Labels on the operator's metrics. */
export const OperatorLabel = { namespace: "namespace", phase: "phase", result: "result" } as const;

/** Grafana variables of the dashboard; queries select on them. */
export const Variable = { namespace: "namespace", job: "job", study: "study" } as const;

const { job: JOB, namespace: NS } = TRAINER_LABELS;
const byJob = `${NS}, ${JOB}`;
const { study: STUDY, variant: VARIANT } = STUDY_METRIC_LABELS;

/** Series of DistillationStudy pods (labelled mokd_study) of the selected studies (and namespace and job). */
const studySelector = (extra = "") =>
  trainerSelector(
    true,
    [`${STUDY}=~"$${Variable.study}"`, `${STUDY}!=""`, ...(extra ? [extra] : [])].join(", "),
  );

/** A trainer selector: filtered by the dashboard's variables, or everything (`{}`) for alert rules. */
export function trainerSelector(filtered: boolean, extra = ""): string {
  const parts = filtered ? [`${NS}=~"$${Variable.namespace}"`, `${JOB}=~"$${Variable.job}"`] : [];
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(", ")}}` : "";
}

/**
 * Fraction of gradient-measured student steps whose objective gradients conflicted, per job, over `window`.
 * Divided by the measured steps, not all steps: single-backward strategies measure only every 10th step.
 * Guarded: where no step was measured in the window (teacher stage, suspended, finished) the denominator is 0
 * and `> 0` drops the series, so the result is empty instead of 0/0 = NaN (an alert on NaN never resolves
 * cleanly, a panel shows a gap instead of a made-up value).
 */
export function conflictRate(window: string, filtered: boolean): string {
  return guardedRatio(TrainerMetric.conflictSteps, TrainerMetric.measuredSteps, window, filtered);
}

/** rate(numerator) / rate(denominator) per job, empty (not NaN) where the denominator did not grow. */
export function guardedRatio(
  numerator: string,
  denominator: string,
  window: string,
  filtered: boolean,
): string {
  const sel = trainerSelector(filtered);
  return (
    `sum by (${byJob}) (rate(${numerator}${sel}[${window}]))` +
    ` / (sum by (${byJob}) (rate(${denominator}${sel}[${window}])) > 0)`
  );
}

/** Seconds since the trainer's last completed step, per job. */
export function secondsSinceLastStep(filtered: boolean): string {
  return `time() - max by (${byJob}) (${TrainerMetric.lastStepTime}${trainerSelector(filtered)})`;
}

/** Finished DistillationJobs that failed over `window` (from the operator's job duration histogram). */
export function failedJobs(window: string): string {
  return `sum(increase(${OperatorMetric.jobDuration}_count{${OperatorLabel.phase}="Failed"}[${window}]))`;
}

const RATE = "$__rate_interval";
const f = (extra = "") => trainerSelector(true, extra);

/** Every dashboard query, by panel, so tests can check each one against a real Prometheus. */
export const dashboardQueries = {
  losses: `${TrainerMetric.loss}${f()}`,
  gradientCosine: `${TrainerMetric.gradientCosine}${f()}`,
  conflictRate: conflictRate(RATE, true),
  normRatio: `${TrainerMetric.gradientNormRatio}${f()}`,
  weights: `${TrainerMetric.weight}${f()}`,
  stepShare: `${TrainerMetric.stepShare}${f()}`,
  nonFiniteSteps: `sum by (${byJob}) (increase(${TrainerMetric.nonFiniteSteps}${f()}[${RATE}]))`,
  accuracy: `${TrainerMetric.accuracy}${f(`${TrainerLabel.split}=~"train|validation"`)}`,
  samplesPerSecond: `sum by (${byJob}, ${TrainerLabel.stage}) (rate(${TrainerMetric.samples}${f()}[${RATE}]))`,
  epochThroughput: `${TrainerMetric.samplesPerSecond}${f()}`,
  epochProgress: `${TrainerMetric.epoch}${f()} / ${TrainerMetric.epochsTotal}${f()}`,
  stepDurationP90:
    `histogram_quantile(0.9, sum by (${byJob}, le) ` +
    `(rate(${TrainerMetric.stepDuration}_bucket${f()}[${RATE}])))`,
  secondsSinceLastStep: secondsSinceLastStep(true),
  inferenceLatencyP50: `${TrainerMetric.inferenceLatency}${f(`${TrainerLabel.quantile}="0.5"`)}`,
  inferenceThroughput: `${TrainerMetric.inferenceThroughput}${f()}`,
  modelSize: `${TrainerMetric.modelSizeBytes}${f()}`,
  modelForwardMacs: `${TrainerMetric.modelForwardMacs}${f()}`,
  jobsByPhase:
    `sum by (${OperatorLabel.phase}) ` +
    `(${OperatorMetric.jobsByPhase}{${OperatorLabel.namespace}=~"$${Variable.namespace}"})`,
  reconcileErrors: `sum(rate(${OperatorMetric.reconcileErrors}[${RATE}]))`,
  reconcileRate: `sum by (${OperatorLabel.result}) (rate(${OperatorMetric.reconcileTotal}[${RATE}]))`,
  reconcileP90: `histogram_quantile(0.9, sum by (le) (rate(${OperatorMetric.reconcileDuration}_bucket[${RATE}])))`,
  queueDepth: `max(${OperatorMetric.queueDepth})`,
  // DistillationStudy: one series per variant (the trainer's mokd_study and mokd_variant labels).
  studyValidationAccuracy: `max by (${NS}, ${STUDY}, ${VARIANT}) (${TrainerMetric.accuracy}${studySelector(`${TrainerLabel.split}="validation"`)})`,
  studyLosses: `${TrainerMetric.loss}${studySelector()}`,
  studyEpochProgress: `max by (${NS}, ${STUDY}, ${VARIANT}) (${TrainerMetric.epoch}${studySelector()} / ${TrainerMetric.epochsTotal}${studySelector()})`,
  studySamplesPerSecond: `sum by (${NS}, ${STUDY}, ${VARIANT}) (rate(${TrainerMetric.samples}${studySelector()}[${RATE}]))`,
} as const;

/** Queries of the template variables (Grafana's label_values function, not PromQL). */
export const variableQueries = {
  [Variable.namespace]: `label_values(${TrainerMetric.epoch}, ${NS})`,
  [Variable.job]: `label_values(${TrainerMetric.epoch}{${NS}=~"$${Variable.namespace}"}, ${JOB})`,
  [Variable.study]: `label_values(${TrainerMetric.epoch}{${NS}=~"$${Variable.namespace}"}, ${STUDY})`,
} as const;

/** Replaces Grafana's template variables with what they expand to when "All" is selected, for testing. */
export function expandGrafanaVariables(expr: string, rateInterval = "1m"): string {
  return expr.replaceAll("$__rate_interval", rateInterval).replaceAll(/\$[a-z_]+/g, ".*");
}
