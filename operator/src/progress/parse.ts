// Turns the trainer's Prometheus text exposition into DistillationJobStatus.progress. Pure: unit-tested.
import { TrainerMetric } from "../../../api/metrics.ts";
import type { Progress } from "../../../api/v1alpha1/index.ts";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;

function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}

function parseLabels(text: string | undefined): Record<string, string> | undefined {
  const labels: Record<string, string> = {};
  if (!text) return labels;
  LABEL_PAIR.lastIndex = 0;
  let consumed = 0;
  for (let m = LABEL_PAIR.exec(text); m; m = LABEL_PAIR.exec(text)) {
    labels[m[1]!] = unescapeLabel(m[2]!);
    consumed = LABEL_PAIR.lastIndex;
  }
  return consumed === text.trim().length || consumed === text.length ? labels : undefined;
}

function parseValue(text: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

/** Parses the text format (version 0.0.4); comments and malformed lines are skipped. */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = SAMPLE_LINE.exec(line);
    if (!m) continue;
    const labels = parseLabels(m[3]);
    const value = parseValue(m[4]!);
    if (labels && !Number.isNaN(value)) samples.push({ name: m[1]!, labels, value });
  }
  return samples;
}

type Where = Record<string, string>;

function pick(samples: Sample[], name: string, where: Where = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v));
}

const first = (samples: Sample[], name: string, where: Where = {}) => pick(samples, name, where)[0]?.value;

function byLabel(samples: Sample[], name: string, label: string): Record<string, number> | undefined {
  const entries = pick(samples, name).flatMap((s) =>
    s.labels[label] ? [[s.labels[label], s.value] as const] : [],
  );
  return entries.length ? Object.fromEntries(entries) : undefined;
}

const round = (x: number | undefined, digits = 4) =>
  x === undefined || !Number.isFinite(x) ? undefined : Math.round(x * 10 ** digits) / 10 ** digits;

/** The stage in progress: the student once it has taken a step, the teacher before. */
function currentStage(samples: Sample[]): string {
  return (first(samples, TrainerMetric.steps, { stage: "student" }) ?? 0) > 0 ||
    first(samples, TrainerMetric.epoch, { stage: "student" }) !== undefined
    ? "student"
    : "teacher";
}

/**
 * A rough ETA from the mean step time and the steps per finished epoch; undefined until an epoch has finished.
 * (The trainer exposes no steps-per-epoch, so the first epoch gives no estimate.)
 */
function eta(
  samples: Sample[],
  stage: string,
  epoch?: number,
  total?: number,
  steps?: number,
): number | undefined {
  if (!epoch || !total || !steps || epoch < 2) return undefined;
  const sum = first(samples, `${TrainerMetric.stepDuration}_sum`, { stage });
  const count = first(samples, `${TrainerMetric.stepDuration}_count`, { stage });
  if (!sum || !count) return undefined;
  const stepsPerEpoch = steps / (epoch - 1);
  const remaining = Math.max(0, total * stepsPerEpoch - steps);
  return Math.round((remaining * sum) / count);
}

function omitUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Builds status.progress from one scrape; lastUpdateTime is the scrape time. */
export function progressFromSamples(samples: Sample[], now: string): Progress | undefined {
  if (!samples.some((s) => s.name.startsWith("mokd_trainer_"))) return undefined;
  const stage = currentStage(samples);
  const epoch = first(samples, TrainerMetric.epoch, { stage });
  const totalEpochs = first(samples, TrainerMetric.epochsTotal, { stage });
  const step = first(samples, TrainerMetric.steps, { stage });
  const conflicts = first(samples, TrainerMetric.conflictSteps);
  // Conflicts are counted among the steps whose gradients were measured (every 10th for sum/mokd-amortized).
  const measuredSteps = first(samples, TrainerMetric.measuredSteps);
  const accuracy = (where: Where) => round(first(samples, TrainerMetric.accuracy, where));
  const progress: Progress = {
    epoch,
    totalEpochs,
    step,
    stage,
    losses: mapRounded(byLabel(samples, TrainerMetric.loss, "objective")),
    weights: mapRounded(byLabel(samples, TrainerMetric.weight, "objective")),
    trainAccuracy: accuracy({ stage, split: "train" }),
    validationAccuracy: accuracy({ stage, split: "validation" }),
    studentAccuracy:
      accuracy({ stage: "student", split: "test" }) ?? accuracy({ stage: "student", split: "validation" }),
    conflictRate: conflicts !== undefined && measuredSteps ? round(conflicts / measuredSteps) : undefined,
    samplesPerSecond: round(first(samples, TrainerMetric.samplesPerSecond, { stage }), 1),
    etaSeconds: eta(samples, stage, epoch, totalEpochs, step),
    lastUpdateTime: now,
  };
  return omitUndefined(progress);
}

function mapRounded(m: Record<string, number> | undefined) {
  return m && Object.fromEntries(Object.entries(m).map(([k, v]) => [k, round(v) ?? 0]));
}

export function parseProgress(text: string, now: string): Progress | undefined {
  return progressFromSamples(parsePrometheusText(text), now);
}
