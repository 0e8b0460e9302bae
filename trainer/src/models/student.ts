// A student from the topology of a model of one's own (spec.student.model): the model.json's layers, built
// with fresh weights (its weight files are not read), initialisers seeded from training.seed so two runs with
// the same seed start alike. Exposed as [logits, features] like a loaded teacher, but trainable.
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import type { Network } from "../contracts.ts";
import { DataError } from "../data/errors.ts";
import { deriveSeed } from "../data/random.ts";
import { adaptInput, asNetwork } from "./teacher.ts";

/** Initialisers that draw random numbers, and so take a seed. */
const SEEDED_INITIALIZERS = new Set([
  "GlorotUniform",
  "GlorotNormal",
  "HeUniform",
  "HeNormal",
  "LeCunUniform",
  "LeCunNormal",
  "RandomUniform",
  "RandomNormal",
  "TruncatedNormal",
  "VarianceScaling",
  "Orthogonal",
]);

type Json = Record<string, unknown>;

/** Sets a derived seed on every random initialiser of a Keras topology (in place; returns how many). */
export function seedInitializers(node: unknown, seed: number, counter = { n: 0 }): number {
  if (Array.isArray(node)) {
    node.forEach((v) => seedInitializers(v, seed, counter));
  } else if (typeof node === "object" && node !== null) {
    const o = node as Json;
    const config = o["config"];
    if (typeof o["class_name"] === "string" && SEEDED_INITIALIZERS.has(o["class_name"]) && isJson(config))
      config["seed"] = deriveSeed(seed, counter.n++);
    Object.values(o).forEach((v) => seedInitializers(v, seed, counter));
  }
  return counter.n;
}

const isJson = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

async function readTopology(pathOrUrl: string): Promise<Json> {
  let json: unknown;
  try {
    if (/^https?:\/\//i.test(pathOrUrl)) {
      const response = await fetch(pathOrUrl);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      json = await response.json();
    } else {
      const file = statSync(pathOrUrl, { throwIfNoEntry: false })?.isDirectory()
        ? join(pathOrUrl, "model.json")
        : pathOrUrl;
      json = JSON.parse(readFileSync(file, "utf8"));
    }
  } catch (error) {
    throw new DataError(pathOrUrl, `cannot read the student model: ${(error as Error).message}`);
  }
  const topology = isJson(json) ? json["modelTopology"] : undefined;
  if (!isJson(topology))
    throw new DataError(pathOrUrl, "not a tfjs LayersModel model.json (no modelTopology)");
  return topology;
}

export interface StudentModelOptions {
  featureLayer?: string;
  seed: number;
  /** The dataset's [height, width, channels] and class count: the model must fit them. */
  inputShape: [number, number, number];
  numClasses: number;
}

/** The student network of `pathOrUrl`'s topology with fresh seeded weights; a mismatch is a DataError. */
export async function loadStudentTopology(pathOrUrl: string, options: StudentModelOptions): Promise<Network> {
  const topology = structuredClone(await readTopology(pathOrUrl));
  seedInitializers(topology, options.seed);
  let base: tf.LayersModel;
  try {
    // Topology only, no weightsManifest: every weight comes from its (seeded) initialiser. The parameter's
    // PyJsonDict type is not exported by tfjs-layers.
    base = await tf.models.modelFromJSON({ modelTopology: topology } as never);
  } catch (error) {
    throw new DataError(pathOrUrl, `cannot build the student model: ${(error as Error).message}`);
  }
  const network = adaptInput(
    asNetwork(base, options.featureLayer, pathOrUrl, { trainable: true }),
    options.inputShape,
    pathOrUrl,
    {
      trainable: true,
    },
  );
  if (network.numClasses !== options.numClasses) {
    throw new DataError(
      pathOrUrl,
      `the student has ${network.numClasses} outputs, the data ${options.numClasses} classes`,
    );
  }
  return network;
}

/** [height, width, channels] of a model's input, from its topology (image folders resize to it). */
export async function modelInputShape(pathOrUrl: string): Promise<[number, number, number]> {
  const topology = await readTopology(pathOrUrl);
  let model: tf.LayersModel;
  try {
    model = await tf.models.modelFromJSON({ modelTopology: topology } as never);
  } catch (error) {
    throw new DataError(pathOrUrl, `cannot build the model: ${(error as Error).message}`);
  }
  const shape = model.inputs[0]!.shape.slice(1);
  model.dispose();
  const [height, width, channels] = shape;
  if (shape.length !== 3 || !height || !width || (channels !== 1 && channels !== 3))
    throw new DataError(pathOrUrl, `input [${shape.join(", ")}] is not an image of 1 or 3 channels`);
  return [height, width, channels];
}
