// Our tfjs LayersModel -> ONNX converter (opset 17; onnx-proto writes the protobuf). The graph keeps the tfjs
// model's NHWC input ([N, h, w, c], dynamic batch N) and its first output, the logits ("logits", [N, classes]).
// ONNX's convolution and pooling are NCHW: every value carries its layout, and a Transpose is inserted where an
// op needs the other one (into NCHW before the first conv, back to NHWC before a Flatten/Reshape/Dense on a
// rank-4 value, so flattening orders features as tfjs does). A layer without a mapping throws
// UnsupportedLayerError naming it; the caller then publishes tfjs only.
import * as tf from "@tensorflow/tfjs";
import type { InputNormalization } from "../../contracts.ts";
import { METADATA_KEY, onnx, type OnnxTypes } from "./proto.ts";

export const ONNX_OPSET = 17;
export const ONNX_INPUT = "input";
export const ONNX_OUTPUT = "logits";

export class UnsupportedLayerError extends Error {
  constructor(layer: tf.layers.Layer, detail?: string) {
    super(
      `layer ${layer.name} (${layer.getClassName()}${detail ? `: ${detail}` : ""}) has no ONNX mapping in this trainer`,
    );
    this.name = "UnsupportedLayerError";
  }
}

type Layout = "nhwc" | "nchw" | "plain";
/** A float attribute (a bare number is an int attribute). */
interface Float {
  float: number;
}
type AttributeValue = number | number[] | string | Float;
interface Value {
  name: string;
  layout: Layout;
  rank: number;
}

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];

/** Builds the node list, initializers and value names of one graph. */
class GraphBuilder {
  readonly nodes: OnnxTypes.INodeProto[] = [];
  readonly initializers: OnnxTypes.ITensorProto[] = [];
  private counter = 0;
  private readonly transposed = new Map<string, string>();

  fresh(hint: string): string {
    return `${hint.replace(/[^A-Za-z0-9_]/g, "_")}_${this.counter++}`;
  }

  node(op: string, inputs: string[], hint: string, attributes: Record<string, AttributeValue> = {}) {
    const output = this.fresh(hint);
    this.nodes.push(
      onnx.NodeProto.create({
        opType: op,
        input: inputs,
        output: [output],
        name: output,
        attribute: Object.entries(attributes).map(([name, v]) => attribute(name, v)),
      }),
    );
    return output;
  }

  constant(hint: string, data: Float32Array | number[], dims: number[]): string {
    const name = this.fresh(hint);
    const values = data instanceof Float32Array ? data : Float32Array.from(data);
    this.initializers.push(
      onnx.TensorProto.create({
        name,
        dims,
        dataType: onnx.TensorProto.DataType.FLOAT,
        rawData: new Uint8Array(
          values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength),
        ),
      }),
    );
    return name;
  }

  int64Constant(hint: string, values: number[]): string {
    const name = this.fresh(hint);
    this.initializers.push(
      onnx.TensorProto.create({
        name,
        dims: [values.length],
        dataType: onnx.TensorProto.DataType.INT64,
        int64Data: values,
      }),
    );
    return name;
  }

  /** `value` in `layout` (rank-4 values only; others are returned as they are). */
  as(value: Value, layout: "nhwc" | "nchw"): Value {
    if (value.rank !== 4 || value.layout === layout) return value;
    const key = `${value.name}->${layout}`;
    let name = this.transposed.get(key);
    if (!name) {
      name = this.node("Transpose", [value.name], `${value.name}_${layout}`, {
        perm: layout === "nchw" ? TO_NCHW : TO_NHWC,
      });
      this.transposed.set(key, name);
    }
    return { name, layout, rank: 4 };
  }
}

