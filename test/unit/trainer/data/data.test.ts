import { existsSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { DataSpec } from "../../../../api/v1alpha1/index.ts";
import type { Batch, Split } from "../../../../trainer/src/contracts.ts";
import { DataError, loadDataset, Random } from "../../../../trainer/src/data/index.ts";
import { copyAugmented, buildLookupTable } from "../../../../trainer/src/data/batches.ts";
import {
  cifarRecords,
  idxBytes,
  syntheticImages,
  syntheticLabels,
  tempDir,
  writeCifar10,
  writeCifar100,
  writeIdxDataset,
} from "../../../fixtures/dataset-files.ts";

const spec = (over: Record<string, unknown>) => DataSpec.parse(over);

function collect(split: Split, options: Partial<Parameters<Split["batches"]>[0]> = {}) {
  const out: { xs: Float32Array; ys: Int32Array; shape: number[] }[] = [];
  for (const b of split.batches({
    batchSize: 4,
    shuffle: false,
    seed: 1,
    epoch: 0,
    augment: false,
    ...options,
  })) {
    out.push({ xs: b.xs.dataSync() as Float32Array, ys: b.ys.dataSync() as Int32Array, shape: b.xs.shape });
    dispose(b);
  }
  return out;
}

const dispose = (b: Batch) => {
  b.xs.dispose();
  b.ys.dispose();
};
const labelsOf = (split: Split, options = {}) => collect(split, options).flatMap((b) => Array.from(b.ys));

async function expectDataError(promise: Promise<unknown>, file: string, problem: RegExp) {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataError);
  expect((err as DataError).message).toContain(file);
  expect((err as DataError).message).toMatch(problem);
}

describe("IDX reader", () => {
  for (const gzip of [false, true]) {
    it(`reads ${gzip ? "gzipped" : "raw"} images and labels`, async () => {
      const dir = writeIdxDataset(tempDir(), { train: 20, test: 6, side: 4, gzip });
      const ds = await loadDataset(spec({ path: dir, validationSplit: 0, normalization: "unit" }), 1);
      expect(ds.inputShape).toEqual([4, 4, 1]);
      expect(ds.numClasses).toBe(10);
      expect([ds.train.size, ds.validation.size, ds.test.size]).toEqual([20, 0, 6]);
      const [first] = collect(ds.test, { batchSize: 6 });
      expect(first!.shape).toEqual([6, 4, 4, 1]);
      expect(Array.from(first!.ys)).toEqual([0, 1, 2, 3, 4, 5]);
      // unit normalisation: pixel / 255, and the bytes are the synthetic pattern in order
      const expected = syntheticImages(6, 16);
      first!.xs.forEach((v, i) => expect(v).toBeCloseTo(expected[i]! / 255, 6));
    });
  }

  it("detects gzip by content, not by name", async () => {
    const dir = writeIdxDataset(tempDir(), { train: 10, test: 3 });
    const file = join(dir, "train-images-idx3-ubyte");
    writeFileSync(file, gzipSync(readFileSync(file)));
    const ds = await loadDataset(spec({ path: dir, validationSplit: 0 }), 1);
    expect(ds.train.size).toBe(10);
  });

  it("names a missing file", async () => {
    await expectDataError(
      loadDataset(spec({ path: tempDir() }), 1),
      "train-images-idx3-ubyte",
      /missing file/,
    );
  });

  it("names a file with the wrong magic", async () => {
    const dir = writeIdxDataset(tempDir(), { train: 10, test: 3 });
    const file = join(dir, "train-labels-idx1-ubyte");
    writeFileSync(file, idxBytes(0x803, [10], syntheticLabels(10, 10)));
    await expectDataError(
      loadDataset(spec({ path: dir }), 1),
      file,
      /wrong magic 0x00000803, expected 0x00000801/,
    );
  });

  it("names a truncated file", async () => {
    const dir = writeIdxDataset(tempDir(), { train: 10, test: 3 });
    const file = join(dir, "t10k-images-idx3-ubyte");
    truncateSync(file, 16 + 2 * 16 + 5);
    await expectDataError(loadDataset(spec({ path: dir }), 1), file, /truncated.*\[3, 4, 4\] needs 64/);
  });

  it("names a gzip file whose content is truncated", async () => {
    const dir = writeIdxDataset(tempDir(), { train: 10, test: 3, gzip: true });
    const file = join(dir, "train-images-idx3-ubyte.gz");
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 12));
    await expectDataError(loadDataset(spec({ path: dir }), 1), file, /gzip data is corrupt/);
  });

  it("names a corrupt gzip file", async () => {
    const dir = writeIdxDataset(tempDir(), { train: 10, test: 3, gzip: true });
    const file = join(dir, "t10k-labels-idx1-ubyte.gz");
    const bytes = readFileSync(file);
    bytes.fill(0x55, 12, bytes.length - 8);
    writeFileSync(file, bytes);
    await expectDataError(loadDataset(spec({ path: dir }), 1), file, /gzip data is corrupt/);
  });

  it("names the labels file when images and labels counts differ", async () => {
    const dir = writeIdxDataset(tempDir(), { train: 10, test: 3 });
    const file = join(dir, "train-labels-idx1-ubyte");
    writeFileSync(file, idxBytes(0x801, [9], syntheticLabels(9, 10)));
    await expectDataError(loadDataset(spec({ path: dir }), 1), file, /count mismatch: 9 labels.* 10 images/);
  });

  it("names the test labels file when a label is outside the training classes", async () => {
    const dir = writeIdxDataset(tempDir(), { train: 10, test: 3, classes: 5 });
    const file = join(dir, "t10k-labels-idx1-ubyte");
    writeFileSync(file, idxBytes(0x801, [3], Uint8Array.from([0, 7, 1])));
    await expectDataError(
      loadDataset(spec({ path: dir }), 1),
      file,
      /label out of range: sample 1 has label 7/,
    );
  });
});

