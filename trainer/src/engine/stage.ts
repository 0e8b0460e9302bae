// The one training loop of the trainer. The teacher stage and the student stage are two programs of this runner
// (as torchdistill runs both as stages of one loop): the loop over epochs and batches, dropout seeding, the epoch
// record and its validation, evaluation between epochs and the best-validation weights, checkpoints (every epoch
// and on a stop request, at the next step boundary) and resume. A program only says what one step does and which
// tensors a checkpoint holds, so a difference between the two stages in any of the above cannot reappear.
//
// Resume mid-epoch: the data order is seeded by (seed, epoch), so skipping the batches already done continues
// the same sequence; dropout is seeded by the global step.
import * as tf from "@tensorflow/tfjs";
import {
  disposeGroups,
  latestValidCheckpoint,
  removeCheckpoints,
  saveCheckpoint,
  type Checkpoint,
  type NamedTensor,
} from "../checkpoint/index.ts";
import type { Batch, Dataset, EpochRecord, EvaluationRecord, Network, StepRecord } from "../contracts.ts";
import { dropoutLayers, seedDropout } from "./dropout.ts";
import { epochFigures, evaluateAccuracy } from "./evaluate.ts";
import { StoppedError, yieldToEventLoop, type StopSignal } from "./stop.ts";

export type StageName = "teacher" | "student";

export interface StageHooks {
  onStageStart?(stage: StageName, epochs: number, stepsPerEpoch: number): void;
  onStep?(record: StepRecord, batchSize: number, stepInEpoch: number): void;
  onEpoch?(record: EpochRecord): void;
  onEvaluation?(record: EvaluationRecord): void;
}

/** Running totals of the epoch in progress. */
export interface EpochPartial {
  correct: number;
  seen: number;
  /** Per objective, in the program's objective order. */
  lossSums: number[];
  steps: number;
  seconds: number;
  /** Steps whose per-objective gradients were measured, and those of them that conflicted. */
  measured: number;
  conflicts: number;
  /** Steps skipped as not finite: their losses are left out of the epoch's mean losses. */
  nonFinite?: number;
}

/** Everything besides tensors a resumed stage needs; programs extend it with their own fields. */
export interface StageState {
  stage: StageName;
  /** specFingerprint of the run: a checkpoint of another spec is not resumed. */
  fingerprint?: string;
  /** 0-based epoch in progress, batches of it done, optimiser steps done. */
  epoch: number;
  batchIndex: number;
  step: number;
  history: EpochRecord[];
  partial: EpochPartial;
  measuredSteps: number;
  conflictSteps: number;
  /** Steps skipped because their losses or gradients were not finite (absent in older checkpoints: 0). */
  nonFiniteSteps?: number;
  /** Validation evaluations so far (every epoch end, and between as `evaluationsPerEpoch` asks). */
  evaluations?: EvaluationRecord[];
  /** The best evaluation so far; its weights are the checkpoint group "best". */
  best?: EvaluationRecord;
  /** Wall time of the stage before this process (resumed runs add up). */
  elapsedSeconds: number;
}

/** What one step did, for the record and the epoch totals. */
export interface StepResult {
  record: StepRecord;
  size: number;
  correct: number;
  losses: number[];
}

/** One stage: what a step does and which tensors a checkpoint holds. */
export interface StageProgram<S extends StageState> {
  readonly stage: StageName;
  /** The network trained (and evaluated on the validation split). */
  readonly network: Network;
  readonly dataset: Dataset;
  /** Names of the losses a step reports, in the order of StepResult.losses (epoch records key them so). */
  readonly lossNames: readonly string[];
  readonly epochs: number;
  readonly batchSize: number;
  readonly seed: number;
  initialState(): S;
  /** One optimiser step on `batch` (the runner disposes the batch). */
  step(batch: Batch, state: S): StepResult;
  /** The program's tensors of a checkpoint (weights, optimiser slots); the runner adds "best". */
  checkpointGroups(): Promise<Record<string, NamedTensor[]>>;
  /** Frees what checkpointGroups created for the save (not the variables themselves). */
  releaseGroups?(groups: Record<string, NamedTensor[]>): void;
  /** Restores the program's tensors from a checkpoint; the runner disposes every group afterwards. */
  restore(checkpoint: Checkpoint<S>): Promise<void>;
  /** Copies program state kept outside `state` (a generator, the strategy) into it before a save. */
  capture?(state: S): void;
}

