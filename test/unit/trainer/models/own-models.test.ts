// Your own models and data: the built-in ResNet, a student from a model's topology with fresh
// seeded weights, image folders (PNG and JPEG, decoded lazily, resized), and the exit codes of their failures.
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import { DataError, loadDataset } from "../../../../trainer/src/data/index.ts";
import { runJob } from "../../../../trainer/src/engine/run.ts";
import {
  buildNetwork,
  loadStudentTopology,
  parameterCount,
  saveNetwork,
} from "../../../../trainer/src/models/index.ts";
import { tempDir } from "../../../fixtures/dataset-files.ts";
import { writeJob } from "../../../fixtures/tiny-run.ts";

const quiet = { info: () => {}, warn: () => {} };

beforeAll(async () => {
  await selectBackend("cpu", () => {});
});

const resnet = (depth: number, width = 16) => ({
  architecture: "resnet" as const,
  width,
  depth,
  hiddenUnits: 32,
  dropout: 0,
});

describe("built-in resnet", () => {
  it("is ResNet-8 at depth 1 for 32x32x3 (CIFAR-10/100): [logits, features] of the right shapes", () => {
    for (const classes of [10, 100]) {
      const net = buildNetwork(resnet(1), [32, 32, 3], classes, 1);
      const out = net.model.predict(tf.zeros([2, 32, 32, 3])) as tf.Tensor[];
      expect(out.map((t) => t.shape)).toEqual([
        [2, classes],
        [2, 32],
      ]);
      // 7 convolutions + the dense head (+ 2 projection shortcuts); 3x3 kernels without bias.
      const convs = net.model.layers.filter((l) => l.getClassName() === "Conv2D").length;
      expect(convs).toBe(9);
      tf.dispose(out);
      net.model.dispose();
    }
  });

  it("updates its batch normalisation statistics in training steps and is seeded", () => {
    const a = buildNetwork(resnet(1, 4), [8, 8, 3], 4, 7);
    const b = buildNetwork(resnet(1, 4), [8, 8, 3], 4, 7);
    expect(a.model.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(
      b.model.getWeights().map((w) => Array.from(w.dataSync())),
    );
    const movingMean = () =>
      Array.from(
        a.model.weights
          .find((w) => w.name.includes("moving_mean"))!
          .read()
          .dataSync(),
      );
    const before = movingMean();
    tf.tidy(() => {
      a.model.apply(tf.randomNormal([4, 8, 8, 3], 1, 1, "float32", 3), { training: true });
    });
    expect(movingMean()).not.toEqual(before);
    expect(parameterCount(a)).toBeGreaterThan(0);
    [a, b].forEach((n) => n.model.dispose());
  });
});

describe("student from a model's topology", () => {
  it("takes the layers, not the weights; fresh weights are seeded by training.seed", async () => {
    const dir = tempDir();
    const arch = { architecture: "cnn" as const, width: 2, depth: 1, hiddenUnits: 8, dropout: 0 };
    const saved = buildNetwork(arch, [8, 8, 1], 4, 99, { name: "mine" });
    await saveNetwork(saved, dir);
    const options = { seed: 5, inputShape: [8, 8, 1] as [number, number, number], numClasses: 4 };
    const [one, two, other] = await Promise.all([
      loadStudentTopology(dir, options),
      loadStudentTopology(dir, options),
      loadStudentTopology(dir, { ...options, seed: 6 }),
    ]);
    const weights = (n: typeof saved) => n.model.getWeights().map((w) => Array.from(w.dataSync()));
    expect(one.model.trainable).toBe(true);
    expect(parameterCount(one)).toBe(parameterCount(saved));
    expect(weights(one)).toEqual(weights(two));
    expect(weights(one)).not.toEqual(weights(other));
    expect(weights(one)[0]).not.toEqual(weights(saved)[0]);

    // The same topology over http(s): a URL of the model.json.
    const server = createServer((_, res) => res.end(readFileSync(join(dir, "model.json"))));
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.json`;
    const fromUrl = await loadStudentTopology(url, options).finally(() => server.close());
    expect(weights(fromUrl)).toEqual(weights(one));

    const named = await loadStudentTopology(dir, { ...options, featureLayer: "mine_flatten" });
    expect(named.featureDim).toBe(4 * 4 * 2);
    await expect(loadStudentTopology(dir, { ...options, featureLayer: "nope" })).rejects.toThrow(
      /no layer named "nope"/,
    );
    await expect(loadStudentTopology(dir, { ...options, numClasses: 10 })).rejects.toBeInstanceOf(DataError);
    await expect(loadStudentTopology(dir, { ...options, inputShape: [9, 9, 1] })).rejects.toThrow(
      /expects input \[8, 8, 1\]/,
    );
  });
});

/** An image folder of 2 classes (dark vs bright), PNG in train, JPEG in test, images of 12x10 RGB. */
function writeFolder(): string {
  const root = tempDir("mokd-folder-");
  const image = (value: number, width = 12, height = 10) => {
    const data = Buffer.alloc(width * height * 4, value);
    for (let i = 3; i < data.length; i += 4) data[i] = 255;
    return { data, width, height };
  };
  for (const [split, count] of [
    ["train", 12],
    ["test", 4],
  ] as const) {
    for (const [label, value] of [
      ["bright", 220],
      ["dark", 30],
    ] as const) {
      const dir = join(root, split, label);
      mkdirSync(dir, { recursive: true });
      for (let i = 0; i < count; i++) {
        const img = image(value + i);
        if (split === "train") {
          const png = new PNG({ width: img.width, height: img.height });
          img.data.copy(png.data);
          writeFileSync(join(dir, `${i}.png`), PNG.sync.write(png));
        } else {
          writeFileSync(join(dir, `${i}.jpg`), jpeg.encode(img, 95).data);
        }
      }
    }
  }
  return root;
}

const folderSpec = (path: string, over: Record<string, unknown> = {}) =>
  parseConfig(
    {
      data: {
        format: "image-folder",
        path,
        validationSplit: 0.25,
        imageSize: { height: 8, width: 8, channels: 3 },
        ...over,
      },
    },
    "t",
    {},
  ).spec.data;

describe("image-folder data", () => {
  it("reads PNG and JPEG per class folder, resized, labels by sorted class name", async () => {
    const ds = await loadDataset(folderSpec(writeFolder(), { normalization: "unit" }));
    expect(ds.inputShape).toEqual([8, 8, 3]);
    expect(ds.numClasses).toBe(2);
    expect([ds.train.size, ds.validation.size, ds.test.size]).toEqual([18, 6, 8]);
    const [batch] = ds.test.batches({ batchSize: 8, shuffle: false, seed: 0, epoch: 0, augment: false });
    expect(batch!.xs.shape).toEqual([8, 8, 8, 3]);
    // "bright" sorts first (label 0); JPEG is lossy: compare to the written value loosely.
    expect(Array.from(batch!.ys.dataSync())).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    const first = batch!.xs.dataSync()[0]!;
    expect(first).toBeGreaterThan(200 / 255);
    tf.dispose([batch!.xs, batch!.ys]);
  });

  it("decodes lazily: a corrupt image fails when its batch is built, naming the file", async () => {
    const root = writeFolder();
    const bad = join(root, "test", "dark", "1.jpg");
    writeFileSync(bad, Buffer.from([0xff, 0xd8, 1, 2, 3]));
    const ds = await loadDataset(folderSpec(root));
    const read = () => {
      for (const b of ds.test.batches({ batchSize: 8, shuffle: false, seed: 0, epoch: 0, augment: false }))
        tf.dispose([b.xs, b.ys]);
    };
    expect(read).toThrow(DataError);
    expect(read).toThrow(bad);
  });

  it("refuses test class folders that differ from train's, naming the folder", async () => {
    const root = writeFolder();
    mkdirSync(join(root, "test", "extra"));
    writeFileSync(join(root, "test", "extra", "x.png"), Buffer.alloc(0));
    await expect(loadDataset(folderSpec(root))).rejects.toThrow(`${join(root, "test")}: class folders`);
  });

  it("trains a resnet student end to end from a folder", async () => {
    const out = tempDir("mokd-folder-run-");
    const config = parseConfig(
      {
        data: {
          format: "image-folder",
          path: writeFolder(),
          imageSize: { height: 8, width: 8, channels: 3 },
        },
        teacher: { architecture: "mlp", width: 8, depth: 1, hiddenUnits: 8, epochs: 1 },
        student: resnet(1, 2),
        training: { epochs: 1, batchSize: 8 },
        output: { path: join(out, "o"), checkpointPath: join(out, "c") },
        metrics: { port: 0 },
      },
      "t",
      {},
    );
    const { summary } = await runJob({ config, backend: "cpu", log: quiet });
    expect(summary.steps).toBe(3);
    expect(summary.student.accuracy).toBeGreaterThanOrEqual(0);
  });
});

function cli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["trainer/src/cli.ts", ...args], {
      env: { ...process.env, MOKD_BACKEND: "cpu" },
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

describe("exit codes of own models and data", () => {
  it("2 naming the field for an image folder without a size, 3 naming the file for a model that does not fit", async () => {
    const dir = tempDir("mokd-cli-own-");
    const folder = writeFolder();
    const base = {
      data: { format: "image-folder", path: folder, imageSize: { height: 8, width: 8, channels: 3 } },
      output: { path: join(dir, "o"), checkpointPath: join(dir, "c") },
      metrics: { port: 0 },
      teacher: { architecture: "mlp", width: 4, depth: 1, hiddenUnits: 4, epochs: 1 },
      training: { epochs: 1 },
    };
    // `validate` and `run` take a whole manifest, as kubectl apply does.
    const manifest = (spec: object) => ({
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationJob",
      metadata: { name: "own" },
      spec,
    });
    const noSize = await cli([
      "validate",
      writeJob(dir, manifest({ ...base, data: { format: "image-folder" } }), "a.yaml"),
    ]);
    expect(noSize.code).toBe(ExitCode.BadConfig);
    expect(noSize.stderr).toContain("spec.data.imageSize");

    const model = tempDir("mokd-model-");
    await saveNetwork(buildNetwork(resnet(1, 2), [8, 8, 3], 5, 1), model);
    const wrong = await cli([
      "run",
      writeJob(dir, manifest({ ...base, student: { model } }), "b.yaml"),
      "--no-progress",
    ]);
    expect(wrong.code).toBe(ExitCode.BadData);
    expect(wrong.stderr).toContain(`${model}: the student has 5 outputs, the data 2 classes`);
  });
});
