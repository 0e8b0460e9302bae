// The trainer's progress document (api/v1alpha1/progress.ts TrainerProgress), served as JSON at GET /progress
// on the metrics port: the operator's source for status.progress and status.trainerStatus.
//
// Why a document and not the Prometheus text: the operator used to guess from counters that restart at 0 with
// the process (so the step went back to 0 after a checkpoint resume) and had no steps-per-epoch (so no ETA
// before an epoch had ended). Here the step is the stage's global step (restored from the checkpoint), the plan
// (stages, epochs, steps per epoch) is known from the start, and the ETA is steps left times this process's
// mean wall time per step, measured on the monotonic clock.
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  PROGRESS_API_VERSION,
  PROGRESS_KIND,
  type LastCheckpoint,
  type TrainerProgress,
  type TrainingStage,
} from "../../../api/v1alpha1/index.ts";
import type { EpochRecord, StepRecord } from "../contracts.ts";

export interface StagePlan {
  epochs: number;
  stepsPerEpoch: number;
}

/** The stages a run trains, in order, with their sizes (a loaded teacher has no stage). */
export type RunPlan = Partial<Record<TrainingStage, StagePlan>>;

export interface ProgressClock {
  /** Monotonic milliseconds (durations). */
  monotonic(): number;
  /** Wall time (the document's timestamp). */
  wall(): Date;
}

const SYSTEM_CLOCK: ProgressClock = { monotonic: () => performance.now(), wall: () => new Date() };
const ORDER: TrainingStage[] = ["teacher", "student"];

interface StageState {
  stage: TrainingStage;
  plan: StagePlan;
  epoch: number;
  step: number;
  /** Steps done and monotonic time at the first step this process saw in the stage (the ETA's base). */
  base?: { step: number; at: number };
  lastStepAt?: number;
  losses: Record<string, number>;
  weights: Record<string, number>;
  trainAccuracy?: number;
  validationAccuracy?: number;
  samplesPerSecond?: number;
}

const finite = (record: Record<string, number>) =>
  Object.fromEntries(Object.entries(record).filter(([, v]) => Number.isFinite(v)));
const ratio = (x: number | undefined) =>
  x !== undefined && Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : undefined;
const totalOf = (plan: StagePlan) => plan.epochs * plan.stepsPerEpoch;

export class ProgressDocument {
  readonly #plan: RunPlan;
  readonly #stages: TrainingStage[];
  readonly #clock: ProgressClock;
  #current: StageState | undefined;
  #studentTestAccuracy: number | undefined;
  #conflicts = { measured: 0, conflicting: 0 };
  #updatedAt: Date | undefined;
  #lastCheckpoint: LastCheckpoint | undefined;

  constructor(plan: RunPlan, clock: ProgressClock = SYSTEM_CLOCK) {
    this.#plan = plan;
    this.#stages = ORDER.filter((s) => plan[s] !== undefined);
    this.#clock = clock;
  }

  startStage(stage: TrainingStage, epochs: number, stepsPerEpoch: number): void {
    this.#current = { stage, plan: { epochs, stepsPerEpoch }, epoch: 0, step: 0, losses: {}, weights: {} };
    this.#touch();
  }

  step(record: StepRecord): void {
    const state = this.#stage(record.stage);
    const now = this.#clock.monotonic();
    state.epoch = record.epoch;
    state.step = record.step + 1; // the record carries the step's index; after it, that many + 1 are done
    state.base ??= { step: state.step, at: now };
    state.lastStepAt = now;
    state.losses = finite(record.losses);
    state.weights = finite(record.weights);
    if (record.stage === "student" && record.conflict !== undefined) {
      this.#conflicts.measured++;
      if (record.conflict) this.#conflicts.conflicting++;
    }
    this.#touch();
  }

  epochEnd(record: EpochRecord): void {
    const state = this.#stage(record.stage);
    state.epoch = record.epoch;
    state.step = Math.max(state.step, record.step);
    state.trainAccuracy = ratio(record.trainAccuracy);
    state.validationAccuracy = ratio(record.validationAccuracy);
    state.samplesPerSecond = Number.isFinite(record.samplesPerSecond) ? record.samplesPerSecond : undefined;
    this.#touch();
  }

