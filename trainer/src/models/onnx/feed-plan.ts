// How an ONNX teacher's graph is fed and read, settled once at load from the model and the data's shape: the input
// (its name, NHWC or NCHW or flat, fixed or dynamic batch), the logits (a softmax output undone, Identity copies
// followed) and the features (a named output or intermediate value; default the input of the logits' Gemm/MatMul).
// Every problem is a DataError naming the file and what was expected (exit 3).
import type { InputNormalization } from "../../contracts.ts";
import { DataError } from "../../data/errors.ts";
import { elementCount, METADATA_KEY, onnx, type OnnxTypes } from "./proto.ts";
import { FLOAT32, type RawValueMetadata, type SyncOnnxSession } from "./runtime.ts";

export type InputLayout = "nhwc" | "nchw";

export interface OnnxTeacherOptions {
  inputName?: string;
  /** The logits output (default: the first). */
  outputName?: string;
  /** A graph value (output or intermediate) whose output is the feature target. */
  featureName?: string;
  inputLayout?: InputLayout | "auto";
  /** Where a fallback from the CUDA execution provider to the CPU is told (the run's log). */
  warn?: (message: string) => void;
}

/** How the graph is fed and read, settled at load. */
export interface OnnxFeedPlan {
  input: string;
  /** "flat": a rank-2 input [batch, h*w*c] fed the NHWC data flattened. */
  layout: InputLayout | "flat";
  /** The input's dims after the batch, as fed. */
  dims: number[];
  /** A fixed batch size the graph requires; undefined: dynamic. */
  fixedBatch?: number;
  logits: string;
  features: string;
}

const describeShape = (m: RawValueMetadata) =>
  `[${m.shape.map((d, i) => (d >= 0 ? String(d) : m.symbolicDimensions[i] || "?")).join(", ")}]`;

const fits = (dims: number[], want: number[]) =>
  dims.length === want.length && dims.every((d, i) => d < 0 || d === want[i]);

/** The layout that feeds data of `shape` ([h, w, c]) to an input with these dims after the batch. */
export function chooseLayout(
  dims: number[],
  shape: readonly number[],
  requested: InputLayout | "auto",
): InputLayout | "flat" | undefined {
  const [h, w, c] = shape as [number, number, number];
  const nchw = fits(dims, [c, h, w]);
  const nhwc = fits(dims, [h, w, c]);
  if (dims.length === 1 && fits(dims, [h * w * c])) return requested === "nchw" ? undefined : "flat";
  if (requested === "nchw") return nchw ? "nchw" : undefined;
  if (requested === "nhwc") return nhwc ? "nhwc" : undefined;
  return nchw ? "nchw" : nhwc ? "nhwc" : undefined;
}

export function decodeModel(bytes: Uint8Array, file: string): OnnxTypes.ModelProto {
  try {
    const model = onnx.ModelProto.decode(bytes);
    if (!model.graph?.node?.length) throw new Error("no graph");
    return model;
  } catch (err) {
    throw new DataError(file, `not an ONNX model (${(err as Error).message}); expected a .onnx ModelProto`);
  }
}

/** The producer of each value in the graph. */
function producers(graph: OnnxTypes.IGraphProto): Map<string, OnnxTypes.INodeProto> {
  const byOutput = new Map<string, OnnxTypes.INodeProto>();
  for (const node of graph.node ?? []) for (const out of node.output ?? []) byOutput.set(out, node);
  return byOutput;
}

/** Softmax outputs are probabilities: their input is the logits. */
function logitsValue(name: string, made: Map<string, OnnxTypes.INodeProto>): string {
  const node = made.get(name);
  return node?.opType === "Softmax" ? node.input![0]! : name;
}

/** The value an Identity chain copies (exporters name outputs through Identity nodes). */
function throughIdentity(name: string, made: Map<string, OnnxTypes.INodeProto>): string {
  let node = made.get(name);
  while (node?.opType === "Identity") {
    name = node.input![0]!;
    node = made.get(name);
  }
  return name;
}

/** The input of the Gemm/MatMul (possibly followed by Add) computing the logits: "the layer before the last". */
function defaultFeatures(logits: string, made: Map<string, OnnxTypes.INodeProto>): string {
  let node = made.get(throughIdentity(logits, made));
  if (node?.opType === "Add") {
    const matmul = node.input!.map((i) => made.get(i)).find((n) => n?.opType === "MatMul");
    node = matmul ?? node;
  }
  return node && (node.opType === "Gemm" || node.opType === "MatMul") ? node.input![0]! : logits;
}

function knownValues(graph: OnnxTypes.IGraphProto): Set<string> {
  const names = new Set<string>();
  for (const node of graph.node ?? []) for (const out of node.output ?? []) names.add(out);
  return names;
}

