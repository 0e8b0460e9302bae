// tfjs layers -> ONNX nodes (opset 17), one function per kind of layer. A layer without a mapping throws
// UnsupportedLayerError naming it.
import * as tf from "@tensorflow/tfjs";
import type { AttributeValue, GraphBuilder, Value } from "./graph-builder.ts";

export class UnsupportedLayerError extends Error {
  constructor(layer: tf.layers.Layer, detail?: string) {
    super(
      `layer ${layer.name} (${layer.getClassName()}${detail ? `: ${detail}` : ""}) has no ONNX mapping in this trainer`,
    );
    this.name = "UnsupportedLayerError";
  }
}

/** A layer's weights by role (the last segment of their name: kernel, bias, gamma, moving_mean, ...). */
function weightsOf(layer: tf.layers.Layer): Map<string, tf.Tensor> {
  const byRole = new Map<string, tf.Tensor>();
  for (const w of layer.weights) byRole.set(w.originalName.split("/").at(-1)!, w.read());
  return byRole;
}

const data = (t: tf.Tensor) => t.dataSync() as Float32Array;
const config = (layer: tf.layers.Layer) => layer.getConfig() as Record<string, unknown>;
const pair = (v: unknown): [number, number] =>
  Array.isArray(v) ? [v[0], v[1] ?? v[0]] : [v as number, v as number];

function activation(b: GraphBuilder, x: Value, name: string, layer: tf.layers.Layer): Value {
  const plain = (op: string, attrs: Record<string, AttributeValue> = {}) => ({
    ...x,
    name: b.node(op, [x.name], `${layer.name}_${op}`, attrs),
  });
  switch (name) {
    case "linear":
      return x;
    case "relu":
      return plain("Relu");
    case "relu6":
      return {
        ...x,
        name: b.node(
          "Clip",
          [x.name, b.constant("zero", [0], []), b.constant("six", [6], [])],
          `${layer.name}_relu6`,
        ),
      };
    case "sigmoid":
      return plain("Sigmoid");
    case "tanh":
      return plain("Tanh");
    case "elu":
      return plain("Elu", { alpha: { float: 1 } });
    case "selu":
      return plain("Selu");
    case "softplus":
      return plain("Softplus");
    case "softsign":
      return plain("Softsign");
    case "hardSigmoid":
      return plain("HardSigmoid", { alpha: { float: 0.2 }, beta: { float: 0.5 } });
    case "swish": {
      const s = b.node("Sigmoid", [x.name], `${layer.name}_sigmoid`);
      return { ...x, name: b.node("Mul", [x.name, s], `${layer.name}_swish`) };
    }
    case "softmax": {
      const last = x.rank === 4 ? b.as(x, "nhwc") : x;
      return { ...last, name: b.node("Softmax", [last.name], `${layer.name}_softmax`, { axis: -1 }) };
    }
    default:
      throw new UnsupportedLayerError(layer, `activation ${name}`);
  }
}

function conv2d(b: GraphBuilder, x: Value, layer: tf.layers.Layer, depthwise: boolean): Value {
  const c = config(layer);
  if (c["dataFormat"] === "channelsFirst") throw new UnsupportedLayerError(layer, "channelsFirst");
  const w = weightsOf(layer);
  const kernel = depthwise ? w.get("depthwise_kernel")! : w.get("kernel")!;
  const [kh, kw, cin, cout] = kernel.shape as [number, number, number, number];
  // tfjs [kh, kw, in, out] -> ONNX [out, in, kh, kw]; depthwise [kh, kw, in, mult] -> [in * mult, 1, kh, kw].
  const weight = tf.tidy(() =>
    depthwise
      ? kernel.transpose([2, 3, 0, 1]).reshape([cin * cout, 1, kh, kw])
      : kernel.transpose([3, 2, 0, 1]),
  );
  const inputs = [b.as(x, "nchw").name, b.constant(`${layer.name}_W`, data(weight), weight.shape)];
  weight.dispose();
  const bias = w.get("bias");
  if (bias) inputs.push(b.constant(`${layer.name}_B`, data(bias), bias.shape));
  const attrs: Record<string, AttributeValue> = {
    kernel_shape: [kh, kw],
    strides: pair(c["strides"] ?? 1),
    dilations: pair(c["dilationRate"] ?? 1),
    ...(depthwise ? { group: cin } : {}),
    ...(c["padding"] === "same" ? { auto_pad: "SAME_UPPER" } : { pads: [0, 0, 0, 0] }),
  };
  const out: Value = { name: b.node("Conv", inputs, layer.name, attrs), layout: "nchw", rank: 4 };
  return activation(b, out, (c["activation"] as string | undefined) ?? "linear", layer);
}

