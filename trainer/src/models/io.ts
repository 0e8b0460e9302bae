// Saving networks and loading teachers in the tfjs LayersModel format (model.json + binary weights). Plain tfjs
// has no file:// handler, so local files go through fs with tf.io.withSaveHandler / tf.io.fromMemory; http(s)
// URLs use tf.loadLayersModel (fetch).
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import type { InputNormalization, Network } from "../contracts.ts";
import { DataError } from "../data/errors.ts";

const MODEL_JSON = "model.json";
/** Key of the trainer's entry in model.json's userDefinedMetadata. */
const METADATA_KEY = "mokd";
const WEIGHTS_BIN = "weights.bin";

const isUrl = (s: string) => /^https?:\/\//i.test(s);

/** Writes a file so readers see the old or the new content, never a partial one. */
function writeAtomic(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/**
 * Writes `dir`/model.json and `dir`/weights.bin (weights first, model.json last: model.json is the commit point,
 * and each file is replaced atomically). For an all-or-nothing checkpoint, save into a fresh directory and
 * rename it.
 */
export async function saveNetwork(network: Network, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const metadata = network.inputNormalization
    ? { [METADATA_KEY]: { inputNormalization: network.inputNormalization } }
    : undefined;
  await network.model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? new ArrayBuffer(0));
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as tf.io.ModelJSON["modelTopology"],
        format: artifacts.format ?? "layers-model",
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
        ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig } : {}),
        ...(metadata ? { userDefinedMetadata: metadata } : {}),
      };
      writeAtomic(join(dir, WEIGHTS_BIN), new Uint8Array(weights));
      writeAtomic(join(dir, MODEL_JSON), JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

function readJson(file: string): tf.io.ModelJSON {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new DataError(file, `cannot read the teacher model: ${(err as Error).message}`);
  }
  try {
    const json = JSON.parse(text) as tf.io.ModelJSON;
    if (json.modelTopology == null) throw new Error("no modelTopology");
    return json;
  } catch (err) {
    throw new DataError(file, `not a tfjs LayersModel model.json (${(err as Error).message})`);
  }
}

function readWeights(
  root: string,
  manifest: tf.io.WeightsManifestConfig,
): [tf.io.WeightsManifestEntry[], ArrayBuffer] {
  const specs = manifest.flatMap((group) => group.weights);
  const buffers = manifest.flatMap((group) =>
    group.paths.map((p) => {
      const file = join(root, p);
      try {
        const bytes = readFileSync(file);
        return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
      } catch (err) {
        throw new DataError(file, `cannot read teacher weights: ${(err as Error).message}`);
      }
    }),
  );
  return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
}

async function loadLocal(path: string): Promise<tf.LayersModel> {
  const file = statSync(path, { throwIfNoEntry: false })?.isDirectory() ? join(path, MODEL_JSON) : path;
  const json = readJson(file);
  const artifacts = await tf.io.getModelArtifactsForJSON(json, async (manifest) =>
    readWeights(dirname(file), manifest),
  );
  try {
    return await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (err) {
    throw new DataError(file, `cannot build the teacher model: ${(err as Error).message}`);
  }
}

async function loadUrl(url: string): Promise<tf.LayersModel> {
  try {
    return await tf.loadLayersModel(url);
  } catch (err) {
    throw new DataError(url, `cannot load the teacher model: ${(err as Error).message}`);
  }
}

/** A tfjs LayersModel from a directory, a model.json path, or an http(s) URL of a model.json. */
export async function loadLayersModel(pathOrUrl: string): Promise<tf.LayersModel> {
  return isUrl(pathOrUrl) ? loadUrl(pathOrUrl) : loadLocal(pathOrUrl);
}

/** The input normalisation saveNetwork recorded in a loaded model, if any. */
export function savedInputNormalization(model: tf.LayersModel): InputNormalization | undefined {
  const metadata = model.getUserDefinedMetadata() as
    Record<string, { inputNormalization?: InputNormalization } | undefined> | undefined;
  const n = metadata?.[METADATA_KEY]?.inputNormalization;
  const numbers = (xs: unknown) => Array.isArray(xs) && xs.every((x) => typeof x === "number");
  return n && numbers(n.mean) && numbers(n.std) && n.mean.length === n.std.length ? n : undefined;
}
