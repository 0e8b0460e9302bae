// Decoded split before normalisation: uint8 NHWC pixels and uint8 labels, as read from disk (or decoded per
// image when a batch needs it).

export interface RawSplit {
  /** count * h * w * c bytes, NHWC. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  /** [height, width, channels] */
  shape: [number, number, number];
  /** For error messages about labels. */
  labelsFile: string;
  /**
   * Lazily read splits (image folders): `images` is empty and each image is decoded when a batch needs it, as
   * h * w * c bytes, NHWC.
   */
  decode?: (index: number) => Uint8Array;
}

/** The largest label of the split. */
export function maxLabel(split: RawSplit): number {
  let max = 0;
  for (let i = 0; i < split.labels.length; i++) if (split.labels[i]! > max) max = split.labels[i]!;
  return max;
}

import { DataError } from "./errors.ts";

/** Raises, naming the labels file, when a label is not below numClasses. */
export function checkLabels(split: RawSplit, numClasses: number): void {
  for (let i = 0; i < split.labels.length; i++) {
    const label = split.labels[i]!;
    if (label >= numClasses) {
      throw new DataError(
        split.labelsFile,
        `label out of range: sample ${i} has label ${label}, classes are 0..${numClasses - 1}`,
      );
    }
  }
}
