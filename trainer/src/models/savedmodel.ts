// A TensorFlow SavedModel (e.g. Keras `model.export`) as a frozen teacher, through tfjs-node's own SavedModel
// loader on the native TensorFlow backend (libtensorflow runs the graph; no conversion). Like the ONNX teacher,
// the model runs inside a tfjs layer so the rest of the trainer sees a plain Network. Inputs are NHWC float32
// (TensorFlow's layout); the signature's one input is checked against the data's shape at load.
import * as tf from "@tensorflow/tfjs";
import { loadedNativePackage } from "../backend/native.ts";
import type { Network } from "../contracts.ts";
import { DataError } from "../data/errors.ts";
import { savedModelParameterCount } from "./savedmodel-parameters.ts";

export interface SavedModelTeacherOptions {
  /** Default serving_default. */
  signature?: string;
  /** Output key of the logits (default: the first). */
  outputName?: string;
  /** Output key of the features (default: the logits). */
  featureName?: string;
}

interface TensorInfo {
  name: string;
  /** int64 dims as the SavedModel proto reader gives them (Long-like objects; Number() reads them). */
  shape: unknown[];
  dtype: string;
}
interface SignatureDef {
  inputs: Record<string, TensorInfo>;
  outputs: Record<string, TensorInfo>;
}
interface SavedModel {
  predict(inputs: tf.NamedTensorMap): tf.NamedTensorMap;
  dispose(): void;
}
interface TfNode {
  node: {
    getMetaGraphsFromSavedModel(
      path: string,
    ): Promise<{ tags: string[]; signatureDefs: Record<string, SignatureDef> }[]>;
    loadSavedModel(path: string, tags?: string[], signature?: string): Promise<SavedModel>;
  };
}

const DEFAULT_SIGNATURE = "serving_default";

function nativePackage(dir: string): string {
  const pkg = loadedNativePackage();
  if (!pkg || tf.getBackend() !== "tensorflow")
    throw new DataError(
      dir,
      `a SavedModel teacher runs on the native TensorFlow backend, and this run uses "${tf.getBackend()}": set spec.runtime.backend to tensorflow (or convert the model to ONNX)`,
    );
  return pkg;
}

async function tfNode(dir: string): Promise<TfNode> {
  return (await import(nativePackage(dir))) as TfNode;
}

async function signatureOf(node: TfNode["node"], dir: string, name: string): Promise<SignatureDef> {
  let graphs: Awaited<ReturnType<TfNode["node"]["getMetaGraphsFromSavedModel"]>>;
  try {
    graphs = await node.getMetaGraphsFromSavedModel(dir);
  } catch (err) {
    throw new DataError(
      dir,
      `not a readable SavedModel (${(err as Error).message}); expected saved_model.pb`,
    );
  }
  const serve = graphs.find((g) => g.tags.includes("serve")) ?? graphs[0];
  const signature = serve?.signatureDefs[name];
  if (!signature) {
    const names = Object.keys(serve?.signatureDefs ?? {}).join(", ") || "none";
    throw new DataError(dir, `no signature "${name}" (signatures: ${names}; teacher.signature)`);
  }
  return signature;
}

function checkInput(signature: SignatureDef, inputShape: readonly number[], dir: string): string {
  const entries = Object.entries(signature.inputs);
  if (entries.length !== 1)
    throw new DataError(
      dir,
      `the signature has ${entries.length} inputs (${entries.map(([k]) => k).join(", ")}); expected one image input`,
    );
  const [key, info] = entries[0]!;
  const shape = info.shape.map((d) => Number(d));
  const dims = shape.slice(1);
  const ok = dims.length === 3 && dims.every((d, i) => d < 0 || d === inputShape[i]);
  if (!ok || info.dtype !== "float32")
    throw new DataError(
      dir,
      `input "${key}" is ${info.dtype} [${shape.join(", ")}]; the data needs float32 [N, ${inputShape.join(", ")}] (NHWC)`,
    );
  return key;
}

function outputKey(signature: SignatureDef, name: string | undefined, what: string, dir: string): string {
  const keys = Object.keys(signature.outputs);
  const key = name ?? keys[0];
  if (key === undefined || !keys.includes(key))
    throw new DataError(dir, `no output "${key}" for the ${what} (outputs: ${keys.join(", ")})`);
  return key;
}

class SavedModelLayer extends tf.layers.Layer {
  static readonly className = "MokdSavedModel";
  private readonly model: SavedModel;
  private readonly keys: { input: string; logits: string; features: string };
  private readonly dims: { classes: number; featureDim: number };

  constructor(model: SavedModel, keys: SavedModelLayer["keys"], dims: SavedModelLayer["dims"]) {
    super({ name: "savedmodel_teacher", trainable: false });
    this.model = model;
    this.keys = keys;
    this.dims = dims;
  }

  override computeOutputShape(): tf.Shape[] {
    return [
      [null, this.dims.classes],
      [null, this.dims.featureDim],
    ];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const xs = Array.isArray(inputs) ? inputs[0]! : inputs;
    const out = this.model.predict({ [this.keys.input]: xs });
    const logits = out[this.keys.logits]!;
    const features = out[this.keys.features]!;
    const n = xs.shape[0]!;
    const result = [logits.reshape([n, -1]), features.reshape([n, -1])];
    tf.dispose(Object.values(out).filter((t) => !result.includes(t)));
    return result;
  }

  override dispose(): ReturnType<tf.layers.Layer["dispose"]> {
    const result = super.dispose();
    if (result.refCountAfterDispose === 0) this.model.dispose();
    return result;
  }
}

/** A SavedModel directory as a frozen teacher Network over data of `inputShape` ([h, w, c]). */
export async function loadSavedModelTeacher(
  dir: string,
  inputShape: readonly number[],
  options: SavedModelTeacherOptions = {},
): Promise<Network> {
  const { node } = await tfNode(dir);
  const name = options.signature ?? DEFAULT_SIGNATURE;
  const signature = await signatureOf(node, dir, name);
  const input = checkInput(signature, inputShape, dir);
  const logits = outputKey(signature, options.outputName, "logits", dir);
  const features = outputKey(signature, options.featureName ?? logits, "features", dir);
  let model: SavedModel;
  try {
    model = await node.loadSavedModel(dir, ["serve"], name);
  } catch (err) {
    throw new DataError(dir, `TensorFlow cannot load the SavedModel: ${(err as Error).message}`);
  }
  const [h, w, c] = inputShape as [number, number, number];
  const probe = tf.tidy(() => {
    const out = model.predict({ [input]: tf.zeros([1, h, w, c]) });
    return { classes: out[logits]!.size, featureDim: out[features]!.size };
  });
  const layer = new SavedModelLayer(model, { input, logits, features }, probe);
  const x = tf.input({ shape: [h, w, c] });
  const tfModel = tf.model({
    inputs: x,
    outputs: layer.apply(x) as tf.SymbolicTensor[],
    name: "savedmodel_teacher",
  });
  tfModel.trainable = false;
  // Its weights are TensorFlow's, not tfjs's (countParams() would say 0): counted from saved_model.pb.
  const parameters = savedModelParameterCount(dir, nativePackage(dir));
  return {
    model: tfModel,
    numClasses: probe.classes,
    featureDim: probe.featureDim,
    ...(parameters !== undefined ? { parameters } : {}),
  };
}
