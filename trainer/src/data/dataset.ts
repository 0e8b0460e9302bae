// loadDataset: reads a dataset from disk, splits it (seeded), and serves lazily built, normalised batches.
// Images stay uint8 in memory; each batch's float tensor is built on demand, so memory is bounded by one batch.
import { createHash } from "node:crypto";
import { basename } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { ConfigError, type DataSpec } from "../../../api/v1alpha1/index.ts";
import type { Batch, BatchOptions, Dataset, InputNormalization, Split } from "../contracts.ts";
import {
  buildLookupTable,
  copyAugmented,
  copyImage,
  type Augmentation,
  type ImageGeometry,
} from "./batches.ts";
import { CIFAR10, CIFAR100, loadCifar } from "./cifar.ts";
import { DataError } from "./errors.ts";
import { loadImageFolder } from "./folder.ts";
import { loadIdxPair } from "./idx.ts";
import { deriveSeed, permutation, Random } from "./random.ts";
import { checkLabels, maxLabel, type RawSplit } from "./raw.ts";

/** Per-channel statistics the batches are normalised with, in [0, 1] pixel units. */
export type Normalization = InputNormalization;

export interface LoadedDataset extends Dataset {
  readonly normalization: Normalization;
}

/** Stream tags, so the split, shuffle and augmentation draws never share a sequence. */
const SPLIT_STREAM = 0x5b117;
const SHUFFLE_STREAM = 0x5f1e;
const AUGMENT_STREAM = 0xa06;

class ArraySplit implements Split {
  private readonly images: Uint8Array;
  private readonly decode: RawSplit["decode"];
  private readonly labels: Uint8Array;
  private readonly indices: Int32Array;
  private readonly geometry: ImageGeometry;
  private readonly lut: Float32Array;
  private readonly augmentation: Augmentation;

  constructor(raw: RawSplit, indices: Int32Array, lut: Float32Array, augmentation: Augmentation) {
    this.images = raw.images;
    this.decode = raw.decode;
    this.labels = raw.labels;
    this.indices = indices;
    const [height, width, channels] = raw.shape;
    this.geometry = { height, width, channels };
    this.lut = lut;
    this.augmentation = augmentation;
  }

  get size(): number {
    return this.indices.length;
  }

  get augments(): boolean {
    return this.augmentation.randomCropPadding > 0 || this.augmentation.horizontalFlip;
  }

  /** ceil(size / batchSize) batches; the last one may be smaller. */
  *batches(options: BatchOptions): Iterable<Batch> {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new RangeError(`batchSize must be >= 1: ${batchSize}`);
    // Positions in the split; the shuffle permutes them exactly as it permuted the raw indices before.
    const all = options.shuffle ? this.shuffled(options.seed, options.epoch) : range(this.size);
    const order = options.range
      ? all.slice(options.range.start, options.range.start + options.range.count)
      : all;
    const count = Math.ceil(order.length / batchSize);
    const augmenting = options.augment && this.augments;
    for (let b = options.skipBatches ?? 0; b < count; b++) {
      // One generator per batch: a resumed run (skipBatches) draws exactly the augmentation it would have.
      const random = augmenting
        ? new Random(deriveSeed(options.seed, options.epoch, b, AUGMENT_STREAM))
        : null;
      yield this.assemble(order.slice(b * batchSize, Math.min(order.length, (b + 1) * batchSize)), random);
    }
  }

  /** Labels and pixels of every sample in split order (a lazily read split: its labels and file order only). */
  digest(): string {
    const hash = createHash("sha256");
    const { height, width, channels } = this.geometry;
    const pixels = height * width * channels;
    hash.update(`${this.size}:${height}x${width}x${channels}:`);
    for (const src of this.indices) {
      hash.update(this.labels.subarray(src, src + 1));
      if (!this.decode) hash.update(this.images.subarray(src * pixels, (src + 1) * pixels));
    }
    if (this.decode)
      hash.update(Buffer.from(this.indices.buffer, this.indices.byteOffset, this.indices.byteLength));
    return hash.digest("hex");
  }

  private shuffled(seed: number, epoch: number): Int32Array {
    return new Random(deriveSeed(seed, epoch, SHUFFLE_STREAM)).shuffle(range(this.size));
  }

  /** The batch of the split's samples at `positions` (kept by the batch as its `indices`). */
  private assemble(positions: Int32Array, random: Random | null): Batch {
    const { height, width, channels } = this.geometry;
    const pixels = height * width * channels;
    const n = positions.length;
    const xs = new Float32Array(n * pixels);
    const ys = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const src = this.indices[positions[i]!]!;
      ys[i] = this.labels[src]!;
      // A lazily read split decodes the image now (one image in memory at a time besides the batch).
      const [images, at] = this.decode ? [this.decode(src), 0] : [this.images, src * pixels];
      if (random) {
        copyAugmented(xs, i * pixels, images, at, this.geometry, this.lut, this.augmentation, random);
      } else {
        copyImage(xs, i * pixels, images, at, pixels, this.lut, channels);
      }
    }
    return {
      xs: tf.tensor4d(xs, [n, height, width, channels], "float32"),
      ys: tf.tensor1d(ys, "int32"),
      indices: positions,
    };
  }
}

