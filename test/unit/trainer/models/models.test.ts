import { createServer, type Server } from "node:http";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Network } from "../../../../trainer/src/contracts.ts";
import { DataError } from "../../../../trainer/src/data/index.ts";
import {
  buildNetwork,
  loadTeacher,
  parameterCount,
  saveNetwork,
  type ArchitectureFields,
} from "../../../../trainer/src/models/index.ts";
import { tempDir } from "../../../fixtures/dataset-files.ts";

const arch = (over: Partial<ArchitectureFields>): ArchitectureFields => ({
  architecture: "cnn",
  width: 4,
  depth: 2,
  hiddenUnits: 16,
  dropout: 0,
  ...over,
});

function outputs(network: Network, xs: tf.Tensor): [Float32Array, Float32Array] {
  return tf.tidy(() => {
    const [logits, features] = network.model.predict(xs) as tf.Tensor[];
    return [logits!.dataSync() as Float32Array, features!.dataSync() as Float32Array];
  });
}

const input = (shape: number[], seed = 1) => tf.randomNormal([3, ...shape], 0, 1, "float32", seed);

describe("buildNetwork", () => {
  const cases: [ArchitectureFields, [number, number, number], number][] = [
    [arch({ depth: 1 }), [28, 28, 1], 10],
    [arch({ depth: 3, width: 2, hiddenUnits: 8, dropout: 0.2 }), [32, 32, 3], 100],
    [arch({ depth: 6, width: 1 }), [8, 8, 1], 4],
    [arch({ architecture: "mlp", depth: 1, width: 8 }), [28, 28, 1], 10],
    [arch({ architecture: "mlp", depth: 3, width: 5, hiddenUnits: 7 }), [4, 4, 3], 3],
  ];
  for (const [a, shape, classes] of cases) {
    it(`${a.architecture} depth ${a.depth} width ${a.width} on ${shape.join("x")} gives [logits, features]`, () => {
      const net = buildNetwork(a, shape, classes, 1);
      expect(net.featureDim).toBe(a.hiddenUnits);
      expect(net.numClasses).toBe(classes);
      expect(net.model.outputs.map((o) => o.shape)).toEqual([
        [null, classes],
        [null, a.hiddenUnits],
      ]);
      const xs = input(shape);
      const [logits, features] = net.model.predict(xs) as tf.Tensor[];
      expect(logits!.shape).toEqual([3, classes]);
      expect(features!.shape).toEqual([3, a.hiddenUnits]);
      // features are the ReLU layer: non-negative
      expect(features!.min().arraySync()).toBeGreaterThanOrEqual(0);
      tf.dispose([xs, logits!, features!]);
      net.model.dispose();
    });
  }

  it("has the hand-counted number of parameters", () => {
    const mlp = buildNetwork(
      arch({ architecture: "mlp", depth: 2, width: 8, hiddenUnits: 6 }),
      [4, 4, 1],
      3,
      1,
    );
    expect(parameterCount(mlp)).toBe(16 * 8 + 8 + (8 * 8 + 8) + (8 * 6 + 6) + (6 * 3 + 3));
    const cnn = buildNetwork(arch({ depth: 2, width: 4, hiddenUnits: 6 }), [8, 8, 1], 3, 1);
    // conv 1->4, conv 4->8, 8x8 -> 2x2 after two pools: 2*2*8 = 32 inputs to the feature layer
    expect(parameterCount(cnn)).toBe(9 * 4 + 4 + (9 * 4 * 8 + 8) + (32 * 6 + 6) + (6 * 3 + 3));
  });

  it("initialises deterministically from the seed", () => {
    const weights = (seed: number) => {
      const net = buildNetwork(arch({}), [8, 8, 1], 5, seed);
      const values = net.model.getWeights().map((w) => Array.from(w.dataSync()));
      net.model.dispose();
      return values;
    };
    const a = weights(7);
    expect(weights(7)).toEqual(a);
    expect(weights(8)).not.toEqual(a);
    // layers differ from each other (per-layer seeds), and kernels are not all zero
    expect(a[0]!.some((v) => v !== 0)).toBe(true);
  });
});

