// Reproducible dropout. A tfjs Dropout layer without a seed draws its mask from Math.random (run-to-run
// nondeterminism); with a fixed seed it draws the SAME mask at every call. tfjs reads the layer's `seed` at each
// call, so the training loops set a fresh seed derived from (run seed, step) before every step: masks differ from
// step to step, and two runs with the same seed (or a resumed run) draw the same masks.
import type * as tf from "@tensorflow/tfjs";
import { deriveSeed } from "../data/random.ts";

/** Stream id of dropout seeds in deriveSeed (distinct from the data's shuffle/augment streams). */
const DROPOUT_STREAM = 0xd209;

interface Seedable {
  seed?: number;
}

/** The Dropout layers of a model, including those of nested models. */
export function dropoutLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return model.layers.flatMap((layer) => {
    if (layer.getClassName() === "Dropout") return [layer];
    const nested = (layer as Partial<tf.LayersModel>).layers;
    return nested ? dropoutLayers(layer as tf.LayersModel) : [];
  });
}

/** Seeds every dropout layer for the given step (a no-op for models without dropout). */
export function seedDropout(layers: readonly tf.layers.Layer[], seed: number, step: number): void {
  layers.forEach((layer, i) => ((layer as Seedable).seed = deriveSeed(seed, DROPOUT_STREAM, step, i)));
}
