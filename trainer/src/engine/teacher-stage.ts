// The teacher stage: trains the built-in teacher with cross-entropy when spec.teacher.model is unset.
import * as tf from "@tensorflow/tfjs";
import type { Dataset, EpochRecord, Network, StepRecord } from "../contracts.ts";
import { dropoutLayers, seedDropout } from "./dropout.ts";
import { countCorrect, evaluateAccuracy } from "./evaluate.ts";
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

export async function trainTeacher(
  teacher: Network,
  dataset: Dataset,
  settings: TeacherTraining,
  hooks: StageHooks,
  stop?: StopSignal,
): Promise<EpochRecord[]> {
  const optimizer = tf.train.adam(settings.learningRate);
  const variables = teacher.model.trainableWeights.map((w) => w.read() as tf.Variable);
  const stepsPerEpoch = Math.ceil(dataset.train.size / settings.batchSize);
  const dropouts = dropoutLayers(teacher.model);
  hooks.onStageStart?.("teacher", settings.epochs, stepsPerEpoch);
  const history: EpochRecord[] = [];
  let step = 0;
  try {
    for (let epoch = 0; epoch < settings.epochs; epoch++) {
      const started = performance.now();
      let correct = 0;
      let seen = 0;
      let lossSum = 0;
      let stepInEpoch = 0;
      const batches = {
        batchSize: settings.batchSize,
        shuffle: true,
        seed: settings.seed,
        epoch,
        augment: true,
      };
      for (const batch of dataset.train.batches(batches)) {
        const t0 = performance.now();
        let batchCorrect = 0;
        seedDropout(dropouts, settings.seed, step);
        const loss = tf.tidy(() => {
          const value = optimizer.minimize(
            () => {
              const logits = (
                teacher.model.apply(batch.xs, { training: true }) as tf.Tensor[]
              )[0] as tf.Tensor2D;
              batchCorrect = countCorrect(logits, batch.ys);
              const onehot = tf.oneHot(tf.cast(batch.ys, "int32"), teacher.numClasses);
              return tf.losses.softmaxCrossEntropy(onehot, logits) as tf.Scalar;
            },
            true,
            variables,
          );
          return value!.dataSync()[0]!;
        });
        const size = batch.ys.shape[0];
        batch.xs.dispose();
        batch.ys.dispose();
        correct += batchCorrect;
        seen += size;
        lossSum += loss;
        const record: StepRecord = {
          type: "step",
          stage: "teacher",
          epoch: epoch + 1,
          step,
          losses: { task: loss },
          weights: { task: 1 },
          seconds: (performance.now() - t0) / 1000,
        };
        step++;
        stepInEpoch++;
        hooks.onStep?.(record, size, stepInEpoch);
        await yieldToEventLoop();
        // The teacher stage is not checkpointed: it is short, and a restarted run trains it again.
        if (stop?.requested) throw new StoppedError(undefined);
      }
      const seconds = (performance.now() - started) / 1000;
      const record: EpochRecord = {
        type: "epoch",
        stage: "teacher",
        epoch: epoch + 1,
        epochs: settings.epochs,
        step,
        trainAccuracy: seen ? correct / seen : 0,
        validationAccuracy: evaluateAccuracy(teacher, dataset.validation, settings.batchSize * 4),
        samplesPerSecond: seen / seconds,
        conflictRate: 0,
        losses: { task: stepInEpoch ? lossSum / stepInEpoch : 0 },
        seconds,
      };
      history.push(record);
      hooks.onEpoch?.(record);
    }
  } finally {
    optimizer.dispose();
  }
  return history;
}