/** The input normalisation our own exporter recorded, if any. */
export function recordedNormalization(model: OnnxTypes.IModelProto): InputNormalization | undefined {
  const entry = model.metadataProps?.find((p) => p.key === METADATA_KEY);
  if (!entry?.value) return undefined;
  try {
    const n = (JSON.parse(entry.value) as { inputNormalization?: InputNormalization }).inputNormalization;
    return n && Array.isArray(n.mean) && Array.isArray(n.std) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Parameters: elements of the graph's initializers (weights, biases; shape constants are negligible). */
export function onnxParameterCount(model: OnnxTypes.IModelProto): number {
  return (model.graph?.initializer ?? []).reduce((n, t) => n + elementCount(t.dims ?? []), 0);
}

function pickInput(session: SyncOnnxSession, name: string | undefined, file: string): RawValueMetadata {
  const inputs = session.inputs;
  const names = inputs.map((i) => i.name).join(", ");
  if (name !== undefined) {
    const named = inputs.find((i) => i.name === name);
    if (!named)
      throw new DataError(file, `no graph input named "${name}" (inputs: ${names}; teacher.inputName)`);
    return named;
  }
  if (inputs.length !== 1)
    throw new DataError(file, `the graph has ${inputs.length} inputs (${names}): set teacher.inputName`);
  return inputs[0]!;
}

/** Checks the input against the data and settles the feed: layout, dims, batch. */
function feedOf(
  input: RawValueMetadata,
  shape: readonly number[],
  layout: InputLayout | "auto",
  file: string,
): Pick<OnnxFeedPlan, "input" | "layout" | "dims" | "fixedBatch"> {
  if (!input.isTensor || input.type !== FLOAT32)
    throw new DataError(file, `input "${input.name}" must be a float32 tensor (ONNX type ${input.type})`);
  const [h, w, c] = shape as [number, number, number];
  const dims = input.shape.slice(1);
  const chosen = input.shape.length >= 2 ? chooseLayout(dims, shape, layout) : undefined;
  if (!chosen) {
    const expected =
      layout === "nhwc"
        ? `[N, ${h}, ${w}, ${c}] (NHWC)`
        : layout === "nchw"
          ? `[N, ${c}, ${h}, ${w}] (NCHW)`
          : `[N, ${c}, ${h}, ${w}] (NCHW) or [N, ${h}, ${w}, ${c}] (NHWC)`;
    throw new DataError(
      file,
      `input "${input.name}" has shape ${describeShape(input)}; the data is ${h}x${w}x${c}, so expected ${expected}`,
    );
  }
  const fed = chosen === "nchw" ? [c, h, w] : chosen === "nhwc" ? [h, w, c] : [h * w * c];
  const batch = input.shape[0]!;
  return { input: input.name, layout: chosen, dims: fed, ...(batch > 0 ? { fixedBatch: batch } : {}) };
}

/** Makes `names` graph outputs (intermediate values become readable); returns the model's bytes. */
export function withOutputs(model: OnnxTypes.ModelProto, names: string[], bytes: Uint8Array): Uint8Array {
  const graph = model.graph!;
  graph.output ??= [];
  const present = graph.output;
  const missing = names.filter((n) => !present.some((o) => o.name === n));
  if (missing.length === 0) return bytes;
  for (const name of new Set(missing))
    present.push(onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: FLOAT32 } } }));
  return onnx.ModelProto.encode(model).finish();
}

/** Resolves the input, logits and features of a decoded model against the data shape. */
export function planFeed(
  model: OnnxTypes.ModelProto,
  session: SyncOnnxSession,
  shape: readonly number[],
  options: OnnxTeacherOptions,
  file: string,
): OnnxFeedPlan {
  const graph = model.graph!;
  const outputs = session.outputs.map((o) => o.name);
  const values = knownValues(graph);
  const made = producers(graph);
  const output = options.outputName ?? outputs[0];
  if (output === undefined || !outputs.includes(output))
    throw new DataError(
      file,
      `no graph output named "${output}" for the logits (outputs: ${outputs.join(", ")}; teacher.outputName)`,
    );
  const logits = logitsValue(throughIdentity(output, made), made);
  const features = options.featureName ?? defaultFeatures(logits, made);
  if (!values.has(features) && !outputs.includes(features))
    throw new DataError(
      file,
      `no graph value named "${features}" for the features (outputs: ${outputs.join(", ")}; teacher.featureLayer names any output or intermediate value)`,
    );
  const feed = feedOf(
    pickInput(session, options.inputName, file),
    shape,
    options.inputLayout ?? "auto",
    file,
  );
  return { ...feed, logits, features };
}
