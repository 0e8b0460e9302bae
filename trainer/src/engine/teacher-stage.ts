// The teacher stage: trains the built-in teacher with cross-entropy when spec.teacher.model is unset. With a
// checkpoint directory it checkpoints every epoch and on a stop request (at the next step boundary, like the
// student stage), and a restarted run resumes from there: mid-epoch, the data order is seeded by (seed, epoch),
// so skipping the batches already done continues the same sequence.
import { rmSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import {
  disposeGroups,
  latestValidCheckpoint,
  saveCheckpoint,
  type Checkpoint,
} from "../checkpoint/index.ts";
import type { Batch, Dataset, EpochRecord, Network, StepRecord } from "../contracts.ts";
import { dropoutLayers, seedDropout } from "./dropout.ts";
import { createOptimizer } from "./optimizer.ts";
import { countCorrect, epochFigures } from "./evaluate.ts";
import { StoppedError, yieldToEventLoop, type StopSignal } from "./stop.ts";

export interface StageHooks {
  onStageStart?(stage: "teacher" | "student", epochs: number, stepsPerEpoch: number): void;
  onStep?(record: StepRecord, batchSize: number, stepInEpoch: number): void;
  onEpoch?(record: EpochRecord): void;
}

export interface TeacherTraining {
  epochs: number;
  learningRate: number;
  batchSize: number;
  seed: number;
}

export interface TeacherCheckpoints {
  /** Directory of the stage's checkpoints; remove it (removeTeacherCheckpoints) once the teacher is saved. */
  dir: string;
  /** specFingerprint of the run: checkpoints of another spec are not resumed. */
  fingerprint: string;
  log: (message: string) => void;
}

/** Everything besides tensors that a resumed teacher stage needs. */
interface TeacherState {
  stage: "teacher";
  fingerprint: string;
  /** 0-based epoch in progress, batches of it done, optimiser steps done. */
  epoch: number;
  batchIndex: number;
  step: number;
  history: EpochRecord[];
  partial: { correct: number; seen: number; lossSum: number; steps: number; seconds: number };
}

const emptyPartial = (): TeacherState["partial"] => ({
  correct: 0,
  seen: 0,
  lossSum: 0,
  steps: 0,
  seconds: 0,
});

interface Stage {
  teacher: Network;
  dataset: Dataset;
  settings: TeacherTraining;
  optimizer: tf.Optimizer;
  variables: tf.Variable[];
  checkpoints?: TeacherCheckpoints;
}

export async function trainTeacher(
  teacher: Network,
  dataset: Dataset,
  settings: TeacherTraining,
  hooks: StageHooks,
  stop?: StopSignal,
  checkpoints?: TeacherCheckpoints,
): Promise<EpochRecord[]> {
  // The same (fused on cpu/wasm) Adam as the student's.
  const optimizer = createOptimizer({ optimizer: "adam", learningRate: settings.learningRate, momentum: 0 });
  const variables = teacher.model.trainableWeights.map((w) => w.read() as tf.Variable);
  const stage: Stage = { teacher, dataset, settings, optimizer, variables, checkpoints };
  const dropouts = dropoutLayers(teacher.model);
  const stepsPerEpoch = Math.ceil(dataset.train.size / settings.batchSize);
  try {
    const state = (await resume(stage)) ?? initialState(checkpoints?.fingerprint ?? "");
    hooks.onStageStart?.("teacher", settings.epochs, stepsPerEpoch);
    while (state.epoch < settings.epochs) {
      const order = { ...batchOrder(settings, state.epoch), skipBatches: state.batchIndex };
      for (const batch of dataset.train.batches(order)) {
        seedDropout(dropouts, settings.seed, state.step);
        const record = trainStep(stage, batch, state);
        hooks.onStep?.(record, record.batchSize, state.batchIndex);
        await yieldToEventLoop();
        if (stop?.requested) throw new StoppedError(await save(stage, state));
      }
      hooks.onEpoch?.(finishEpoch(stage, state));
      await save(stage, state);
    }
    return state.history;
  } finally {
    optimizer.dispose();
  }
}

/** Removes the teacher stage's checkpoints (the trained teacher is saved: they are not needed any more). */
export function removeTeacherCheckpoints(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

const initialState = (fingerprint: string): TeacherState => ({
  stage: "teacher",
  fingerprint,
  epoch: 0,
  batchIndex: 0,
  step: 0,
  history: [],
  partial: emptyPartial(),
});

const batchOrder = (settings: TeacherTraining, epoch: number) => ({
  batchSize: settings.batchSize,
  shuffle: true,
  seed: settings.seed,
  epoch,
  augment: true,
});

/** One optimiser step on `batch` (disposed here); updates the epoch accumulators of `state`. */
function trainStep(stage: Stage, batch: Batch, state: TeacherState): StepRecord & { batchSize: number } {
  const { teacher, optimizer, variables } = stage;
  const t0 = performance.now();
  let correct = 0;
  const loss = tf.tidy(() => {
    const value = optimizer.minimize(
      () => {
        const logits = (teacher.model.apply(batch.xs, { training: true }) as tf.Tensor[])[0] as tf.Tensor2D;
        correct = countCorrect(logits, batch.ys);
        const onehot = tf.oneHot(tf.cast(batch.ys, "int32"), teacher.numClasses);
        return tf.losses.softmaxCrossEntropy(onehot, logits) as tf.Scalar;
      },
      true,
      variables,
    );
    return value!.dataSync()[0]!;
  });
  const batchSize = batch.ys.shape[0];
  batch.xs.dispose();
  batch.ys.dispose();
  const seconds = (performance.now() - t0) / 1000;
  const p = state.partial;
  Object.assign(p, {
    correct: p.correct + correct,
    seen: p.seen + batchSize,
    lossSum: p.lossSum + loss,
    steps: p.steps + 1,
    seconds: p.seconds + seconds,
  });
  const record: StepRecord = {
    type: "step",
    stage: "teacher",
    epoch: state.epoch + 1,
    step: state.step,
    losses: { task: loss },
    weights: { task: 1 },
    seconds,
  };
  state.step++;
  state.batchIndex++;
  return { ...record, batchSize };
}

function finishEpoch(stage: Stage, state: TeacherState): EpochRecord {
  const { settings } = stage;
  const p = state.partial;
  const record: EpochRecord = {
    type: "epoch",
    stage: "teacher",
    epoch: state.epoch + 1,
    epochs: settings.epochs,
    step: state.step,
    ...epochFigures(p, stage.teacher, stage.dataset.validation, settings.batchSize),
    conflictRate: 0,
    losses: { task: p.steps ? p.lossSum / p.steps : 0 },
  };
  state.history.push(record);
  state.epoch++;
  state.batchIndex = 0;
  state.partial = emptyPartial();
  return record;
}

/** Writes a checkpoint of the stage (when it has a directory); returns its path. */
async function save(stage: Stage, state: TeacherState): Promise<string | undefined> {
  if (!stage.checkpoints) return undefined;
  const teacher = stage.teacher.model.weights.map((w) => ({ name: w.originalName, tensor: w.read() }));
  const optimizer = await stage.optimizer.getWeights();
  const path = saveCheckpoint(stage.checkpoints.dir, state.step, state, { teacher, optimizer }, 1);
  // getWeights returns a fresh scalar for the iteration counter: free it.
  for (const { name, tensor } of optimizer) if (name === "iter") tensor.dispose();
  return path;
}

/** The state of the latest valid checkpoint of this spec, with weights and optimiser slots restored. */
async function resume(stage: Stage): Promise<TeacherState | undefined> {
  const c = stage.checkpoints;
  if (!c) return undefined;
  const latest = latestValidCheckpoint<TeacherState>(c.dir, c.log);
  if (!latest) return undefined;
  if (latest.state.stage !== "teacher" || latest.state.fingerprint !== c.fingerprint) {
    c.log(`teacher checkpoints in ${c.dir} were written for a different spec: training the teacher afresh`);
    disposeGroups(latest.groups);
    removeTeacherCheckpoints(c.dir);
    return undefined;
  }
  await restore(stage, latest);
  const s = latest.state;
  c.log(`teacher: resumed from ${latest.path} at epoch ${s.epoch + 1}, step ${s.step}`);
  return s;
}

async function restore(stage: Stage, checkpoint: Checkpoint<TeacherState>): Promise<void> {
  const { groups } = checkpoint;
  const saved = groups.teacher ?? [];
  const weights = stage.teacher.model.weights;
  try {
    if (saved.length !== weights.length)
      throw new Error(`teacher checkpoint has ${saved.length} weight tensors, the model ${weights.length}`);
    weights.forEach((w, i) => (w.read() as tf.Variable).assign(saved[i]!.tensor));
    // setWeights recreates Adam's slots by position and its bias corrections from the iteration count.
    if (groups.optimizer && groups.optimizer.length > 0) await stage.optimizer.setWeights(groups.optimizer);
  } finally {
    disposeGroups({ teacher: saved });
  }
}
