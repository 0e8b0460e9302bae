// The student's learning-rate schedule (spec.training.schedule), as a pure function of the optimiser step, the
// way PyTorch's schedulers are used in mdistiller and torchdistill:
// - a linear warm-up over the first W = round(warmupEpochs * stepsPerEpoch) steps: lr * (t + 1) / W (t from 0);
// - then `constant`; `cosine` from lr down to minLearningRate at the last step (CosineAnnealingLR over the steps
//   after the warm-up); or `step`: lr * gamma^k with k the milestones (in epochs) already passed, counted on
//   completed epochs (MultiStepLR stepped once per epoch, mdistiller's 150/180/210 with gamma 0.1).
import type { TrainingSpec } from "../../../api/v1alpha1/index.ts";

export type ScheduleSpec = TrainingSpec["schedule"];

export interface ScheduleShape {
  /** The base (peak) learning rate, training.learningRate. */
  learningRate: number;
  stepsPerEpoch: number;
  /** Steps of the whole stage (epochs x stepsPerEpoch). */
  totalSteps: number;
}

/** The learning rate of optimiser step t (0-based: the first update uses t = 0). */
export function learningRateAt(schedule: ScheduleSpec, shape: ScheduleShape, t: number): number {
  const { learningRate: lr, stepsPerEpoch, totalSteps } = shape;
  const warmup = Math.round(schedule.warmupEpochs * stepsPerEpoch);
  if (t < warmup) return (lr * (t + 1)) / warmup;
  switch (schedule.name) {
    case "constant":
      return lr;
    case "cosine": {
      const span = Math.max(1, totalSteps - warmup - 1);
      const progress = Math.min(1, (t - warmup) / span);
      const min = schedule.minLearningRate;
      return min + ((lr - min) * (1 + Math.cos(Math.PI * progress))) / 2;
    }
    case "step": {
      const epochsDone = Math.floor(t / stepsPerEpoch);
      const passed = schedule.milestones.filter((m) => m <= epochsDone).length;
      return lr * schedule.gamma ** passed;
    }
  }
}

/** Whether the schedule ever changes the learning rate (constant without warm-up does not). */
export const scheduleIsConstant = (schedule: ScheduleSpec) =>
  schedule.name === "constant" && schedule.warmupEpochs === 0;
