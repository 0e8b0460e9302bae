// The ONNX protobuf (onnx-proto's generated protobufjs classes), re-exported once with the helpers both the
// teacher loader and the student exporter use.
import onnxProto from "onnx-proto";

export const { onnx } = onnxProto;
export type { onnx as OnnxTypes } from "onnx-proto";

/** Key of the trainer's entry in an ONNX model's metadata_props (the input normalisation, as in model.json). */
export const METADATA_KEY = "mokd";

/** Number of elements of a tensor with these dims (protobufjs gives int64 as number or Long). */
export function elementCount(dims: readonly (number | { toNumber(): number })[]): number {
  return dims.reduce<number>((n, d) => n * (typeof d === "number" ? d : d.toNumber()), 1);
}
