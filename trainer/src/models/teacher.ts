// Wrapping an arbitrary loaded classifier as a Network with outputs [logits, features].
import * as tf from "@tensorflow/tfjs";
import type { Network } from "../contracts.ts";
import { DataError } from "../data/errors.ts";
import type { InputNormalization } from "../contracts.ts";
import { loadLayersModel, savedInputNormalization } from "./io.ts";

/** A layer's activation name from its config ("softmax", "linear", ...), if any. */
function activationOf(layer: tf.layers.Layer): string | undefined {
  const activation = layer.getConfig()["activation"];
  return typeof activation === "string" ? activation : undefined;
}

const isSoftmaxLayer = (layer: tf.layers.Layer) =>
  layer.getClassName() === "Softmax" ||
  (layer.getClassName() === "Activation" && activationOf(layer) === "softmax");

/**
 * The logits behind a classifier output, and the layer that computes them. A softmax output is undone by taking
 * its pre-activation: the input of a Softmax/Activation layer, or a linear copy (same weights) of a Dense layer
 * with softmax activation.
 */
function logitsBehind(
  output: tf.SymbolicTensor,
  source: string,
): { logits: tf.SymbolicTensor; layer: tf.layers.Layer } {
  let layer = output.sourceLayer as tf.layers.Layer;
  if (isSoftmaxLayer(layer)) {
    const logits = layer.input as tf.SymbolicTensor;
    return { logits, layer: logits.sourceLayer as tf.layers.Layer };
  }
  if (activationOf(layer) !== "softmax") return { logits: output, layer };
  if (layer.getClassName() !== "Dense") {
    throw new DataError(
      source,
      `the output layer ${layer.name} (${layer.getClassName()}) applies softmax; cannot recover logits`,
    );
  }
  const config = layer.getConfig();
  const linear = tf.layers.dense({
    units: config["units"] as number,
    useBias: config["useBias"] as boolean,
    name: `${layer.name}_logits`,
  });
  const logits = linear.apply(layer.input as tf.SymbolicTensor) as tf.SymbolicTensor;
  linear.setWeights(layer.getWeights());
  layer = linear;
  return { logits, layer };
}

function flattened(t: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  return t.shape.length > 2 ? (tf.layers.flatten({ name: `${name}_flat` }).apply(t) as tf.SymbolicTensor) : t;
}

/**
 * Exposes a loaded model as [logits, features]. Logits: the first output (pre-softmax, see logitsBehind).
 * Features: the layer named `featureLayer`; else the second output of a two-output model (what saveNetwork
 * writes); else the input of the logits layer ("the layer before the last"). Features of rank > 2 are flattened.
 */
export function asNetwork(
  base: tf.LayersModel,
  featureLayer: string | undefined,
  source: string,
  options: { trainable?: boolean } = {},
): Network {
  const { logits, layer } = logitsBehind(base.outputs[0]!, source);
  let features: tf.SymbolicTensor;
  if (featureLayer !== undefined) {
    const named = base.layers.find((l) => l.name === featureLayer);
    if (!named) {
      throw new DataError(
        source,
        `no layer named "${featureLayer}" (layers: ${base.layers.map((l) => l.name).join(", ")})`,
      );
    }
    features = named.output as tf.SymbolicTensor;
  } else {
    features = base.outputs.length >= 2 ? base.outputs[1]! : (layer.input as tf.SymbolicTensor);
  }
  features = flattened(features, base.name);
  const role = options.trainable ? "student" : "teacher";
  const model = tf.model({ inputs: base.inputs, outputs: [logits, features], name: `${base.name}_${role}` });
  model.trainable = options.trainable ?? false;
  const inputNormalization = savedInputNormalization(base);
  return {
    model,
    featureDim: features.shape[1] as number,
    numClasses: logits.shape[1] as number,
    ...(inputNormalization ? { inputNormalization } : {}),
  };
}

/**
 * Feeds data of `inputShape` to a network that expects another shape with the same number of values (e.g. a
 * flattened [784] MLP on [28, 28, 1] images) through a reshape; a size mismatch is a DataError.
 */
export function adaptInput(
  network: Network,
  inputShape: number[],
  source: string,
  options: { trainable?: boolean } = {},
): Network {
  const expected = network.model.inputs[0]!.shape.slice(1);
  if (expected.join(",") === inputShape.join(",")) return network;
  const size = (dims: (number | null)[]) => dims.reduce<number>((a, b) => a * (b ?? Number.NaN), 1);
  if (size(expected) !== size(inputShape)) {
    throw new DataError(
      source,
      `the model expects input [${expected.join(", ")}], the data is [${inputShape.join(", ")}]`,
    );
  }
  const input = tf.input({ shape: inputShape });
  const reshaped = tf.layers.reshape({ targetShape: expected as number[] }).apply(input) as tf.SymbolicTensor;
  const outputs = network.model.apply(reshaped) as tf.SymbolicTensor[];
  const model = tf.model({ inputs: input, outputs, name: `${network.model.name}_reshaped` });
  model.trainable = options.trainable ?? false;
  return { ...network, model };
}

/**
 * Loads a frozen (non-trainable) teacher from a path or http(s) URL; errors are DataError (exit code 3). With
 * `inputShape` (the dataset's), a teacher whose input has the same size in another shape is fed through a reshape.
 */
export async function loadTeacher(
  pathOrUrl: string,
  featureLayer?: string,
  inputShape?: number[],
): Promise<Network> {
  const network = asNetwork(await loadLayersModel(pathOrUrl), featureLayer, pathOrUrl);
  return inputShape ? adaptInput(network, inputShape, pathOrUrl) : network;
}

/**
 * Feeds a network trained on inputs normalised with `to` data normalised with `from`: per channel,
 * x_to = (x_from * std_from + mean_from - mean_to) / std_to, as a frozen 1x1 depthwise convolution in front.
 */
export function withInputNormalization(
  network: Network,
  from: InputNormalization,
  to: InputNormalization,
): Network {
  const shape = network.model.inputs[0]!.shape.slice(1) as number[];
  const channels = shape.at(-1)!;
  if (from.mean.length !== channels || to.mean.length !== channels) {
    throw new DataError(
      "teacher",
      `normalisation has ${to.mean.length} channels, the data ${from.mean.length}, the model ${channels}`,
    );
  }
  const scale = to.std.map((s, c) => from.std[c]! / s);
  const shift = to.std.map((s, c) => (from.mean[c]! - to.mean[c]!) / s);
  const input = tf.input({ shape });
  const affine = tf.layers.depthwiseConv2d({
    kernelSize: 1,
    depthMultiplier: 1,
    useBias: true,
    trainable: false,
    name: `${network.model.name}_input_normalization`,
  });
  const converted = affine.apply(input) as tf.SymbolicTensor;
  const weights = [tf.tensor4d(scale, [1, 1, channels, 1]), tf.tensor1d(shift)];
  affine.setWeights(weights);
  tf.dispose(weights);
  const outputs = network.model.apply(converted) as tf.SymbolicTensor[];
  const model = tf.model({ inputs: input, outputs, name: `${network.model.name}_normalized` });
  model.trainable = false;
  return { ...network, model, inputNormalization: from };
}
