// Batch assembly on the hot path: uint8 pixels -> normalised float32 through a per-channel lookup table, with
// optional random crop (zero padding in pixel space, as torchvision pads before normalising) and horizontal flip.
import type { Random } from "./random.ts";

export interface Augmentation {
  randomCropPadding: number;
  horizontalFlip: boolean;
}

export interface ImageGeometry {
  height: number;
  width: number;
  channels: number;
}

/** lut[c * 256 + v] = normalised value of pixel value v in channel c. */
export function buildLookupTable(mean: number[], std: number[], scale: number): Float32Array {
  const lut = new Float32Array(256 * mean.length);
  mean.forEach((m, c) => {
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v * scale - m) / std[c]!;
  });
  return lut;
}

/** Copies one image (starting at byte `src`) into `out` at float offset `dst`, normalised. */
export function copyImage(
  out: Float32Array,
  dst: number,
  images: Uint8Array,
  src: number,
  pixels: number,
  lut: Float32Array,
  channels: number,
): void {
  if (channels === 1) {
    for (let p = 0; p < pixels; p++) out[dst + p] = lut[images[src + p]!]!;
    return;
  }
  for (let p = 0; p < pixels; p += channels) {
    for (let c = 0; c < channels; c++) out[dst + p + c] = lut[c * 256 + images[src + p + c]!]!;
  }
}

/** As copyImage, through a random crop of the zero-padded image and a random left-right flip. */
export function copyAugmented(
  out: Float32Array,
  dst: number,
  images: Uint8Array,
  src: number,
  geometry: ImageGeometry,
  lut: Float32Array,
  augmentation: Augmentation,
  random: Random,
): void {
  const { height, width, channels } = geometry;
  const pad = augmentation.randomCropPadding;
  const dy = pad > 0 ? random.int(2 * pad + 1) - pad : 0;
  const dx = pad > 0 ? random.int(2 * pad + 1) - pad : 0;
  const flip = augmentation.horizontalFlip && random.next() < 0.5;
  const row = width * channels;
  // Output columns [x0, x1) read source columns inside the image; the rest is padding.
  const x0 = flip ? Math.max(0, dx) : Math.max(0, -dx);
  const x1 = flip ? Math.min(width, width + dx) : Math.min(width, width - dx);
  for (let y = 0; y < height; y++) {
    const o = dst + y * row;
    const sy = y + dy;
    if (sy < 0 || sy >= height || x1 <= x0) {
      fillPadding(out, o, width, lut, channels);
      continue;
    }
    fillPadding(out, o, x0, lut, channels);
    fillPadding(out, o + x1 * channels, width - x1, lut, channels);
    copyRow(out, o, images, src + sy * row, x0, x1, flip ? width - 1 + dx : dx, flip ? -1 : 1, lut, channels);
  }
}

function fillPadding(
  out: Float32Array,
  at: number,
  pixels: number,
  lut: Float32Array,
  channels: number,
): void {
  for (let p = 0; p < pixels; p++)
    for (let c = 0; c < channels; c++) out[at + p * channels + c] = lut[c * 256]!;
}

/** Output pixels [x0, x1) of a row <- source pixels start + step * x of the source row, through the table. */
function copyRow(
  out: Float32Array,
  o: number,
  images: Uint8Array,
  s: number,
  x0: number,
  x1: number,
  start: number,
  step: number,
  lut: Float32Array,
  channels: number,
): void {
  if (channels === 1) {
    for (let x = x0; x < x1; x++) out[o + x] = lut[images[s + start + step * x]!]!;
    return;
  }
  for (let x = x0; x < x1; x++) {
    const from = s + (start + step * x) * channels;
    for (let c = 0; c < channels; c++) out[o + x * channels + c] = lut[c * 256 + images[from + c]!]!;
  }
}
