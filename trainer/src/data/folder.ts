// Image folders: `dir`/train/<class>/* and `dir`/test/<class>/*, one sub-folder per class (sorted by name: the
// class index), PNG or JPEG files (pngjs, jpeg-js: pure-JS decoders, no native build). Only the file list and
// labels are read at start; an image is decoded, converted to the channels asked and resized (bilinear) when a
// batch needs it, so a large folder on a volume costs memory for one batch.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { DataError } from "./errors.ts";
import type { RawSplit } from "./raw.ts";

const IMAGE_FILE = /\.(png|jpe?g)$/i;
/** Labels are bytes. */
const MAX_CLASSES = 256;

interface Listing {
  classes: string[];
  files: string[];
  labels: Uint8Array;
}

function subdirectories(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    throw new DataError(dir, `cannot read the image folder: ${(error as Error).message}`);
  }
  return names.filter((n) => statSync(join(dir, n)).isDirectory()).sort();
}

function list(dir: string, classes?: string[]): Listing {
  const found = subdirectories(dir);
  if (found.length === 0) throw new DataError(dir, "no class sub-folders (expected one folder per class)");
  if (found.length > MAX_CLASSES) throw new DataError(dir, `${found.length} classes; at most ${MAX_CLASSES}`);
  if (classes && found.join("/") !== classes.join("/")) {
    throw new DataError(
      dir,
      `class folders [${found.join(", ")}] differ from train's [${classes.join(", ")}]`,
    );
  }
  const files: string[] = [];
  const labels: number[] = [];
  found.forEach((name, label) => {
    const images = readdirSync(join(dir, name))
      .filter((f) => IMAGE_FILE.test(f))
      .sort();
    if (images.length === 0)
      throw new DataError(join(dir, name), "no .png/.jpg/.jpeg images in this class folder");
    for (const f of images) {
      files.push(join(dir, name, f));
      labels.push(label);
    }
  });
  return { classes: found, files, labels: Uint8Array.from(labels) };
}

/** RGBA pixels of a PNG or JPEG file (by content, not by name). */
function decodeRgba(file: string): { data: Uint8Array; width: number; height: number } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new DataError(file, `cannot read: ${(error as Error).message}`);
  }
  try {
    if (bytes[0] === 0x89 && bytes[1] === 0x50) {
      const png = PNG.sync.read(bytes);
      return { data: png.data, width: png.width, height: png.height };
    }
    if (bytes[0] === 0xff && bytes[1] === 0xd8) {
      const image = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 256 });
      return { data: image.data, width: image.width, height: image.height };
    }
  } catch (error) {
    throw new DataError(file, `cannot decode the image: ${(error as Error).message}`);
  }
  throw new DataError(file, "not a PNG or JPEG image");
}

/** Bilinear resize of RGBA to [height, width, channels] (1: luminance, 3: RGB), uint8. */
export function resizeRgba(
  src: { data: Uint8Array; width: number; height: number },
  [height, width, channels]: [number, number, number],
): Uint8Array {
  const out = new Uint8Array(height * width * channels);
  const sy = src.height / height;
  const sx = src.width / width;
  const at = (x: number, y: number, c: number) => src.data[(y * src.width + x) * 4 + c]!;
  for (let y = 0; y < height; y++) {
    // Pixel centres map onto pixel centres (align_corners false, as tf.image.resizeBilinear with halfPixel).
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), src.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, src.height - 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), src.width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, src.width - 1);
      const wx = fx - x0;
      const rgb = [0, 1, 2].map(
        (c) =>
          (1 - wy) * ((1 - wx) * at(x0, y0, c) + wx * at(x1, y0, c)) +
          wy * ((1 - wx) * at(x0, y1, c) + wx * at(x1, y1, c)),
      );
      const o = (y * width + x) * channels;
      if (channels === 1) out[o] = Math.round(0.299 * rgb[0]! + 0.587 * rgb[1]! + 0.114 * rgb[2]!);
      else rgb.forEach((v, c) => (out[o + c] = Math.round(v)));
    }
  }
  return out;
}

function lazySplit(listing: Listing, shape: [number, number, number], dir: string): RawSplit {
  return {
    images: new Uint8Array(0),
    labels: listing.labels,
    count: listing.files.length,
    shape,
    labelsFile: dir,
    decode: (index) => resizeRgba(decodeRgba(listing.files[index]!), shape),
  };
}

/** The train and test splits of an image folder, decoded lazily to `shape` ([height, width, channels]). */
export function loadImageFolder(
  dir: string,
  shape: [number, number, number],
): { train: RawSplit; test: RawSplit; numClasses: number; classes: string[] } {
  const train = list(join(dir, "train"));
  const test = list(join(dir, "test"), train.classes);
  return {
    train: lazySplit(train, shape, join(dir, "train")),
    test: lazySplit(test, shape, join(dir, "test")),
    numClasses: train.classes.length,
    classes: train.classes,
  };
}
