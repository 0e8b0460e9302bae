// Built-in architectures (cnn, mlp, resnet). Each produces a LayersModel with two outputs, [logits, features], where the feature
// layer is the dense layer before the classifier (the projector reads it). Initialisation is seeded per layer.
import * as tf from "@tensorflow/tfjs";
import type { ModelArchitecture } from "../../../api/v1alpha1/index.ts";
import type { Network } from "../contracts.ts";
import { deriveSeed } from "../data/random.ts";

export type ArchitectureFields = Pick<
  ModelArchitecture,
  "architecture" | "width" | "depth" | "hiddenUnits" | "dropout"
>;

export interface BuildOptions {
  /** Prefix of layer names (e.g. "teacher", "student"), so the two networks are told apart in saved files. */
  name?: string;
}

export const FEATURE_LAYER = "features";
export const LOGITS_LAYER = "logits";

type Apply = (x: tf.SymbolicTensor) => tf.SymbolicTensor;
const applying =
  (layer: tf.layers.Layer): Apply =>
  (x) =>
    layer.apply(x) as tf.SymbolicTensor;

/** Seeded He-uniform kernels (ReLU layers) and zero biases. */
function reluInit(seed: number, index: number) {
  return {
    kernelInitializer: tf.initializers.heUniform({ seed: deriveSeed(seed, index) }),
    biasInitializer: tf.initializers.zeros(),
  };
}

function cnnTrunk(arch: ArchitectureFields, seed: number, name: string): Apply[] {
  const layers: Apply[] = [];
  for (let i = 0; i < arch.depth; i++) {
    const conv = tf.layers.conv2d({
      filters: arch.width * 2 ** i,
      kernelSize: 3,
      padding: "same",
      activation: "relu",
      name: `${name}_conv${i + 1}`,
      ...reluInit(seed, i),
    });
    // "same" pooling keeps at least one pixel however deep the stack is.
    const pool = tf.layers.maxPooling2d({
      poolSize: 2,
      strides: 2,
      padding: "same",
      name: `${name}_pool${i + 1}`,
    });
    layers.push(applying(conv), applying(pool));
  }
  layers.push(applying(tf.layers.flatten({ name: `${name}_flatten` })));
  return layers;
}

function mlpTrunk(arch: ArchitectureFields, seed: number, name: string): Apply[] {
  const layers: Apply[] = [applying(tf.layers.flatten({ name: `${name}_flatten` }))];
  for (let i = 0; i < arch.depth; i++) {
    const dense = tf.layers.dense({
      units: arch.width,
      activation: "relu",
      name: `${name}_dense${i + 1}`,
      ...reluInit(seed, i),
    });
    layers.push(applying(dense));
  }
  return layers;
}

/** A 3x3 convolution without bias (a batch normalisation follows), seeded He-uniform. */
function conv(filters: number, strides: number, seed: number, index: number, name: string): Apply {
  return applying(
    tf.layers.conv2d({
      filters,
      kernelSize: 3,
      strides,
      padding: "same",
      useBias: false,
      name,
      kernelInitializer: tf.initializers.heUniform({ seed: deriveSeed(seed, index) }),
    }),
  );
}

const batchNorm = (name: string): Apply => applying(tf.layers.batchNormalization({ axis: -1, name }));
const relu = (name: string): Apply => applying(tf.layers.activation({ activation: "relu", name }));

/**
 * resnet (He et al. 2016, the CIFAR variant): conv3x3(width) + BN + relu, then three stages of `depth` basic
 * blocks [conv3x3 + BN + relu + conv3x3 + BN, plus the input (a 1x1 conv + BN where the shape changes), relu]
 * at width, 2 width, 4 width channels, stages 2 and 3 starting with stride 2; global average pooling.
 * depth 1: ResNet-8, depth 3: ResNet-20 (at width 16).
 */