describe("CIFAR reader", () => {
  it("reads CIFAR-10 batches (raw and gz) into NHWC", async () => {
    for (const gzip of [false, true]) {
      const dir = writeCifar10(join(tempDir(), "cifar-10-batches-bin"), 3, gzip);
      // the parent directory is accepted too
      const ds = await loadDataset(
        spec({ format: "cifar-10", path: join(dir, ".."), validationSplit: 0, normalization: "unit" }),
        1,
      );
      expect(ds.inputShape).toEqual([32, 32, 3]);
      expect(ds.numClasses).toBe(10);
      expect([ds.train.size, ds.test.size]).toEqual([15, 3]);
      const [b] = collect(ds.test, { batchSize: 3 });
      expect(b!.shape).toEqual([3, 32, 32, 3]);
      expect(Array.from(b!.ys)).toEqual([0, 1, 2]);
      // record 1, pixel (y=0, x=5): channel c = (1 + 10c + 5) / 255
      const at = (1 * 1024 + 5) * 3;
      expect([b!.xs[at], b!.xs[at + 1], b!.xs[at + 2]].map((v) => Math.round(v! * 255))).toEqual([6, 16, 26]);
    }
  });

  it("reads CIFAR-100 fine labels", async () => {
    const dir = writeCifar100(join(tempDir(), "cifar-100-binary"), 8);
    const ds = await loadDataset(spec({ format: "cifar-100", path: dir, validationSplit: 0 }), 1);
    expect(ds.numClasses).toBe(100);
    expect(labelsOf(ds.test)).toEqual([0, 7, 14, 21, 28, 35, 42, 49]);
  });

  it("names a truncated batch file", async () => {
    const dir = writeCifar10(tempDir(), 2);
    const file = join(dir, "data_batch_3.bin");
    truncateSync(file, 3073 * 2 - 1);
    await expectDataError(loadDataset(spec({ format: "cifar-10", path: dir }), 1), file, /truncated/);
  });

  it("names a batch file with a label out of range", async () => {
    const dir = writeCifar10(tempDir(), 2);
    const file = join(dir, "test_batch.bin");
    writeFileSync(
      file,
      cifarRecords(2, 1, (i) => [i === 1 ? 10 : 0]),
    );
    await expectDataError(
      loadDataset(spec({ format: "cifar-10", path: dir }), 1),
      file,
      /label out of range: record 1 has label 10/,
    );
  });

  it("names a missing batch file", async () => {
    const dir = tempDir();
    mkdirSync(dir, { recursive: true });
    await expectDataError(
      loadDataset(spec({ format: "cifar-100", path: dir }), 1),
      "train.bin",
      /missing file/,
    );
  });
});