/** Where a stage checkpoints, and what follows each checkpoint (an upload to object storage, the status). */
export interface CheckpointOptions {
  dir: string;
  keep: number;
  /** Awaited after each checkpoint is written, before training goes on (or the process stops). */
  afterSave?: (path: string, at: { stage: StageName; epoch: number; step: number }) => Promise<void>;
}

export interface StageOptions {
  checkpoint?: CheckpointOptions;
  /** Validation evaluations per epoch (>= 1; the last one is at the epoch end). */
  evaluationsPerEpoch?: number;
  /** Which weights the network holds when the stage returns: the best evaluation's (default) or the last. */
  keep?: "best-validation" | "last";
  /** performance.now() of the stage's start when work before the loop counts (the teacher output cache fill). */
  startedAt?: number;
  stop?: StopSignal;
  hooks: StageHooks;
  log?: (message: string) => void;
}

export interface StageResult<S extends StageState> {
  state: S;
  history: EpochRecord[];
  evaluations: EvaluationRecord[];
  best?: EvaluationRecord;
  elapsedSeconds: number;
}

export const emptyPartial = (objectives: number): EpochPartial => ({
  correct: 0,
  seen: 0,
  lossSums: new Array<number>(objectives).fill(0),
  steps: 0,
  seconds: 0,
  measured: 0,
  conflicts: 0,
});

/** Fields every initial state shares. */
export function initialStageState(stage: StageName, objectives: number, fingerprint?: string): StageState {
  return {
    stage,
    fingerprint,
    epoch: 0,
    batchIndex: 0,
    step: 0,
    history: [],
    partial: emptyPartial(objectives),
    measuredSteps: 0,
    conflictSteps: 0,
    evaluations: [],
    elapsedSeconds: 0,
  };
}

/**
 * The newest valid checkpoint of `stage` in `dir` written for `fingerprint`. Checkpoints of another spec or stage
 * (a local re-run after editing the manifest; in a cluster the spec is immutable) cannot be resumed: they are
 * removed, with a warning.
 */
export function resumableCheckpoint<S extends StageState>(
  dir: string,
  stage: StageName,
  fingerprint: string | undefined,
  warn: (message: string) => void,
): Checkpoint<S> | undefined {
  const latest = latestValidCheckpoint<S>(dir, warn);
  if (!latest) return undefined;
  if (latest.state.stage === stage && latest.state.fingerprint === fingerprint) return latest;
  warn(`${stage} checkpoints in ${dir} were written for a different spec: removing them and starting fresh`);
  disposeGroups(latest.groups);
  removeCheckpoints(dir);
  return undefined;
}

/** Checkpoints written before the runner kept a single loss sum (teacher) and no evaluations. */
function upgraded<S extends StageState>(state: S, objectives: number): S {
  const partial = state.partial as EpochPartial & { lossSum?: number };
  const lossSums = partial.lossSums ?? [partial.lossSum ?? 0];
  return {
    ...state,
    partial: { ...emptyPartial(objectives), ...partial, lossSums },
    measuredSteps: state.measuredSteps ?? 0,
    conflictSteps: state.conflictSteps ?? 0,
    evaluations: state.evaluations ?? [],
    elapsedSeconds: state.elapsedSeconds ?? 0,
  };
}

type Weights = Float32Array[];

const readWeights = (network: Network): Weights =>
  network.model.weights.map((w) => (w.read().dataSync() as Float32Array).slice());

function assignWeights(network: Network, weights: Weights): void {
  network.model.weights.forEach((w, i) => {
    const v = w.read() as tf.Variable;
    v.assign(tf.tensor(weights[i]!, v.shape, v.dtype));
  });
}