function resnetTrunk(arch: ArchitectureFields, seed: number, name: string): Apply[] {
  let index = 0;
  const next = () => index++;
  const stem: Apply[] = [
    conv(arch.width, 1, seed, next(), `${name}_stem_conv`),
    batchNorm(`${name}_stem_bn`),
  ];
  const layers: Apply[] = [...stem, relu(`${name}_stem_relu`)];
  let channels = arch.width;
  for (let stage = 0; stage < 3; stage++) {
    const filters = arch.width * 2 ** stage;
    for (let block = 0; block < arch.depth; block++) {
      const strides = stage > 0 && block === 0 ? 2 : 1;
      const id = `${name}_s${stage + 1}b${block + 1}`;
      layers.push(
        residualBlock({ filters, strides, changes: strides !== 1 || channels !== filters }, seed, next, id),
      );
      channels = filters;
    }
  }
  layers.push(applying(tf.layers.globalAveragePooling2d({ name: `${name}_pool` })));
  return layers;
}

function residualBlock(
  shape: { filters: number; strides: number; changes: boolean },
  seed: number,
  next: () => number,
  id: string,
): Apply {
  const { filters, strides } = shape;
  const main = [
    conv(filters, strides, seed, next(), `${id}_conv1`),
    batchNorm(`${id}_bn1`),
    relu(`${id}_relu1`),
    conv(filters, 1, seed, next(), `${id}_conv2`),
    batchNorm(`${id}_bn2`),
  ];
  const projection = shape.changes
    ? [
        applying(
          tf.layers.conv2d({
            filters,
            kernelSize: 1,
            strides,
            useBias: false,
            name: `${id}_shortcut`,
            kernelInitializer: tf.initializers.heUniform({ seed: deriveSeed(seed, next()) }),
          }),
        ),
        batchNorm(`${id}_shortcut_bn`),
      ]
    : [];
  const add = tf.layers.add({ name: `${id}_add` });
  const out = relu(`${id}_relu2`);
  return (x) => {
    const residual = main.reduce((t, f) => f(t), x);
    const shortcut = projection.reduce((t, f) => f(t), x);
    return out(add.apply([residual, shortcut]) as tf.SymbolicTensor);
  };
}

const trunks = { cnn: cnnTrunk, mlp: mlpTrunk, resnet: resnetTrunk };

/**
 * cnn: depth x [conv3x3(same, width * 2^i) + relu + maxpool2], flatten, dense(hiddenUnits, relu) = features,
 * dropout, dense(numClasses) = logits. mlp: flatten, depth x dense(width, relu), dense(hiddenUnits, relu) =
 * features, dropout, dense(numClasses). Logits carry no softmax. Dropout is active only when the model is called
 * with `training: true`; it is not seeded (a fixed seed would repeat one mask every step).
 */
export function buildNetwork(
  arch: ArchitectureFields,
  inputShape: [number, number, number],
  numClasses: number,
  seed: number,
  options: BuildOptions = {},
): Network {
  const name = options.name ?? "net";
  const input = tf.input({ shape: inputShape, name: `${name}_input` });
  const trunk = trunks[arch.architecture](arch, seed, name);
  let x = trunk.reduce((t, apply) => apply(t), input);
  const featureLayer = tf.layers.dense({
    units: arch.hiddenUnits,
    activation: "relu",
    name: `${name}_${FEATURE_LAYER}`,
    ...reluInit(seed, 100),
  });
  const features = applying(featureLayer)(x);
  x = features;
  if (arch.dropout > 0) x = applying(tf.layers.dropout({ rate: arch.dropout, name: `${name}_dropout` }))(x);
  const logits = applying(
    tf.layers.dense({
      units: numClasses,
      name: `${name}_${LOGITS_LAYER}`,
      kernelInitializer: tf.initializers.glorotUniform({ seed: deriveSeed(seed, 101) }),
      biasInitializer: tf.initializers.zeros(),
    }),
  )(x);
  const model = tf.model({ inputs: input, outputs: [logits, features], name });
  return { model, featureDim: arch.hiddenUnits, numClasses };
}

/** Number of parameters (trainable and not) of the network. */
export function parameterCount(network: Network): number {
  return network.parameters ?? network.model.countParams();
}
