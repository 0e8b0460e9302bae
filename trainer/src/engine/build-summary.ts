// The run's summary (summary.json, the termination message's source) from the teacher and student results.
import type { TrainerSpec } from "../../../api/v1alpha1/index.ts";
import type { EpochRecord, EvaluationRecord } from "../contracts.ts";
import { parameterCount } from "../models/index.ts";
import type { SelectedBackend } from "../backend/index.ts";
import type { RunSummary } from "../telemetry/run-summary.ts";
import type { StudentRun } from "./student.ts";
import type { TeacherHandle } from "./teacher.ts";

export function bestEpoch(history: EpochRecord[]): { bestEpoch: number; bestValidationAccuracy: number } {
  let best = 0;
  let bestValidationAccuracy = -1;
  for (const r of history) {
    if (r.validationAccuracy > bestValidationAccuracy) {
      bestValidationAccuracy = r.validationAccuracy;
      best = r.epoch;
    }
  }
  return { bestEpoch: best, bestValidationAccuracy: Math.max(bestValidationAccuracy, 0) };
}

/**
 * First evaluation whose validation accuracy reaches the target, in epochs (fractional between epoch ends, with
 * training.evaluationsPerEpoch > 1); null if none did. Epoch records count as evaluations at their epoch end.
 */
export function epochsToTarget(records: (EpochRecord | EvaluationRecord)[], target: number): number | null {
  return records.find((r) => r.validationAccuracy >= target)?.epoch ?? null;
}

export interface SummaryInputs {
  job: { name: string; namespace: string };
  spec: TrainerSpec;
  backend: SelectedBackend;
  teacher: TeacherHandle;
  student: StudentRun;
  modelPath: string;
  /** performance.now() at the process's start of the run. */
  started: number;
}

export function buildSummary(inputs: SummaryInputs): RunSummary {
  const { spec, teacher, student } = inputs;
  const history = student.history;
  const seconds = history.reduce((a, r) => a + r.seconds, 0);
  const samples = history.reduce((a, r) => a + r.samplesPerSecond * r.seconds, 0);
  const target = spec.training.targetAccuracy;
  const processSeconds = (performance.now() - inputs.started) / 1000;
  const evaluations = student.evaluations.length > 0 ? student.evaluations : history;
  return {
    job: inputs.job,
    strategy: student.strategy,
    backend: inputs.backend.choice,
    ...(inputs.backend.tensorflowVersion ? { tensorflowVersion: inputs.backend.tensorflowVersion } : {}),
    device: inputs.backend.device,
    teacher: {
      accuracy: teacher.info.accuracy,
      validationAccuracy: teacher.info.validationAccuracy,
      parameters: parameterCount(teacher.network),
      path: teacher.info.path,
      source: teacher.info.source,
    },
    student: {
      accuracy: student.accuracy,
      // The validation accuracy of the weights kept (and tested).
      validationAccuracy:
        spec.training.reportedModel === "best-validation"
          ? (student.best?.validationAccuracy ?? history.at(-1)?.validationAccuracy)
          : history.at(-1)?.validationAccuracy,
      parameters: parameterCount(student.network),
      path: inputs.modelPath,
    },
    ...bestEpoch(history),
    ...(target !== undefined
      ? { targetAccuracy: target, epochsToTarget: epochsToTarget(evaluations, target) }
      : {}),
    conflictRate: student.measuredSteps ? student.conflictSteps / student.measuredSteps : 0,
    measuredSteps: student.measuredSteps,
    nonFiniteSteps: student.nonFiniteSteps,
    steps: student.steps,
    // A resumed run counts the student time of earlier attempts too.
    durationSeconds: Math.max(processSeconds, student.elapsedSeconds),
    samplesPerSecond: seconds > 0 ? samples / seconds : 0,
    epochs: history,
  };
}
