// The study's answer from what its stages left in the shared storage: each run as the status sees it (a run
// without a summary failed), the analysis (api/v1alpha1/study-analysis.ts: the one the operator's status uses),
// the teacher pass, and the cost: device-seconds of the fixed grid against each automatic weighting's.
import {
  analyseStudy,
  type DistillationStudyStatus,
  type StudyVariant,
  type TeacherStageSummary,
  type VariantStatus,
} from "../../../api/v1alpha1/index.ts";
import type { EpochRecord } from "../contracts.ts";
import type { RunSummary } from "../telemetry/summary.ts";

/** What a variant's summary.json holds that the answer reads (RunSummary plus its `study` fields). */
export type VariantSummary = Pick<
  RunSummary,
  "student" | "bestEpoch" | "bestValidationAccuracy" | "epochsToTarget" | "durationSeconds" | "strategy"
> & { epochs: Pick<EpochRecord, "epoch" | "validationAccuracy">[]; teacher?: RunSummary["teacher"] };

export interface StudyCost {
  /** Device-seconds of the whole fixed-weight grid (every cell, every seed). */
  gridDeviceSeconds: number;
  /** Each automatic weighting's device-seconds (every seed), and the grid's as a multiple of it. */
  automatic: { arm: string; deviceSeconds: number; gridMultiple: number | null }[];
  /** The teacher pass's pod-seconds (every shard). */
  teacherSeconds: number;
  totalDeviceSeconds: number;
  /** GPUs per run (device-seconds = seconds x devices; CPU runs count one device). */
  devicesPerRun: number;
}

export interface StudyAnswer extends Pick<DistillationStudyStatus, "arms" | "best" | "comparisons"> {
  study: { name: string; namespace: string };
  runs: number;
  succeeded: number;
  failed: number;
  variants: VariantStatus[];
  teacher: {
    accuracy?: number;
    source?: TeacherStageSummary["teacher"];
    /** Times the teacher was trained in this study (0 when given, 1 when trained on the spot). */
    trainings: number;
    shards: number;
    shardsDone: number;
  };
  cost: StudyCost;
  /** Validation accuracy per epoch of every run that left a summary (the report's curves). */
  curves: { name: string; arm: string; points: [number, number][] }[];
  createdAt: string;
}

export function variantStatus(
  variant: StudyVariant,
  summary: VariantSummary | undefined,
  devices: number,
): VariantStatus {
  const base = { index: variant.index, name: variant.name, arm: variant.arm, seed: variant.seed };
  if (!summary)
    return { ...base, phase: "Failed", reason: "NoSummary", message: "the run left no summary.json" };
  return {
    ...base,
    phase: "Succeeded",
    bestValidationAccuracy: summary.bestValidationAccuracy,
    testAccuracy: summary.student.accuracy,
    bestEpoch: summary.bestEpoch,
    ...(summary.epochsToTarget !== undefined ? { epochsToTarget: summary.epochsToTarget } : {}),
    durationSeconds: summary.durationSeconds,
    deviceSeconds: summary.durationSeconds * devices,
  };
}

const isFixed = (arm: string) => arm.includes("@");
const isAutomatic = (arm: string) => arm !== "alone" && !isFixed(arm);

export function studyCost(
  variants: VariantStatus[],
  teacherSummaries: TeacherStageSummary[],
  devices: number,
): StudyCost {
  const seconds = (pick: (v: VariantStatus) => boolean) =>
    variants.filter(pick).reduce((s, v) => s + (v.deviceSeconds ?? 0), 0);
  const grid = seconds((v) => isFixed(v.arm));
  const autoArms = [...new Set(variants.filter((v) => isAutomatic(v.arm)).map((v) => v.arm))];
  const teacherSeconds = teacherSummaries.reduce((s, t) => s + t.durationSeconds, 0);
  return {
    gridDeviceSeconds: grid,
    automatic: autoArms.map((arm) => {
      const own = seconds((v) => v.arm === arm);
      return { arm, deviceSeconds: own, gridMultiple: own > 0 ? grid / own : null };
    }),
    teacherSeconds,
    totalDeviceSeconds: seconds(() => true) + teacherSeconds * devices,
    devicesPerRun: devices,
  };
}

export function studyAnswer(inputs: {
  study: { name: string; namespace: string };
  variants: StudyVariant[];
  summaries: (VariantSummary | undefined)[];
  teacherSummaries: TeacherStageSummary[];
  teacherShards: number;
  teacherAccuracy?: number;
  devices: number;
}): StudyAnswer {
  const { variants, summaries, teacherSummaries, devices } = inputs;
  const statuses = variants.map((v, i) => variantStatus(v, summaries[i], devices));
  const succeeded = statuses.filter((s) => s.phase === "Succeeded").length;
  const first = teacherSummaries.find((t) => t.shard === 0);
  const accuracy = inputs.teacherAccuracy ?? first?.accuracy;
  return {
    study: inputs.study,
    runs: variants.length,
    succeeded,
    failed: variants.length - succeeded,
    variants: statuses,
    ...analyseStudy(statuses),
    teacher: {
      ...(accuracy !== undefined ? { accuracy } : {}),
      ...(first ? { source: first.teacher } : {}),
      trainings: teacherSummaries.reduce((s, t) => s + t.teacherTrainings, 0),
      shards: inputs.teacherShards,
      shardsDone: teacherSummaries.length,
    },
    cost: studyCost(statuses, teacherSummaries, devices),
    curves: variants.flatMap((v, i) => {
      const s = summaries[i];
      return s
        ? [
            {
              name: v.name,
              arm: v.arm,
              points: s.epochs.map((e) => [e.epoch, e.validationAccuracy] as [number, number]),
            },
          ]
        : [];
    }),
    createdAt: new Date().toISOString(),
  };
}
