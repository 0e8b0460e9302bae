// An ONNX model as a frozen teacher: ONNX Runtime runs the graph inside a tfjs layer, so the teacher is a Network
// like any other (the student stage, the teacher output cache and evaluation need no ONNX path of their own).
// What the graph is fed and what is read from it is settled once, at load, and checked by one forward of zeros:
// the input (its name, NHWC or NCHW or flat, fixed or dynamic batch) against the data's shape, the logits (a
// softmax output undone), the features (a named output or intermediate value). Every problem is a DataError
// naming the file and what was expected (exit 3).
import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import type { InputNormalization, Network } from "../../contracts.ts";
import { DataError } from "../../data/errors.ts";
import { elementCount, METADATA_KEY, onnx, type OnnxTypes } from "./proto.ts";
import { FLOAT32, SyncOnnxSession, type RawValueMetadata } from "./runtime.ts";

export type InputLayout = "nhwc" | "nchw";

export interface OnnxTeacherOptions {
  inputName?: string;
  /** The logits output (default: the first). */
  outputName?: string;
  /** A graph value (output or intermediate) whose output is the feature target. */
  featureName?: string;
  inputLayout?: InputLayout | "auto";
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

function decodeModel(bytes: Uint8Array, file: string): OnnxTypes.ModelProto {
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
function recordedNormalization(model: OnnxTypes.IModelProto): InputNormalization | undefined {
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
function withOutputs(model: OnnxTypes.ModelProto, names: string[], bytes: Uint8Array): Uint8Array {
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

/** Runs a graph on NHWC batches of any size: transposes, splits into its fixed batch (padding the last). */
export class OnnxForward {
  readonly plan: OnnxFeedPlan;
  private readonly session: SyncOnnxSession;

  constructor(session: SyncOnnxSession, plan: OnnxFeedPlan) {
    this.session = session;
    this.plan = plan;
  }

  /** Logits [n, classes] and flattened features [n, dim] as plain arrays. */
  run(xs: tf.Tensor4D): {
    logits: Float32Array;
    features: Float32Array;
    classes: number;
    featureDim: number;
  } {
    const { plan } = this;
    const n = xs.shape[0];
    const fed = plan.layout === "nchw" ? tf.tidy(() => tf.transpose(xs, [0, 3, 1, 2])) : xs;
    const data = fed.dataSync() as Float32Array;
    if (fed !== xs) fed.dispose();
    const per = elementCount(plan.dims);
    const chunk = plan.fixedBatch ?? Math.max(n, 1);
    const parts: { logits: Float32Array; features: Float32Array }[] = [];
    let classes = 0;
    let featureDim = 0;
    for (let start = 0; start < Math.max(n, 1); start += chunk) {
      const rows = Math.min(chunk, n - start);
      const slice = new Float32Array(chunk * per);
      slice.set(data.subarray(start * per, (start + rows) * per));
      const out = this.session.run(plan.input, slice, [chunk, ...plan.dims], [plan.logits, plan.features]);
      const logits = out.get(plan.logits)!;
      const features = out.get(plan.features)!;
      classes = elementCount(logits.dims.slice(1));
      featureDim = elementCount(features.dims.slice(1));
      parts.push({
        logits: logits.data.subarray(0, rows * classes),
        features: features.data.subarray(0, rows * featureDim),
      });
    }
    return {
      logits: concat(parts.map((p) => p.logits)),
      features: concat(parts.map((p) => p.features)),
      classes,
      featureDim,
    };
  }

  release(): void {
    this.session.release();
  }
}

function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The graph as a tfjs layer: [batch, h, w, c] -> [logits, features]. Frozen, no tfjs weights. */
class OnnxGraphLayer extends tf.layers.Layer {
  static readonly className = "MokdOnnxGraph";
  private readonly forward: OnnxForward;
  private readonly classes: number;
  private readonly featureDim: number;

  constructor(forward: OnnxForward, classes: number, featureDim: number) {
    super({ name: "onnx_teacher", trainable: false });
    this.forward = forward;
    this.classes = classes;
    this.featureDim = featureDim;
  }

  override computeOutputShape(): tf.Shape[] {
    return [
      [null, this.classes],
      [null, this.featureDim],
    ];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const xs = (Array.isArray(inputs) ? inputs[0]! : inputs) as tf.Tensor4D;
    const n = xs.shape[0];
    const out = this.forward.run(xs);
    return [tf.tensor2d(out.logits, [n, this.classes]), tf.tensor2d(out.features, [n, this.featureDim])];
  }

  override dispose(): ReturnType<tf.layers.Layer["dispose"]> {
    const result = super.dispose();
    if (result.refCountAfterDispose === 0) this.forward.release();
    return result;
  }
}

async function readModelBytes(pathOrUrl: string): Promise<Uint8Array> {
  try {
    if (/^https?:\/\//i.test(pathOrUrl)) {
      const response = await fetch(pathOrUrl);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return new Uint8Array(await response.arrayBuffer());
    }
    return readFileSync(pathOrUrl);
  } catch (err) {
    throw new DataError(pathOrUrl, `cannot read the ONNX teacher: ${(err as Error).message}`);
  }
}

/** An ONNX model as a frozen teacher Network over data of `inputShape` ([h, w, c], NHWC). */
export async function loadOnnxTeacher(
  pathOrUrl: string,
  inputShape: readonly number[],
  options: OnnxTeacherOptions = {},
): Promise<Network> {
  const file = pathOrUrl;
  const { model, bytes, plan } = await onnxTeacherFeed(pathOrUrl, inputShape, options);
  const session = openSession(bytes, file);
  const forward = new OnnxForward(session, plan);
  const shape = check(forward, inputShape, file);
  const input = tf.input({ shape: [...inputShape] });
  const layer = new OnnxGraphLayer(forward, shape.classes, shape.featureDim);
  const outputs = layer.apply(input) as tf.SymbolicTensor[];
  const tfModel = tf.model({ inputs: input, outputs, name: "onnx_teacher" });
  tfModel.trainable = false;
  const inputNormalization = recordedNormalization(model);
  return {
    model: tfModel,
    numClasses: shape.classes,
    featureDim: shape.featureDim,
    parameters: onnxParameterCount(model),
    ...(inputNormalization ? { inputNormalization } : {}),
  };
}

/**
 * The model (with its logits and features made graph outputs) and how it is fed data of `inputShape`; also what
 * the compression report times in ONNX Runtime.
 */
export async function onnxTeacherFeed(
  pathOrUrl: string,
  inputShape: readonly number[],
  options: OnnxTeacherOptions = {},
): Promise<{ model: OnnxTypes.ModelProto; bytes: Uint8Array; plan: OnnxFeedPlan; fileBytes: number }> {
  const file = pathOrUrl;
  const original = await readModelBytes(pathOrUrl);
  const model = decodeModel(original, file);
  const probe = openSession(original, file);
  let plan: OnnxFeedPlan;
  try {
    plan = planFeed(model, probe, inputShape, options, file);
  } finally {
    probe.release();
  }
  const bytes = withOutputs(model, [plan.logits, plan.features], original);
  return { model, bytes, plan, fileBytes: original.byteLength };
}

function openSession(bytes: Uint8Array, file: string): SyncOnnxSession {
  try {
    return new SyncOnnxSession(bytes);
  } catch (err) {
    throw new DataError(file, `ONNX Runtime cannot load the model: ${(err as Error).message}`);
  }
}

/** One forward of zeros: the graph accepts the feed, the logits are [batch, classes]. */
function check(forward: OnnxForward, inputShape: readonly number[], file: string) {
  const [h, w, c] = inputShape as [number, number, number];
  const zeros = tf.zeros<tf.Rank.R4>([forward.plan.fixedBatch ?? 1, h, w, c]);
  try {
    const out = forward.run(zeros);
    if (out.classes < 2)
      throw new Error(`the logits "${forward.plan.logits}" have ${out.classes} values per sample`);
    return out;
  } catch (err) {
    forward.release();
    if (err instanceof DataError) throw err;
    throw new DataError(file, `the graph does not run on the data's input: ${(err as Error).message}`);
  } finally {
    zeros.dispose();
  }
}
