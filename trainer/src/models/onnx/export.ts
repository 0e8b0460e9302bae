// Our tfjs LayersModel -> ONNX converter (opset 17; onnx-proto writes the protobuf). The graph keeps the tfjs
// model's NHWC input ([N, h, w, c], dynamic batch N) and its first output, the logits ("logits", [N, classes]).
// ONNX's convolution and pooling are NCHW: every value carries its layout, and a Transpose is inserted where an
// op needs the other one (into NCHW before the first conv, back to NHWC before a Flatten/Reshape/Dense on a
// rank-4 value, so flattening orders features as tfjs does). A layer without a mapping throws
// UnsupportedLayerError naming it; the caller then publishes tfjs only.
import * as tf from "@tensorflow/tfjs";
import type { InputNormalization } from "../../contracts.ts";
import { GraphBuilder, type Value } from "./graph-builder.ts";
import { convertLayer } from "./layers.ts";
import { METADATA_KEY, onnx } from "./proto.ts";

export { UnsupportedLayerError } from "./layers.ts";

export const ONNX_OPSET = 17;
export const ONNX_INPUT = "input";
export const ONNX_OUTPUT = "logits";

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
