// The teacher stage: trains the built-in teacher with cross-entropy when spec.teacher.model is unset, as a
// program of the stage runner (stage.ts: loop, checkpoints, resume, evaluation). With a checkpoint directory it
// checkpoints every epoch and on a stop request, and a restarted run resumes from there.
import { rmSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import type { Checkpoint, NamedTensor } from "../checkpoint/index.ts";
import type { Batch, Dataset, EpochRecord, EvaluationRecord, Network } from "../contracts.ts";
import { createOptimizer } from "./optimizer.ts";
import { countCorrect } from "./evaluate.ts";
import {
  initialStageState,
  resumableCheckpoint,
  runStage,
  type CheckpointOptions,
  type StageHooks,
  type StageOptions,
  type StageProgram,
  type StageState,
  type StepResult,
} from "./stage.ts";
import type { StopSignal } from "./stop.ts";

export type { StageHooks } from "./stage.ts";

export interface TeacherTraining {
  epochs: number;
  learningRate: number;
  batchSize: number;
  seed: number;
  /** Validation evaluations per epoch (default 1). */
  evaluationsPerEpoch?: number;
  /** Which weights the teacher keeps: the best validation's (default) or the last epoch's. */
  keep?: StageOptions["keep"];
}

export interface TeacherCheckpoints {
  /** Directory of the stage's checkpoints; remove it (removeTeacherCheckpoints) once the teacher is saved. */
  dir: string;
  /** specFingerprint of the run: checkpoints of another spec are not resumed. */
  fingerprint: string;
  log: (message: string) => void;
  afterSave?: CheckpointOptions["afterSave"];
}

type TeacherState = StageState & { stage: "teacher" };

export interface TeacherStageResult {
  history: EpochRecord[];
  evaluations: EvaluationRecord[];
  best?: EvaluationRecord;
}

class TeacherProgram implements StageProgram<TeacherState> {
  readonly stage = "teacher";
  readonly lossNames = ["task"];
  readonly network: Network;
  readonly dataset: Dataset;
  readonly epochs: number;
  readonly batchSize: number;
  readonly seed: number;
  private readonly optimizer: tf.Optimizer;
  private readonly variables: tf.Variable[];
  private readonly fingerprint: string;

  constructor(teacher: Network, dataset: Dataset, settings: TeacherTraining, fingerprint: string) {
    this.network = teacher;
    this.dataset = dataset;
    this.epochs = settings.epochs;
    this.batchSize = settings.batchSize;
    this.seed = settings.seed;
    this.fingerprint = fingerprint;
    // The same (fused on cpu/wasm) Adam as the student's.
    this.optimizer = createOptimizer({ optimizer: "adam", learningRate: settings.learningRate, momentum: 0 });
    this.variables = teacher.model.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  initialState(): TeacherState {
    return { ...initialStageState("teacher", 1, this.fingerprint), stage: "teacher" };
  }

  step(batch: Batch, state: TeacherState): StepResult {
    const { network, optimizer, variables } = this;
    let correct = 0;
    const loss = tf.tidy(() => {
      const value = optimizer.minimize(
        () => {
          const logits = (network.model.apply(batch.xs, { training: true }) as tf.Tensor[])[0] as tf.Tensor2D;
          correct = countCorrect(logits, batch.ys);
          const onehot = tf.oneHot(tf.cast(batch.ys, "int32"), network.numClasses);
          return tf.losses.softmaxCrossEntropy(onehot, logits) as tf.Scalar;
        },
        true,
        variables,
      );
      return value!.dataSync()[0]!;
    });
    const record = {
      type: "step" as const,
      stage: "teacher" as const,
      epoch: state.epoch + 1,
      step: state.step,
      losses: { task: loss },
      weights: { task: 1 },
      seconds: 0,
    };
    return { record, size: batch.ys.shape[0], correct, losses: [loss] };
  }

  async checkpointGroups(): Promise<Record<string, NamedTensor[]>> {
    const teacher = this.network.model.weights.map((w) => ({ name: w.originalName, tensor: w.read() }));
    return { teacher, optimizer: await this.optimizer.getWeights() };
  }

  releaseGroups(groups: Record<string, NamedTensor[]>): void {
    // getWeights returns a fresh scalar for the iteration counter: free it.
    for (const { name, tensor } of groups.optimizer ?? []) if (name === "iter") tensor.dispose();
  }

  async restore(checkpoint: Checkpoint<TeacherState>): Promise<void> {
    const saved = checkpoint.groups.teacher ?? [];
    const weights = this.network.model.weights;
    if (saved.length !== weights.length)
      throw new Error(`teacher checkpoint has ${saved.length} weight tensors, the model ${weights.length}`);
    weights.forEach((w, i) => (w.read() as tf.Variable).assign(saved[i]!.tensor));
    // setWeights recreates Adam's slots by position and its bias corrections from the iteration count.
    const optimizer = checkpoint.groups.optimizer;
    if (optimizer && optimizer.length > 0) await this.optimizer.setWeights(optimizer);
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/**
 * Trains `teacher` with cross-entropy; with `checkpoints`, resumes from and writes to their directory. Returns
 * with the teacher holding its best-validation weights unless `settings.keep` is "last".
 */
export async function trainTeacher(
  teacher: Network,
  dataset: Dataset,
  settings: TeacherTraining,
  hooks: StageHooks,
  stop?: StopSignal,
  checkpoints?: TeacherCheckpoints,
): Promise<TeacherStageResult> {
  const program = new TeacherProgram(teacher, dataset, settings, checkpoints?.fingerprint ?? "");
  try {
    const resume = checkpoints
      ? resumableCheckpoint<TeacherState>(
          checkpoints.dir,
          "teacher",
          checkpoints.fingerprint,
          checkpoints.log,
        )
      : undefined;
    const options: StageOptions = {
      checkpoint: checkpoints
        ? {
            dir: checkpoints.dir,
            keep: 1,
            ...(checkpoints.afterSave ? { afterSave: checkpoints.afterSave } : {}),
          }
        : undefined,
      evaluationsPerEpoch: settings.evaluationsPerEpoch,
      keep: settings.keep,
      stop,
      hooks,
      log: checkpoints?.log,
    };
    const result = await runStage(program, options, resume);
    return { history: result.history, evaluations: result.evaluations, best: result.best };
  } finally {
    program.dispose();
  }
}

/** Removes the teacher stage's checkpoints (the trained teacher is saved: they are not needed any more). */
export function removeTeacherCheckpoints(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
