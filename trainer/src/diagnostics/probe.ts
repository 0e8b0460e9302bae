// A compute-bound probe workload for backends: a small ResNet-style CNN on 32x32x3 inputs (CIFAR-sized), where
// per-op overhead does not dominate (about 49 M multiply-adds per sample forward, almost all in convolutions).
// No batch normalisation: the trainer's built-in models have none, and its memory-bound elementwise passes
// (tfjs composes BN's training gradient from ~20 ops per layer) would turn the probe into a measure of
// elementwise overhead, not of compute. `trainer gpu-check` times
// its training step; trainer/bench/vs-torch.ts compares the same network with PyTorch (torch_step.py "resnet").
import * as tf from "@tensorflow/tfjs";
import { createOptimizer } from "../engine/optimizer.ts";

export const PROBE_INPUT: [number, number, number] = [32, 32, 3];
export const PROBE_CLASSES = 10;
/** Channels of the three stages (32x32, 16x16, 8x8); one residual block each. */
const WIDTHS = [32, 64, 128];

type Apply = (x: tf.SymbolicTensor) => tf.SymbolicTensor;

/** A 3x3 or 1x1 "same" convolution with bias (no batch norm: see the file comment). */
function conv(filters: number, kernel: number, stride: number, seed: number): Apply {
  const layer = tf.layers.conv2d({
    filters,
    kernelSize: kernel,
    strides: stride,
    padding: "same",
    kernelInitializer: tf.initializers.heNormal({ seed }),
  });
  return (x) => layer.apply(x) as tf.SymbolicTensor;
}

const relu = (x: tf.SymbolicTensor) => tf.layers.reLU().apply(x) as tf.SymbolicTensor;

/** conv3x3-ReLU-conv3x3 plus the shortcut (a 1x1 conv when the shape changes), then ReLU. */
function residualBlock(
  x: tf.SymbolicTensor,
  filters: number,
  stride: number,
  seed: number,
): tf.SymbolicTensor {
  const y = conv(filters, 3, 1, seed + 1)(relu(conv(filters, 3, stride, seed)(x)));
  const channels = x.shape[x.shape.length - 1];
  const shortcut = stride !== 1 || channels !== filters ? conv(filters, 1, stride, seed + 2)(x) : x;
  return relu(tf.layers.add().apply([y, shortcut]) as tf.SymbolicTensor);
}

/** stem conv3x3(32)-ReLU, a residual block per stage (strides 1, 2, 2), global average pool, dense(10). */
export function buildResNetProbe(seed = 1): tf.LayersModel {
  const input = tf.input({ shape: PROBE_INPUT });
  let x = relu(conv(WIDTHS[0]!, 3, 1, seed)(input));
  WIDTHS.forEach((w, i) => (x = residualBlock(x, w, i === 0 ? 1 : 2, seed + 10 * (i + 1))));
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const logits = tf.layers
    .dense({ units: PROBE_CLASSES, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 99 }) })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

export interface ProbeBatch {
  xs: tf.Tensor4D;
  labels: tf.Tensor2D;
}

export function probeBatch(batchSize: number, seed = 5): ProbeBatch {
  const classes = tf.randomUniform([batchSize], 0, PROBE_CLASSES, "int32", seed + 1) as tf.Tensor1D;
  return {
    xs: tf.randomNormal([batchSize, ...PROBE_INPUT], 0, 1, "float32", seed) as tf.Tensor4D,
    labels: tf.oneHot(classes, PROBE_CLASSES) as tf.Tensor2D,
  };
}

/** One training step (forward, cross-entropy, backward, the trainer's Adam); returns the loss. */
export function probeTrainer(model: tf.LayersModel, batch: ProbeBatch): () => number {
  const optimizer = createOptimizer({ optimizer: "adam", learningRate: 1e-3, momentum: 0.9 });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  return () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => {
        const logits = model.apply(batch.xs, { training: true }) as tf.Tensor2D;
        return tf.losses.softmaxCrossEntropy(batch.labels, logits) as tf.Scalar;
      }, vars);
      optimizer.applyGradients(grads);
      return value.dataSync()[0]!;
    });
}
