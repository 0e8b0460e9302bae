// An ONNX model as a frozen teacher: ONNX Runtime runs the graph inside a tfjs layer, so the teacher is a Network
// like any other (the student stage, the teacher output cache and evaluation need no ONNX path of their own).
// What the graph is fed and what is read from it is settled at load (feed-plan.ts) and checked by one forward of
// zeros. Every problem is a DataError naming the file and what was expected (exit 3).
import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import type { Network } from "../../contracts.ts";
import { DataError } from "../../data/errors.ts";
import {
  decodeModel,
  onnxParameterCount,
  planFeed,
  recordedNormalization,
  withOutputs,
  type OnnxFeedPlan,
  type OnnxTeacherOptions,
} from "./feed-plan.ts";
import { elementCount, type OnnxTypes } from "./proto.ts";
import { loadedNativeChoice } from "../../backend/native.ts";
import { SyncOnnxSession, teacherExecutionProviders, type ExecutionProvider } from "./runtime.ts";

export { chooseLayout, type InputLayout, type OnnxFeedPlan, type OnnxTeacherOptions } from "./feed-plan.ts";

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
  const providers = teacherExecutionProviders(loadedNativeChoice());
  const session = openSession(bytes, file, providers, options.warn);
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

function openSession(
  bytes: Uint8Array,
  file: string,
  providers?: ExecutionProvider[],
  warn?: (message: string) => void,
): SyncOnnxSession {
  try {
    return new SyncOnnxSession(bytes, providers, warn);
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
