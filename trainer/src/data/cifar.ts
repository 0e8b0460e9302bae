// The CIFAR binary batch format: records of label byte(s) + 3072 bytes of 32x32 pixels, channel-major (CHW:
// 1024 red, 1024 green, 1024 blue). CIFAR-10: data_batch_1..5.bin + test_batch.bin, one label byte.
// CIFAR-100: train.bin + test.bin, coarse then fine label byte (we use fine). Decoded to NHWC.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DataError } from "./errors.ts";
import { locate, readMaybeGzip } from "./files.ts";
import type { RawSplit } from "./raw.ts";

const SIDE = 32;
const CHANNELS = 3;
const PLANE = SIDE * SIDE;
const PIXELS = PLANE * CHANNELS;

export interface CifarLayout {
  subdir: string;
  trainFiles: string[];
  testFiles: string[];
  labelBytes: number;
  /** Which label byte is the class (CIFAR-100: 1 = fine). */
  labelOffset: number;
  numClasses: number;
}

export const CIFAR10: CifarLayout = {
  subdir: "cifar-10-batches-bin",
  trainFiles: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
  testFiles: ["test_batch.bin"],
  labelBytes: 1,
  labelOffset: 0,
  numClasses: 10,
};

export const CIFAR100: CifarLayout = {
  subdir: "cifar-100-binary",
  trainFiles: ["train.bin"],
  testFiles: ["test.bin"],
  labelBytes: 2,
  labelOffset: 1,
  numClasses: 100,
};

/** `dir` itself, or its standard extracted sub-directory when the files are there. */
function cifarDir(dir: string, layout: CifarLayout): string {
  const nested = join(dir, layout.subdir);
  return existsSync(join(dir, layout.testFiles[0]!)) || !existsSync(nested) ? dir : nested;
}

function decodeFile(file: string, layout: CifarLayout): { images: Uint8Array; labels: Uint8Array } {
  const bytes = readMaybeGzip(file);
  const recordSize = layout.labelBytes + PIXELS;
  if (bytes.length === 0 || bytes.length % recordSize !== 0) {
    throw new DataError(
      file,
      `truncated: ${bytes.length} bytes is not a whole number of ${recordSize}-byte records`,
    );
  }
  const count = bytes.length / recordSize;
  const images = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  for (let r = 0; r < count; r++) {
    const base = r * recordSize;
    const label = bytes[base + layout.labelOffset]!;
    if (label >= layout.numClasses) {
      throw new DataError(
        file,
        `label out of range: record ${r} has label ${label}, classes are 0..${layout.numClasses - 1}`,
      );
    }
    labels[r] = label;
    chwToHwc(bytes, base + layout.labelBytes, images, r * PIXELS);
  }
  return { images, labels };
}

function chwToHwc(src: Uint8Array, from: number, dst: Uint8Array, to: number): void {
  for (let p = 0; p < PLANE; p++) {
    const o = to + p * CHANNELS;
    dst[o] = src[from + p]!;
    dst[o + 1] = src[from + PLANE + p]!;
    dst[o + 2] = src[from + 2 * PLANE + p]!;
  }
}

function loadFiles(dir: string, names: string[], layout: CifarLayout): RawSplit {
  const parts = names.map((name) => {
    const file = locate(dir, name);
    return { file, ...decodeFile(file, layout) };
  });
  const count = parts.reduce((n, p) => n + p.labels.length, 0);
  const images = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  let offset = 0;
  for (const p of parts) {
    images.set(p.images, offset * PIXELS);
    labels.set(p.labels, offset);
    offset += p.labels.length;
  }
  return {
    images,
    labels,
    count,
    shape: [SIDE, SIDE, CHANNELS],
    labelsFile: parts.map((p) => p.file).join(", "),
  };
}

export function loadCifar(dir: string, layout: CifarLayout): { train: RawSplit; test: RawSplit } {
  const root = cifarDir(dir, layout);
  return {
    train: loadFiles(root, layout.trainFiles, layout),
    test: loadFiles(root, layout.testFiles, layout),
  };
}