function dense(b: GraphBuilder, x: Value, layer: tf.layers.Layer): Value {
  const w = weightsOf(layer);
  const kernel = w.get("kernel")!;
  const bias = w.get("bias");
  const input = x.rank === 4 ? b.as(x, "nhwc") : x;
  const W = b.constant(`${layer.name}_W`, data(kernel), kernel.shape);
  let name: string;
  if (input.rank === 2) {
    const inputs = [input.name, W, ...(bias ? [b.constant(`${layer.name}_B`, data(bias), bias.shape)] : [])];
    name = b.node("Gemm", inputs, layer.name);
  } else {
    name = b.node("MatMul", [input.name, W], layer.name);
    if (bias)
      name = b.node(
        "Add",
        [name, b.constant(`${layer.name}_B`, data(bias), bias.shape)],
        `${layer.name}_bias`,
      );
  }
  const out: Value = { name, layout: input.layout, rank: input.rank };
  return activation(b, out, (config(layer)["activation"] as string | undefined) ?? "linear", layer);
}

function batchNorm(b: GraphBuilder, x: Value, layer: tf.layers.Layer): Value {
  const c = config(layer);
  const axis = c["axis"] as number;
  if (axis !== -1 && axis !== x.rank - 1) throw new UnsupportedLayerError(layer, `axis ${axis}`);
  if (x.rank !== 2 && x.rank !== 4) throw new UnsupportedLayerError(layer, `rank ${x.rank}`);
  const w = weightsOf(layer);
  const mean = w.get("moving_mean")!;
  const channels = mean.shape[0]!;
  const gamma = w.get("gamma") ? data(w.get("gamma")!) : new Float32Array(channels).fill(1);
  const beta = w.get("beta") ? data(w.get("beta")!) : new Float32Array(channels);
  const input = b.as(x, "nchw");
  const inputs = [
    input.name,
    b.constant(`${layer.name}_scale`, gamma, [channels]),
    b.constant(`${layer.name}_bias`, beta, [channels]),
    b.constant(`${layer.name}_mean`, data(mean), [channels]),
    b.constant(`${layer.name}_var`, data(w.get("moving_variance")!), [channels]),
  ];
  const name = b.node("BatchNormalization", inputs, layer.name, {
    epsilon: { float: c["epsilon"] as number },
  });
  return { ...input, name };
}

function pool(b: GraphBuilder, x: Value, layer: tf.layers.Layer, op: "MaxPool" | "AveragePool"): Value {
  const c = config(layer);
  const size = pair(c["poolSize"] ?? 2);
  const attrs = {
    kernel_shape: size,
    strides: pair(c["strides"] ?? size),
    ...(c["padding"] === "same" ? { auto_pad: "SAME_UPPER" } : { pads: [0, 0, 0, 0] }),
  };
  return { name: b.node(op, [b.as(x, "nchw").name], layer.name, attrs), layout: "nchw", rank: 4 };
}

function globalPool(b: GraphBuilder, x: Value, layer: tf.layers.Layer, op: string): Value {
  const pooled = b.node(op, [b.as(x, "nchw").name], layer.name);
  return { name: b.node("Flatten", [pooled], `${layer.name}_flat`, { axis: 1 }), layout: "plain", rank: 2 };
}

function reshape(b: GraphBuilder, x: Value, layer: tf.layers.Layer): Value {
  const target = config(layer)["targetShape"] as number[];
  const input = b.as(x, "nhwc");
  const shape = b.int64Constant(`${layer.name}_shape`, [0, ...target]);
  const rank = target.length + 1;
  return {
    name: b.node("Reshape", [input.name, shape], layer.name),
    layout: rank === 4 ? "nhwc" : "plain",
    rank,
  };
}