/** Runs a stage to its last epoch (or throws StoppedError after a checkpoint on a stop request). */
export async function runStage<S extends StageState>(
  program: StageProgram<S>,
  options: StageOptions,
  resume?: Checkpoint<S>,
): Promise<StageResult<S>> {
  const loop = new StageLoop(program, options);
  await loop.start(resume);
  return loop.run();
}

/**
 * The steps into an epoch after which the n - 1 evaluations before its end fall: round(k * steps / n) for
 * k = 1 .. n - 1, so an epoch has exactly n evenly spaced evaluations, the last at its end (n is capped at the
 * epoch's steps). A fixed stride floor(steps / n) gave n + 1 when steps is not a multiple of n.
 */
export function midEpochEvaluationSteps(stepsPerEpoch: number, evaluationsPerEpoch: number): Set<number> {
  const n = Math.max(1, Math.min(evaluationsPerEpoch, stepsPerEpoch));
  return new Set(Array.from({ length: n - 1 }, (_, i) => Math.round(((i + 1) * stepsPerEpoch) / n)));
}

class StageLoop<S extends StageState> {
  private readonly program: StageProgram<S>;
  private readonly options: StageOptions;
  private readonly stepsPerEpoch: number;
  /** Steps into an epoch after which an evaluation is due before its end (the epoch end has its own). */
  private readonly midEpochSteps: ReadonlySet<number>;
  private readonly dropouts: tf.layers.Layer[];
  private readonly processStart: number;
  private state!: S;
  private bestWeights: Weights | undefined;

  constructor(program: StageProgram<S>, options: StageOptions) {
    this.program = program;
    this.options = options;
    this.stepsPerEpoch = Math.ceil(program.dataset.train.size / program.batchSize);
    this.midEpochSteps = midEpochEvaluationSteps(this.stepsPerEpoch, options.evaluationsPerEpoch ?? 1);
    this.dropouts = dropoutLayers(program.network.model);
    this.processStart = options.startedAt ?? performance.now();
  }

  async start(resume: Checkpoint<S> | undefined): Promise<void> {
    const { program, options } = this;
    if (!resume) {
      this.state = program.initialState();
    } else {
      try {
        await program.restore(resume);
        const best = resume.groups.best;
        if (best && best.length > 0)
          this.bestWeights = best.map((t) => (t.tensor.dataSync() as Float32Array).slice());
      } finally {
        disposeGroups(resume.groups);
      }
      this.state = upgraded(resume.state, program.lossNames.length);
      const s = this.state;
      options.log?.(`${program.stage}: resumed from ${resume.path} at epoch ${s.epoch + 1}, step ${s.step}`);
    }
    options.hooks.onStageStart?.(program.stage, program.epochs, this.stepsPerEpoch);
  }

  async run(): Promise<StageResult<S>> {
    const { program, options, state } = this;
    // A stop that came before the first step (e.g. during the teacher output cache's fill).
    if (options.stop?.requested) throw new StoppedError(await this.save());
    while (state.epoch < program.epochs) {
      const order = {
        batchSize: program.batchSize,
        shuffle: true,
        seed: program.seed,
        epoch: state.epoch,
        augment: true,
        skipBatches: state.batchIndex,
      };
      for (const batch of program.dataset.train.batches(order)) {
        this.step(batch);
        if (this.midEpochEvaluation()) this.evaluate();
        await yieldToEventLoop();
        if (options.stop?.requested) throw new StoppedError(await this.save());
      }
      this.finishEpoch();
      await this.save();
    }
    if ((options.keep ?? "best-validation") === "best-validation" && this.bestWeights)
      assignWeights(program.network, this.bestWeights);
    return {
      state,
      history: state.history,
      evaluations: state.evaluations ?? [],
      best: state.best,
      elapsedSeconds: this.elapsed(),
    };
  }

  private elapsed(): number {
    return this.state.elapsedSeconds + (performance.now() - this.processStart) / 1000;
  }

