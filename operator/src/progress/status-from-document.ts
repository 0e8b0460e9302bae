// From the trainer's progress document (api/v1alpha1/progress.ts TrainerProgress, validated by the scraper) to
// what the operator writes: status.progress and Kubeflow Trainer's status.trainerStatus. Pure: unit-tested.
import {
  Progress,
  type Result,
  type TrainerProgress,
  type TrainerStatus,
  type TrainerStatusMetric,
} from "../../../api/v1alpha1/index.ts";

const round = (x: number | undefined, digits = 4) =>
  x === undefined || !Number.isFinite(x) ? undefined : Math.round(x * 10 ** digits) / 10 ** digits;

const roundedMap = (m: Record<string, number>) =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [k, round(v) ?? 0]));

function omitUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Digits kept of a figure in status.progress: 4 unless named here (counts are integers already). */
const DIGITS: Partial<Record<keyof Progress, number>> = { samplesPerSecond: 1, etaSeconds: 0 };

const isNumberMap = (v: unknown): v is Record<string, number> =>
  typeof v === "object" && v !== null && Object.values(v).every((x) => typeof x === "number");

function rounded(key: string, value: unknown): unknown {
  if (typeof value === "number") return round(value, DIGITS[key as keyof Progress] ?? 4);
  return isNumberMap(value) ? roundedMap(value) : value;
}

/**
 * status.progress from one document: its fields as api/v1alpha1/progress.ts's Progress declares them (the
 * schema drops the document-only ones), figures rounded; lastUpdateTime is when the operator read it.
 */
export function progressFromDocument(doc: TrainerProgress, readAt: string): Progress {
  const figures = Object.fromEntries(Object.entries(doc).map(([key, value]) => [key, rounded(key, value)]));
  return omitUndefined(Progress.parse({ ...figures, lastUpdateTime: readAt }));
}

/** Kubeflow Trainer's limits on a metric (KEP-2779): names and values of 1-64 characters. */
const MAX_METRIC_TEXT = 64;

function metric(name: string, value: number | string | undefined): TrainerStatusMetric[] {
  if (value === undefined) return [];
  const text = typeof value === "number" ? String(round(value)) : value;
  if (!text) return [];
  return [{ name: name.slice(0, MAX_METRIC_TEXT), value: text.slice(0, MAX_METRIC_TEXT) }];
}

/** The document's figures as TrainJob metrics (name/value strings; currentEpoch etc. as in KEP-2779). */
export function metricsOf(doc: TrainerProgress): TrainerStatusMetric[] {
  return [
    ...metric("stage", doc.stage),
    ...metric("currentEpoch", doc.epoch),
    ...metric("totalEpochs", doc.totalEpochs),
    ...metric("currentStep", doc.step),
    ...metric("totalSteps", doc.totalSteps),
    ...Object.entries(doc.losses).flatMap(([objective, v]) => metric(`loss_${objective}`, v)),
    ...Object.entries(doc.weights).flatMap(([objective, v]) => metric(`weight_${objective}`, v)),
    ...metric("trainAccuracy", doc.trainAccuracy),
    ...metric("validationAccuracy", doc.validationAccuracy),
    ...metric("studentAccuracy", doc.studentAccuracy),
    ...metric("conflictRate", doc.conflictRate),
    ...metric("samplesPerSecond", round(doc.samplesPerSecond, 1)),
  ].slice(0, 256);
}

/** status.trainerStatus from one document; lastUpdatedTime is when the trainer last changed it. */
export function trainerStatusFromDocument(doc: TrainerProgress): TrainerStatus {
  return omitUndefined({
    // Floored: 100 only once every step is done.
    progressPercentage: Math.min(100, Math.max(0, Math.floor(doc.progressPercentage))),
    estimatedRemainingSeconds: doc.etaSeconds === undefined ? undefined : Math.round(doc.etaSeconds),
    metrics: metricsOf(doc),
    lastUpdatedTime: doc.updatedAt,
  });
}

function resultMetrics(result: Result | undefined): TrainerStatusMetric[] {
  return [
    ...metric("teacherAccuracy", result?.teacherAccuracy),
    ...metric("studentAccuracy", result?.studentAccuracy),
    ...metric("conflictRate", result?.conflictRate),
  ];
}

/**
 * status.trainerStatus for a derived status: the latest read while Running; at success 100 % with nothing
 * remaining and the result's figures; otherwise (Pending, Suspended, Failed) the last one is kept.
 */
export function trainerStatusFor(
  status: { phase?: string; completionTime?: string; result?: Result },
  previous: TrainerStatus | undefined,
  latest: TrainerStatus | undefined,
  now: string,
): TrainerStatus | undefined {
  if (status.phase === "Running" && latest) return latest;
  if (status.phase !== "Succeeded") return previous;
  const final = resultMetrics(status.result);
  const kept = (previous?.metrics ?? []).filter((m) => !final.some((f) => f.name === m.name));
  const metrics = [...kept, ...final];
  return {
    progressPercentage: 100,
    estimatedRemainingSeconds: 0,
    ...(metrics.length ? { metrics } : {}),
    lastUpdatedTime: status.completionTime ?? now,
  };
}