describe("splits and batches", () => {
  const load = (over: Record<string, unknown> = {}, seed = 7) => {
    const dir = writeIdxDataset(tempDir(), { train: 100, test: 30, side: 4, classes: 10 });
    return loadDataset(spec({ path: dir, validationSplit: 0.2, normalization: "unit", ...over }), seed);
  };

  it("splits train/validation by seed, disjoint and covering, and caps sample counts", async () => {
    const a = await load();
    expect([a.train.size, a.validation.size, a.test.size]).toEqual([80, 20, 30]);
    // each synthetic image's first pixel identifies it: (i * 3) & 255 for i < 100 is unique
    const ids = (s: Split) =>
      collect(s).flatMap((b) =>
        Array.from({ length: b.ys.length }, (_, k) => Math.round(b.xs[k * 16]! * 255)),
      );
    const train = ids(a.train);
    const validation = ids(a.validation);
    expect(new Set([...train, ...validation]).size).toBe(100);
    expect(ids((await load()).validation)).toEqual(validation);
    expect(ids((await load({}, 8)).validation)).not.toEqual(validation);
    const capped = await load({ maxTrainSamples: 10, maxTestSamples: 5 });
    expect([capped.train.size, capped.validation.size, capped.test.size]).toEqual([10, 20, 5]);
  });

  it("shuffles deterministically per (seed, epoch), covers every sample, and resumes with skipBatches", async () => {
    const ds = await load();
    const order = (epoch: number, skipBatches?: number) =>
      labelsOf(ds.train, { shuffle: true, seed: 3, epoch, batchSize: 8, skipBatches });
    const e0 = order(0);
    expect(e0).toHaveLength(80);
    expect(order(0)).toEqual(e0);
    expect(order(1)).not.toEqual(e0);
    expect(order(0, 3)).toEqual(e0.slice(24));
    expect([...e0].sort()).toEqual([...labelsOf(ds.train)].sort());
  });

  it("tags each row with its sample's position in the split (shuffled or not, augmented or not)", async () => {
    const ds = await load({ augmentation: { horizontalFlip: true } });
    const inOrder = collect(ds.train, { batchSize: 80 })[0]!;
    const pixels = 16;
    const seen: number[] = [];
    for (const b of ds.train.batches({ batchSize: 8, shuffle: true, seed: 3, epoch: 1, augment: false })) {
      const xs = b.xs.dataSync();
      const ys = b.ys.dataSync();
      b.indices.forEach((index, row) => {
        expect(ys[row]).toBe(inOrder.ys[index]);
        expect(Array.from(xs.subarray(row * pixels, (row + 1) * pixels))).toEqual(
          Array.from(inOrder.xs.subarray(index * pixels, (index + 1) * pixels)),
        );
      });
      seen.push(...b.indices);
      dispose(b);
    }
    expect(seen.sort((x, y) => x - y)).toEqual(Array.from({ length: 80 }, (_, i) => i));
    expect(ds.train.augments).toBe(true);
    expect(ds.validation.augments).toBe(false);
    expect((await load()).train.augments).toBe(false);
  });

  it("yields a smaller last batch", async () => {
    const ds = await load();
    expect(collect(ds.validation, { batchSize: 8 }).map((b) => b.ys.length)).toEqual([8, 8, 4]);
  });

  it("augments training batches only, deterministically, keeping shapes", async () => {
    const ds = await load({ augmentation: { randomCropPadding: 2, horizontalFlip: true } });
    const opts = { shuffle: true, seed: 5, epoch: 2, augment: true, batchSize: 16 };
    const plain = collect(ds.train, { ...opts, augment: false });
    const augmented = collect(ds.train, opts);
    expect(augmented.map((b) => b.shape)).toEqual(plain.map((b) => b.shape));
    expect(augmented.map((b) => Array.from(b.ys))).toEqual(plain.map((b) => Array.from(b.ys)));
    expect(augmented[0]!.xs).not.toEqual(plain[0]!.xs);
    expect(collect(ds.train, opts)[1]!.xs).toEqual(augmented[1]!.xs);
    expect(collect(ds.train, { ...opts, skipBatches: 1 })[0]!.xs).toEqual(augmented[1]!.xs);
    // the validation split never augments
    const v = { ...opts, shuffle: false };
    expect(collect(ds.validation, v)[0]!.xs).toEqual(collect(ds.validation, { ...v, augment: false })[0]!.xs);
  });

  it("standardises with the training split's per-channel mean and std", async () => {
    const ds = await load({ normalization: "standardize" });
    const all = collect(ds.train, { batchSize: 80 })[0]!.xs;
    const mean = all.reduce((a, b) => a + b, 0) / all.length;
    const variance = all.reduce((a, b) => a + (b - mean) ** 2, 0) / all.length;
    expect(mean).toBeCloseTo(0, 5);
    expect(variance).toBeCloseTo(1, 4);
    expect(ds.normalization.kind).toBe("standardize");
  });

  it("computes per-channel statistics on CIFAR", async () => {
    const dir = writeCifar10(tempDir(), 4);
    const ds = await loadDataset(spec({ format: "cifar-10", path: dir, validationSplit: 0 }), 1);
    const [b] = collect(ds.train, { batchSize: 20 });
    for (let c = 0; c < 3; c++) {
      const values = b!.xs.filter((_, i) => i % 3 === c);
      const mean = values.reduce((a, v) => a + v, 0) / values.length;
      expect(mean).toBeCloseTo(0, 4);
    }
    // channel means differ by 10/255 per channel in the fixture
    expect(ds.normalization.mean[1]! - ds.normalization.mean[0]!).toBeCloseTo(10 / 255, 6);
  });

  it("leaks no tensors", async () => {
    const ds = await load();
    const before = tf.memory().numTensors;
    collect(ds.train, { shuffle: true, augment: true });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("augmentation kernel", () => {
  /** Straightforward reference: pad with 0, crop at (dy, dx), flip. */
  function reference(img: Uint8Array, side: number, ch: number, dy: number, dx: number, flip: boolean) {
    const out: number[] = [];
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++)
        for (let c = 0; c < ch; c++) {
          const sy = y + dy;
          const sx = (flip ? side - 1 - x : x) + dx;
          out.push(sy >= 0 && sy < side && sx >= 0 && sx < side ? img[(sy * side + sx) * ch + c]! : 0);
        }
    return out;
  }

  it("matches a reference crop+flip for many random draws", () => {
    for (const ch of [1, 3]) {
      const side = 5;
      const img = Uint8Array.from({ length: side * side * ch }, (_, i) => 1 + i);
      const lut = buildLookupTable(new Array(ch).fill(0), new Array(ch).fill(1), 1);
      for (let seed = 0; seed < 60; seed++) {
        const out = new Float32Array(img.length);
        const aug = { randomCropPadding: 3, horizontalFlip: true };
        copyAugmented(
          out,
          0,
          img,
          0,
          { height: side, width: side, channels: ch },
          lut,
          aug,
          new Random(seed),
        );
        const r = new Random(seed);
        const dy = r.int(7) - 3;
        const dx = r.int(7) - 3;
        const flip = r.next() < 0.5;
        expect(Array.from(out)).toEqual(reference(img, side, ch, dy, dx, flip));
      }
    }
  });
});

describe("Random", () => {
  it("is deterministic and resumes from its state", () => {
    const a = new Random(123);
    a.next();
    const resumed = Random.fromState(a.state());
    expect([a.next(), a.next()]).toEqual([resumed.next(), resumed.next()]);
    const values = Array.from({ length: 2000 }, () => new Random(9).next());
    expect(new Set(values).size).toBe(1);
    const r = new Random(9);
    const mean = Array.from({ length: 10000 }, () => r.next()).reduce((s, v) => s + v, 0) / 10000;
    expect(mean).toBeGreaterThan(0.48);
    expect(mean).toBeLessThan(0.52);
  });
});

const FASHION = "/usr/share/datasets/fashion-mnist";

describe.skipIf(!existsSync(FASHION))("real Fashion-MNIST", () => {
  it("loads 60k/10k with labels 0..9 and assembles a 64-image batch fast", async () => {
    const ds = await loadDataset(spec({ path: FASHION, validationSplit: 0 }), 42);
    expect([ds.train.size, ds.test.size, ds.numClasses]).toEqual([60000, 10000, 10]);
    expect(ds.inputShape).toEqual([28, 28, 1]);
    const counts = new Array(10).fill(0);
    for (const b of ds.test.batches({
      batchSize: 10000,
      shuffle: false,
      seed: 0,
      epoch: 0,
      augment: false,
    })) {
      for (const y of b.ys.dataSync()) counts[y]++;
      dispose(b);
    }
    expect(counts).toEqual(new Array(10).fill(1000));
    // Fashion-MNIST's pixel mean is ~0.286 and std ~0.353
    expect(ds.normalization.mean[0]).toBeCloseTo(0.286, 2);
    expect(ds.normalization.std[0]).toBeCloseTo(0.353, 2);

    // CPU time of this process (vitest runs each file in its own fork), not wall time: other work on a shared
    // machine does not count against it.
    const timed = (n: number) => {
      let i = 0;
      const start = process.cpuUsage();
      for (const b of ds.train.batches({ batchSize: 64, shuffle: true, seed: 1, epoch: 0, augment: false })) {
        dispose(b);
        if (++i === n) break;
      }
      const used = process.cpuUsage(start);
      return (used.user + used.system) / 1000 / n;
    };
    timed(100);
    // ms of CPU per batch; typical is ~0.2-0.5 ms
    expect(timed(300)).toBeLessThan(3);
  });
});