function merge(b: GraphBuilder, xs: Value[], layer: tf.layers.Layer): Value {
  const cls = layer.getClassName();
  const layout = xs[0]!.layout === "nchw" ? "nchw" : "nhwc";
  const aligned = xs.map((v) => (v.rank === 4 ? b.as(v, layout) : v));
  const rank = aligned[0]!.rank;
  const ops: Record<string, string> = {
    Add: "Add",
    Multiply: "Mul",
    Subtract: "Sub",
    Maximum: "Max",
    Minimum: "Min",
  };
  if (cls === "Concatenate") {
    let axis = config(layer)["axis"] as number;
    if (axis < 0) axis += rank;
    // NHWC axis -> NCHW axis for rank-4 values kept in NCHW.
    if (rank === 4 && layout === "nchw") axis = [0, 2, 3, 1][axis]!;
    return {
      name: b.node(
        "Concat",
        aligned.map((v) => v.name),
        layer.name,
        { axis },
      ),
      layout: aligned[0]!.layout,
      rank,
    };
  }
  if (cls === "Average") {
    const sum = b.node(
      "Sum",
      aligned.map((v) => v.name),
      `${layer.name}_sum`,
    );
    const n = b.constant(`${layer.name}_n`, [aligned.length], []);
    return { name: b.node("Div", [sum, n], layer.name), layout: aligned[0]!.layout, rank };
  }
  const op = ops[cls]!;
  let name = aligned[0]!.name;
  for (const other of aligned.slice(1)) name = b.node(op, [name, other.name], layer.name);
  return { name, layout: aligned[0]!.layout, rank };
}

const IDENTITY = new Set([
  "Dropout",
  "SpatialDropout1D",
  "SpatialDropout2D",
  "GaussianNoise",
  "GaussianDropout",
  "AlphaDropout",
]);
const MERGES = new Set(["Add", "Concatenate", "Multiply", "Subtract", "Average", "Maximum", "Minimum"]);

/** One layer applied to its input values. */
export function convertLayer(b: GraphBuilder, layer: tf.layers.Layer, xs: Value[]): Value {
  const cls = layer.getClassName();
  const x = xs[0]!;
  if (MERGES.has(cls)) return merge(b, xs, layer);
  if (IDENTITY.has(cls)) return x;
  switch (cls) {
    case "Dense":
      return dense(b, x, layer);
    case "Conv2D":
      return conv2d(b, x, layer, false);
    case "DepthwiseConv2D":
      return conv2d(b, x, layer, true);
    case "BatchNormalization":
      return batchNorm(b, x, layer);
    case "MaxPooling2D":
      return pool(b, x, layer, "MaxPool");
    case "AveragePooling2D":
      return pool(b, x, layer, "AveragePool");
    case "GlobalAveragePooling2D":
      return globalPool(b, x, layer, "GlobalAveragePool");
    case "GlobalMaxPooling2D":
      return globalPool(b, x, layer, "GlobalMaxPool");
    case "Flatten": {
      const input = b.as(x, "nhwc");
      return { name: b.node("Flatten", [input.name], layer.name, { axis: 1 }), layout: "plain", rank: 2 };
    }
    case "Reshape":
      return reshape(b, x, layer);
    case "Activation":
      return activation(b, x, config(layer)["activation"] as string, layer);
    case "ReLU": {
      const max = config(layer)["maxValue"] as number | null | undefined;
      if (max == null) return activation(b, x, "relu", layer);
      const clip = [x.name, b.constant("zero", [0], []), b.constant(`${layer.name}_max`, [max], [])];
      return { ...x, name: b.node("Clip", clip, layer.name) };
    }
    case "LeakyReLU":
      return {
        ...x,
        name: b.node("LeakyRelu", [x.name], layer.name, {
          alpha: { float: config(layer)["alpha"] as number },
        }),
      };
    case "ELU":
      return {
        ...x,
        name: b.node("Elu", [x.name], layer.name, { alpha: { float: config(layer)["alpha"] as number } }),
      };
    case "Softmax": {
      const axis = config(layer)["axis"] as number;
      if (axis !== -1 && axis !== x.rank - 1) throw new UnsupportedLayerError(layer, `axis ${axis}`);
      return activation(b, x, "softmax", layer);
    }
    default:
      throw new UnsupportedLayerError(layer);
  }
}