  private step(batch: Batch): void {
    const { program, state } = this;
    const t0 = performance.now();
    // Seeded by the global step, so a resumed run draws the masks the uninterrupted one would have.
    seedDropout(this.dropouts, program.seed, state.step);
    let result: StepResult;
    try {
      result = program.step(batch, state);
    } finally {
      tf.dispose([batch.xs, batch.ys]);
    }
    const seconds = (performance.now() - t0) / 1000;
    result.record.seconds = seconds;
    const p = state.partial;
    p.correct += result.correct;
    p.seen += result.size;
    p.steps++;
    p.seconds += seconds;
    if (result.record.nonFinite) {
      state.nonFiniteSteps = (state.nonFiniteSteps ?? 0) + 1;
      p.nonFinite = (p.nonFinite ?? 0) + 1;
    } else {
      result.losses.forEach((l, i) => (p.lossSums[i]! += l));
    }
    if (result.record.conflict !== undefined) {
      state.measuredSteps++;
      p.measured++;
      if (result.record.conflict) {
        state.conflictSteps++;
        p.conflicts++;
      }
    }
    state.step++;
    state.batchIndex++;
    this.options.hooks.onStep?.(result.record, result.size, state.batchIndex);
  }

  /** Whether an evaluation is due inside the epoch (the epoch end has its own). */
  private midEpochEvaluation(): boolean {
    return this.midEpochSteps.has(this.state.batchIndex);
  }

  /** Evaluates on the validation split, records it and keeps the best weights. */
  private evaluate(validationAccuracy?: number, epoch?: number): EvaluationRecord {
    const { program, state } = this;
    const accuracy =
      validationAccuracy ??
      evaluateAccuracy(program.network, program.dataset.validation, program.batchSize * 4);
    const record: EvaluationRecord = {
      type: "evaluation",
      stage: program.stage,
      // Epochs of training behind the weights evaluated (fractional between epoch ends).
      epoch: epoch ?? state.epoch + state.batchIndex / this.stepsPerEpoch,
      step: state.step,
      validationAccuracy: accuracy,
    };
    (state.evaluations ??= []).push(record);
    // Ties keep the earlier weights: the same accuracy reached sooner.
    if (!state.best || accuracy > state.best.validationAccuracy) {
      state.best = record;
      this.bestWeights = readWeights(program.network);
    }
    this.options.hooks.onEvaluation?.(record);
    return record;
  }

  private finishEpoch(): void {
    const { program, state } = this;
    const p = state.partial;
    const finiteSteps = p.steps - (p.nonFinite ?? 0);
    const figures = epochFigures(p, program.network, program.dataset.validation, program.batchSize);
    const record: EpochRecord = {
      type: "epoch",
      stage: program.stage,
      epoch: state.epoch + 1,
      epochs: program.epochs,
      step: state.step,
      ...figures,
      conflictRate: p.measured ? p.conflicts / p.measured : 0,
      losses: Object.fromEntries(
        program.lossNames.map((n, i) => [n, finiteSteps ? p.lossSums[i]! / finiteSteps : 0]),
      ),
    };
    state.epoch++;
    state.batchIndex = 0;
    this.evaluate(figures.validationAccuracy, record.epoch);
    state.history.push(record);
    state.partial = emptyPartial(program.lossNames.length);
    this.options.hooks.onEpoch?.(record);
  }

  /** Writes a checkpoint (when the stage has a directory); returns its path. */
  private async save(): Promise<string | undefined> {
    const { program, options, state } = this;
    program.capture?.(state);
    if (!options.checkpoint) return undefined;
    const groups = await program.checkpointGroups();
    const best = (this.bestWeights ?? []).map((values, i) => ({
      name: `best/${i}`,
      tensor: tf.tensor(values, program.network.model.weights[i]!.read().shape),
    }));
    let path: string;
    try {
      const saved: S = { ...state, elapsedSeconds: this.elapsed() };
      const { dir, keep } = options.checkpoint;
      path = saveCheckpoint(dir, state.step, saved, { ...groups, best }, keep);
    } finally {
      tf.dispose(best.map((b) => b.tensor));
      program.releaseGroups?.(groups);
    }
    await options.checkpoint.afterSave?.(path, { stage: state.stage, epoch: state.epoch, step: state.step });
    return path;
  }
}
