// The ONNX graph under construction: nodes, initializers, fresh value names, and values tagged with their layout
// (tfjs computes in NHWC, ONNX's convolution and pooling in NCHW), with a Transpose inserted once per value where
// an op needs the other layout.
import { onnx, type OnnxTypes } from "./proto.ts";

export type Layout = "nhwc" | "nchw" | "plain";
/** A float attribute (a bare number is an int attribute). */
interface Float {
  float: number;
}
export type AttributeValue = number | number[] | string | Float;
export interface Value {
  name: string;
  layout: Layout;
  rank: number;
}

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];

/** Builds the node list, initializers and value names of one graph. */
export class GraphBuilder {
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
