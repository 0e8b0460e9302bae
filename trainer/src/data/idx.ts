// The IDX format of MNIST and Fashion-MNIST: a big-endian header (magic 0x00000803 for uint8 images [n, h, w],
// 0x00000801 for uint8 labels [n]) followed by the raw bytes.
import { locate, readMaybeGzip } from "./files.ts";
import { DataError } from "./errors.ts";
import type { RawSplit } from "./raw.ts";

const IMAGES_MAGIC = 0x00000803;
const LABELS_MAGIC = 0x00000801;

interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

/** Parses one IDX buffer, checking the magic and that the payload size matches the header. */
export function parseIdx(file: string, bytes: Uint8Array, magic: number): IdxArray {
  const rank = magic & 0xff;
  const headerSize = 4 + 4 * rank;
  if (bytes.length < 4)
    throw new DataError(file, `truncated: ${bytes.length} bytes, too short for an IDX header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found = view.getUint32(0, false);
  if (found !== magic) throw new DataError(file, `wrong magic ${hex(found)}, expected ${hex(magic)}`);
  if (bytes.length < headerSize) {
    throw new DataError(file, `truncated: ${bytes.length} bytes, shorter than the ${headerSize}-byte header`);
  }
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const expected = headerSize + dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== expected) {
    throw new DataError(
      file,
      `truncated or oversized: ${bytes.length} bytes but the header [${dims.join(", ")}] needs ${expected}`,
    );
  }
  return { dims, data: bytes.subarray(headerSize) };
}

/** Loads one IDX images+labels pair (e.g. prefix "train" or "t10k") from `dir`. */
export function loadIdxPair(dir: string, prefix: string): RawSplit {
  const imagesFile = locate(dir, `${prefix}-images-idx3-ubyte`);
  const labelsFile = locate(dir, `${prefix}-labels-idx1-ubyte`);
  const images = parseIdx(imagesFile, readMaybeGzip(imagesFile), IMAGES_MAGIC);
  const labels = parseIdx(labelsFile, readMaybeGzip(labelsFile), LABELS_MAGIC);
  const [count, height, width] = images.dims as [number, number, number];
  if (labels.dims[0] !== count) {
    throw new DataError(
      labelsFile,
      `count mismatch: ${labels.dims[0]} labels but ${imagesFile} has ${count} images`,
    );
  }
  return {
    images: images.data,
    labels: labels.data,
    count,
    shape: [height, width, 1],
    labelsFile,
  };
}