function attribute(name: string, value: AttributeValue): OnnxTypes.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === "string") return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if (typeof value === "object") return { name, type: T.FLOAT, f: value.float };
  return { name, type: T.INT, i: value };
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
function convertLayer(b: GraphBuilder, layer: tf.layers.Layer, xs: Value[]): Value {
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

/** Converts the graph from `model`'s first input to `output`, recursing into nested models. */
class Converter {
  private readonly values = new Map<number, Value>();
  private readonly b: GraphBuilder;

  constructor(builder: GraphBuilder) {
    this.b = builder;
  }

  bind(tensor: tf.SymbolicTensor, value: Value): void {
    this.values.set(tensor.id, value);
  }

  valueOf(tensor: tf.SymbolicTensor): Value {
    const known = this.values.get(tensor.id);
    if (known) return known;
    const layer = tensor.sourceLayer as tf.layers.Layer;
    const node = (layer as unknown as { inboundNodes: { inputTensors: tf.SymbolicTensor[] }[] }).inboundNodes[
      tensor.nodeIndex
    ]!;
    const inputs = node.inputTensors.map((t) => this.valueOf(t));
    const value =
      layer instanceof tf.LayersModel
        ? this.nested(layer, inputs, tensor.tensorIndex)
        : convertLayer(this.b, layer, inputs);
    this.values.set(tensor.id, value);
    return value;
  }

  private nested(model: tf.LayersModel, inputs: Value[], outputIndex: number): Value {
    const inner = new Converter(this.b);
    model.inputs.forEach((t, i) => inner.bind(t, inputs[i]!));
    return inner.valueOf(model.outputs[outputIndex]!);
  }
}

export interface ExportOptions {
  inputNormalization?: InputNormalization;
  /**
   * The graph input's layout: "nhwc" (default: the tfjs model's own) or "nchw" ([N, c, h, w], as PyTorch exports
   * take images; the converter then feeds convolutions directly and transposes only where NHWC is needed).
   */
  inputLayout?: "nhwc" | "nchw";
  /** Recorded in the model (producer_version). */
  producerVersion?: string;
}

/** The ONNX model (serialized ModelProto) of `model`'s first output over its first input, NHWC. */
export function exportOnnx(model: tf.LayersModel, options: ExportOptions = {}): Uint8Array {
  const input = model.inputs[0]!;
  const shape = input.shape.slice(1) as number[];
  const b = new GraphBuilder();
  const converter = new Converter(b);
  const rank = shape.length + 1;
  const nchw = options.inputLayout === "nchw" && rank === 4;
  converter.bind(input, { name: ONNX_INPUT, layout: rank === 4 ? (nchw ? "nchw" : "nhwc") : "plain", rank });
  const logits = converter.valueOf(model.outputs[0]!);
  if (logits.rank !== 2)
    throw new Error(`the first output has rank ${logits.rank}; expected logits [N, classes]`);
  b.node("Identity", [logits.name], ONNX_OUTPUT);
  const classes = model.outputs[0]!.shape[1] as number;
  const dim = (d: number | string) => (typeof d === "string" ? { dimParam: d } : { dimValue: d });
  const tensorType = (dims: (number | string)[]) => ({
    tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map(dim) } },
  });
  // The final Identity's output is the public name.
  b.nodes.at(-1)!.output = [ONNX_OUTPUT];
  const graph = onnx.GraphProto.create({
    name: model.name,
    node: b.nodes,
    initializer: b.initializers,
    input: [
      { name: ONNX_INPUT, type: tensorType(["N", ...(nchw ? [shape[2]!, shape[0]!, shape[1]!] : shape)]) },
    ],
    output: [{ name: ONNX_OUTPUT, type: tensorType(["N", classes]) }],
  });
  const layout = nchw ? "NCHW" : "NHWC";
  const recorded = {
    ...(options.inputNormalization ? { inputNormalization: options.inputNormalization } : {}),
    layout,
  };
  const metadata = [{ key: METADATA_KEY, value: JSON.stringify(recorded) }];
  const proto = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: "", version: ONNX_OPSET }],
    producerName: "mokd-trainer",
    producerVersion: options.producerVersion ?? "",
    graph,
    metadataProps: metadata,
  });
  return onnx.ModelProto.encode(proto).finish();
}