describe("saveNetwork and loadTeacher", () => {
  let net: Network;
  let dir: string;
  let server: Server;
  let baseUrl: string;
  const xs = input([8, 8, 1], 3);

  beforeAll(async () => {
    net = buildNetwork(arch({ dropout: 0.3 }), [8, 8, 1], 5, 11, { name: "student" });
    dir = join(tempDir("mokd-model-"), "saved");
    await saveNetwork(net, dir);
    server = createServer((req, res) => {
      const file = join(dir, (req.url ?? "/").slice(1));
      if (!existsSync(file)) return res.writeHead(404).end();
      res.writeHead(200).end(readFileSync(file));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("writes model.json and weights.bin", () => {
    const json = JSON.parse(readFileSync(join(dir, "model.json"), "utf8"));
    expect(json.weightsManifest[0].paths).toEqual(["weights.bin"]);
    expect(readFileSync(join(dir, "weights.bin")).length).toBe(parameterCount(net) * 4);
  });

  it("round-trips from a directory and from a model.json path with identical outputs", async () => {
    const [logits, features] = outputs(net, xs);
    for (const path of [dir, join(dir, "model.json")]) {
      const teacher = await loadTeacher(path);
      expect([teacher.numClasses, teacher.featureDim]).toEqual([5, 16]);
      expect(teacher.model.trainable).toBe(false);
      const [l, f] = outputs(teacher, xs);
      expect(l).toEqual(logits);
      expect(f).toEqual(features);
    }
  });

  it("loads over http", async () => {
    const teacher = await loadTeacher(`${baseUrl}/model.json`);
    const [l, f] = outputs(teacher, xs);
    const [logits, features] = outputs(net, xs);
    expect(l).toEqual(logits);
    expect(f).toEqual(features);
  });

  it("takes a named feature layer", async () => {
    const teacher = await loadTeacher(dir, "student_conv2");
    // 8x8 -> conv1 -> pool -> 4x4 -> conv2 (8 channels): flattened 4*4*8
    expect(teacher.featureDim).toBe(128);
  });

  it("reports missing and malformed models as DataError naming the source", async () => {
    await expect(loadTeacher(join(dir, "nope"))).rejects.toThrow(DataError);
    await expect(loadTeacher(join(dir, "nope"))).rejects.toThrow(/nope/);
    await expect(loadTeacher(join(dir, "weights.bin"))).rejects.toThrow(
      /weights\.bin: not a tfjs LayersModel/,
    );
    await expect(loadTeacher(dir, "no_such_layer")).rejects.toThrow(/no layer named "no_such_layer"/);
    await expect(loadTeacher(`${baseUrl}/missing/model.json`)).rejects.toThrow(DataError);
  });
});

describe("teachers with a softmax output", () => {
  const xs = tf.randomNormal([4, 6], 0, 1, "float32", 5);

  async function roundTrip(model: tf.LayersModel, featureLayer?: string): Promise<Network> {
    const dir = tempDir("mokd-softmax-");
    await saveNetwork({ model, featureDim: 0, numClasses: 0 }, dir);
    return loadTeacher(dir, featureLayer);
  }

  it("takes logits before a Dense softmax and features from the layer before it", async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [6], units: 9, activation: "relu", name: "hidden" }),
        tf.layers.dense({ units: 4, activation: "softmax", name: "probs" }),
      ],
    });
    const teacher = await roundTrip(model);
    expect([teacher.numClasses, teacher.featureDim]).toEqual([4, 9]);
    const [logits, features] = teacher.model.predict(xs) as tf.Tensor[];
    const probs = model.predict(xs) as tf.Tensor;
    expect(Array.from(tf.softmax(logits!).dataSync())).toEqual(
      Array.from(probs.dataSync()).map((v) => expect.closeTo(v, 6)),
    );
    // logits are not already probabilities
    expect(Math.abs((logits!.sum().arraySync() as number) - 4)).toBeGreaterThan(1e-3);
    const hidden = tf.model({
      inputs: model.inputs,
      outputs: model.getLayer("hidden").output as tf.SymbolicTensor,
    });
    expect(features!.dataSync()).toEqual((hidden.predict(xs) as tf.Tensor).dataSync());
  });

  it("feeds a flattened-input teacher through a reshape, and rejects a size mismatch", async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [12], units: 5, activation: "relu" }),
        tf.layers.dense({ units: 3, activation: "softmax" }),
      ],
    });
    const dir = tempDir("mokd-flat-");
    await saveNetwork({ model, featureDim: 0, numClasses: 0 }, dir);
    const teacher = await loadTeacher(dir, undefined, [2, 2, 3]);
    const images = tf.randomNormal([4, 2, 2, 3], 0, 1, "float32", 8);
    const [logits] = teacher.model.predict(images) as tf.Tensor[];
    const probs = model.predict(images.reshape([4, 12])) as tf.Tensor;
    Array.from(tf.softmax(logits!).dataSync()).forEach((v, i) =>
      expect(v).toBeCloseTo(probs.dataSync()[i]!, 5),
    );
    await expect(loadTeacher(dir, undefined, [28, 28, 1])).rejects.toThrow(
      /expects input \[12\], the data is \[28, 28, 1\]/,
    );
  });

  it("takes logits before a separate softmax activation", async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [6], units: 9, activation: "relu", name: "h1" }),
        tf.layers.dense({ units: 3, name: "out" }),
        tf.layers.activation({ activation: "softmax" }),
      ],
    });
    const teacher = await roundTrip(model);
    expect([teacher.numClasses, teacher.featureDim]).toEqual([3, 9]);
    const [logits] = teacher.model.predict(xs) as tf.Tensor[];
    const out = tf.model({
      inputs: model.inputs,
      outputs: model.getLayer("out").output as tf.SymbolicTensor,
    });
    expect(logits!.dataSync()).toEqual((out.predict(xs) as tf.Tensor).dataSync());
  });
});