function readRaw(spec: DataSpec): { train: RawSplit; test: RawSplit; numClasses: number } {
  if (spec.format === "idx") {
    const train = loadIdxPair(spec.path, "train");
    const test = loadIdxPair(spec.path, "t10k");
    if (train.count === 0) throw new DataError(train.labelsFile, "no samples");
    if (test.shape.join("x") !== train.shape.join("x")) {
      throw new DataError(
        test.labelsFile,
        `image size ${test.shape.join("x")} differs from train ${train.shape.join("x")}`,
      );
    }
    // IDX has no class count: the training labels define it, and the test labels must fall inside it.
    const numClasses = maxLabel(train) + 1;
    checkLabels(test, numClasses);
    return { train, test, numClasses };
  }
  if (spec.format === "image-folder") return loadImageFolder(spec.path, imageSize(spec));
  const layout = spec.format === "cifar-10" ? CIFAR10 : CIFAR100;
  return { ...loadCifar(spec.path, layout), numClasses: layout.numClasses };
}

/** Images of a lazily read split the standardisation statistics are estimated from (evenly spaced). */
export const LAZY_STATISTICS_SAMPLES = 2000;

/**
 * Per-channel mean and std (in [0, 1] units) over the given samples; a lazily read split estimates them from
 * LAZY_STATISTICS_SAMPLES of them (decoding every image of a large folder at start would defeat lazy reading).
 */
export function channelStatistics(raw: RawSplit, indices: Int32Array): { mean: number[]; std: number[] } {
  const channels = raw.shape[2];
  const pixels = raw.shape[0] * raw.shape[1] * channels;
  const sum = new Float64Array(channels);
  const sumSq = new Float64Array(channels);
  const sampled = raw.decode ? evenlySpaced(indices, LAZY_STATISTICS_SAMPLES) : indices;
  for (const index of sampled) {
    const [images, base] = raw.decode ? [raw.decode(index), 0] : [raw.images, index * pixels];
    for (let p = 0; p < pixels; p += channels) {
      for (let c = 0; c < channels; c++) {
        const v = images[base + p + c]!;
        sum[c]! += v;
        sumSq[c]! += v * v;
      }
    }
  }
  const n = Math.max(1, (sampled.length * pixels) / channels);
  const mean = Array.from(sum, (s) => s / n);
  const std = mean.map((m, c) => Math.sqrt(Math.max(0, sumSq[c]! / n - m * m)));
  return { mean: mean.map((m) => m / 255), std: std.map((s) => (s > 0 ? s / 255 : 1)) };
}

function evenlySpaced(indices: Int32Array, max: number): Int32Array {
  if (indices.length <= max) return indices;
  return Int32Array.from({ length: max }, (_, i) => indices[Math.floor((i * indices.length) / max)]!);
}

/** data.imageSize of an image folder (the schema requires it or a model to take it from; see resolveImageSize). */
function imageSize(spec: DataSpec): [number, number, number] {
  const size = spec.imageSize;
  if (!size)
    throw new ConfigError([
      { field: "spec.data.imageSize", message: "image-folder data needs an image size" },
    ]);
  return [size.height, size.width, size.channels];
}

function normalization(spec: DataSpec, raw: RawSplit, trainIndices: Int32Array): Normalization {
  if (spec.normalization === "unit") {
    const channels = raw.shape[2];
    return { kind: "unit", mean: new Array(channels).fill(0), std: new Array(channels).fill(1) };
  }
  return { kind: "standardize", ...channelStatistics(raw, trainIndices) };
}

const range = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

/**
 * Loads `spec.path` in `spec.format`. The validation split is a random subset of the training files (seeded by
 * `spec.splitSeed`, or `splitSeed` when given);
 * maxTrainSamples applies after it, maxTestSamples takes the first test samples. Throws DataError (naming the
 * file) on missing, truncated or malformed files.
 */
export async function loadDataset(spec: DataSpec, splitSeed = spec.splitSeed): Promise<LoadedDataset> {
  const { train, test, numClasses } = readRaw(spec);
  // Seeded by data.splitSeed alone: every training seed (and the teacher) sees the same validation images.
  const order = permutation(train.count, new Random(deriveSeed(splitSeed, SPLIT_STREAM)));
  const validationCount = Math.round(train.count * spec.validationSplit);
  const validationIndices = order.slice(0, validationCount);
  let trainIndices = order.slice(validationCount);
  if (spec.maxTrainSamples !== undefined) trainIndices = trainIndices.slice(0, spec.maxTrainSamples);
  const testIndices = range(Math.min(test.count, spec.maxTestSamples ?? test.count));

  const norm = normalization(spec, train, trainIndices);
  const lut = buildLookupTable(norm.mean, norm.std, 1 / 255);
  const none: Augmentation = { randomCropPadding: 0, horizontalFlip: false };
  return {
    name: basename(spec.path) || spec.format,
    inputShape: train.shape,
    numClasses,
    normalization: norm,
    train: new ArraySplit(train, trainIndices, lut, spec.augmentation),
    validation: new ArraySplit(train, validationIndices, lut, none),
    test: new ArraySplit(test, testIndices, lut, none),
  };
}