  testAccuracy(stage: TrainingStage, accuracy: number): void {
    if (stage === "student") this.#studentTestAccuracy = ratio(accuracy);
    this.#touch();
  }

  /** A checkpoint is complete (written, and uploaded when it goes to object storage). */
  checkpoint(checkpoint: LastCheckpoint): void {
    this.#lastCheckpoint = checkpoint;
    this.#touch();
  }

  /** The document; undefined until a stage has started. */
  document(): TrainerProgress | undefined {
    const state = this.#current;
    if (!state || !this.#updatedAt) return undefined;
    const { done, total } = this.#overall(state);
    const student = state.stage === "student";
    const conflicts = this.#conflicts;
    const eta = this.#eta(state, total - done);
    return {
      apiVersion: PROGRESS_API_VERSION,
      kind: PROGRESS_KIND,
      stage: state.stage,
      stages: this.#stages.includes(state.stage) ? this.#stages : [...this.#stages, state.stage],
      epoch: state.epoch,
      totalEpochs: Math.max(1, state.plan.epochs),
      step: state.step,
      stepsPerEpoch: Math.max(1, state.plan.stepsPerEpoch),
      totalSteps: totalOf(state.plan),
      losses: state.losses,
      weights: state.weights,
      ...(state.trainAccuracy !== undefined ? { trainAccuracy: state.trainAccuracy } : {}),
      ...(state.validationAccuracy !== undefined ? { validationAccuracy: state.validationAccuracy } : {}),
      ...(student && (this.#studentTestAccuracy ?? state.validationAccuracy) !== undefined
        ? { studentAccuracy: this.#studentTestAccuracy ?? state.validationAccuracy }
        : {}),
      ...(conflicts.measured > 0 ? { conflictRate: conflicts.conflicting / conflicts.measured } : {}),
      ...(state.samplesPerSecond !== undefined ? { samplesPerSecond: state.samplesPerSecond } : {}),
      progressPercentage: total > 0 ? Math.min(100, (done / total) * 100) : 0,
      ...(eta !== undefined ? { etaSeconds: eta } : {}),
      updatedAt: this.#updatedAt.toISOString(),
      ...(this.#lastCheckpoint ? { lastCheckpoint: this.#lastCheckpoint } : {}),
    };
  }

  /** GET /progress: the document as JSON; 503 before training has started. */
  readonly handler = (_req: IncomingMessage, res: ServerResponse): void => {
    const document = this.document();
    if (!document) {
      res.writeHead(503, { "Content-Type": "application/json" }).end('{"error":"no stage has started"}\n');
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json" }).end(`${JSON.stringify(document)}\n`);
  };

  #stage(stage: TrainingStage): StageState {
    if (this.#current?.stage !== stage) {
      const plan = this.#plan[stage] ?? { epochs: 1, stepsPerEpoch: 1 };
      this.startStage(stage, plan.epochs, plan.stepsPerEpoch);
    }
    return this.#current!;
  }

  /** Steps done and planned over the whole run: stages before the current one count as done. */
  #overall(state: StageState): { done: number; total: number } {
    let done = 0;
    let total = 0;
    let before = true;
    for (const stage of this.#stages) {
      const size = stage === state.stage ? totalOf(state.plan) : totalOf(this.#plan[stage]!);
      if (stage === state.stage) {
        before = false;
        done += Math.min(state.step, size);
      } else if (before) done += size;
      total += size;
    }
    if (!this.#stages.includes(state.stage)) {
      total += totalOf(state.plan);
      done += Math.min(state.step, totalOf(state.plan));
    }
    return { done, total };
  }

  /** Seconds left at the mean wall time per step this process has measured in the stage. */
  #eta(state: StageState, stepsLeft: number): number | undefined {
    const base = state.base;
    if (!base || state.lastStepAt === undefined || state.step <= base.step) return undefined;
    const msPerStep = (state.lastStepAt - base.at) / (state.step - base.step);
    return Math.max(0, Math.round((stepsLeft * msPerStep) / 1000));
  }

  #touch(): void {
    this.#updatedAt = this.#clock.wall();
  }
}
