// Shared pieces of the trainer benchmarks: a student like the built-in ones (defined inline: the models module
// belongs to another part), synthetic Fashion-MNIST-shaped batches and task + KD losses.
import * as tf from "@tensorflow/tfjs";
import { buildResNetProbe, PROBE_INPUT } from "../src/diagnostics/probe.ts";

/** mlp and cnn: small Fashion-MNIST students (28x28x1); resnet: the compute-bound probe (32x32x3). */
export type Architecture = "cnn" | "mlp" | "resnet";

export const inputShapeOf = (architecture: Architecture): [number, number, number] =>
  architecture === "resnet" ? PROBE_INPUT : [28, 28, 1];

/**
 * cnn: conv16-pool-conv32-pool-dense64-10 (ReLU, 3x3 same); mlp: 784-128-64-10; resnet: the ResNet-style probe
 * of trainer/src/diagnostics/probe.ts (what `trainer gpu-check` times).
 */
export function buildStudent(architecture: Architecture, seed = 1): tf.LayersModel {
  if (architecture === "resnet") return buildResNetProbe(seed);
  const init = (n: number) => tf.initializers.glorotUniform({ seed: seed + n });
  const layers =
    architecture === "cnn"
      ? [
          tf.layers.conv2d({
            inputShape: [28, 28, 1],
            filters: 16,
            kernelSize: 3,
            padding: "same",
            activation: "relu",
            kernelInitializer: init(1),
          }),
          tf.layers.maxPooling2d({ poolSize: 2 }),
          tf.layers.conv2d({
            filters: 32,
            kernelSize: 3,
            padding: "same",
            activation: "relu",
            kernelInitializer: init(2),
          }),
          tf.layers.maxPooling2d({ poolSize: 2 }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 64, activation: "relu", kernelInitializer: init(3) }),
          tf.layers.dense({ units: 10, kernelInitializer: init(4) }),
        ]
      : [
          tf.layers.flatten({ inputShape: [28, 28, 1] }),
          tf.layers.dense({ units: 128, activation: "relu", kernelInitializer: init(1) }),
          tf.layers.dense({ units: 64, activation: "relu", kernelInitializer: init(2) }),
          tf.layers.dense({ units: 10, kernelInitializer: init(3) }),
        ];
  return tf.sequential({ layers });
}

export function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

export interface SyntheticBatch {
  xs: tf.Tensor4D;
  labels: tf.Tensor1D;
  teacherLogits: tf.Tensor2D;
}

export function syntheticBatches(
  count: number,
  batchSize: number,
  seed = 7,
  inputShape: [number, number, number] = [28, 28, 1],
): SyntheticBatch[] {
  return Array.from({ length: count }, (_, i) => ({
    xs: tf.randomUniform([batchSize, ...inputShape], 0, 1, "float32", seed + 3 * i) as tf.Tensor4D,
    labels: tf.randomUniform([batchSize], 0, 10, "int32", seed + 3 * i + 1) as tf.Tensor1D,
    teacherLogits: tf.randomNormal([batchSize, 10], 0, 3, "float32", seed + 3 * i + 2) as tf.Tensor2D,
  }));
}

/** [task cross-entropy, KD = T^2 KL(teacher_T || student_T)] of the student on a batch. */
export function taskAndKdLosses(model: tf.LayersModel, batch: SyntheticBatch, temperature = 4): tf.Scalar[] {
  const logits = model.apply(batch.xs, { training: true }) as tf.Tensor2D;
  const task = tf.losses.softmaxCrossEntropy(tf.oneHot(batch.labels, 10), logits) as tf.Scalar;
  const pTeacher = tf.softmax(tf.div(batch.teacherLogits, temperature));
  const logStudent = tf.logSoftmax(tf.div(logits, temperature));
  const logTeacher = tf.logSoftmax(tf.div(batch.teacherLogits, temperature));
  const kl = tf.mean(tf.sum(tf.mul(pTeacher, tf.sub(logTeacher, logStudent)), -1));
  return [task, tf.mul(kl, temperature * temperature) as tf.Scalar];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function argValue(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
