// Writers of tiny real-format dataset files (IDX, CIFAR binary) for the data tests.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

export function tempDir(prefix = "mokd-data-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function idxBytes(magic: number, dims: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

/** Image i has every pixel equal to (i * 3 + pixel) mod 256; label i mod classes. */
export function syntheticImages(count: number, pixels: number): Uint8Array {
  return Uint8Array.from(
    { length: count * pixels },
    (_, k) => (Math.floor(k / pixels) * 3 + (k % pixels)) & 255,
  );
}

export function syntheticLabels(count: number, classes: number): Uint8Array {
  return Uint8Array.from({ length: count }, (_, i) => i % classes);
}

export interface IdxFixture {
  train: number;
  test: number;
  side?: number;
  classes?: number;
  gzip?: boolean;
}

/** Writes train-/t10k- images and labels; returns the directory. */
export function writeIdxDataset(dir: string, f: IdxFixture): string {
  const side = f.side ?? 4;
  const classes = f.classes ?? 10;
  mkdirSync(dir, { recursive: true });
  for (const [prefix, count] of [
    ["train", f.train],
    ["t10k", f.test],
  ] as const) {
    const write = (name: string, bytes: Buffer) =>
      writeFileSync(join(dir, f.gzip ? `${name}.gz` : name), f.gzip ? gzipSync(bytes) : bytes);
    write(
      `${prefix}-images-idx3-ubyte`,
      idxBytes(0x803, [count, side, side], syntheticImages(count, side * side)),
    );
    write(`${prefix}-labels-idx1-ubyte`, idxBytes(0x801, [count], syntheticLabels(count, classes)));
  }
  return dir;
}

/** One CIFAR record: label byte(s) then CHW planes where plane c holds value (base + c * 10) everywhere. */
export function cifarRecords(count: number, labelBytes: number, label: (i: number) => number[]): Buffer {
  const recordSize = labelBytes + 3072;
  const out = Buffer.alloc(count * recordSize);
  for (let i = 0; i < count; i++) {
    const base = i * recordSize;
    label(i).forEach((l, k) => (out[base + k] = l));
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 1024; p++) out[base + labelBytes + c * 1024 + p] = (i + c * 10 + (p % 32)) & 255;
    }
  }
  return out;
}

export function writeCifar10(dir: string, perBatch: number, gzip = false): string {
  mkdirSync(dir, { recursive: true });
  const names = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`).concat("test_batch.bin");
  for (const name of names) {
    const bytes = cifarRecords(perBatch, 1, (i) => [i % 10]);
    writeFileSync(join(dir, gzip ? `${name}.gz` : name), gzip ? gzipSync(bytes) : bytes);
  }
  return dir;
}

export function writeCifar100(dir: string, count: number): string {
  mkdirSync(dir, { recursive: true });
  for (const name of ["train.bin", "test.bin"]) {
    writeFileSync(
      join(dir, name),
      cifarRecords(count, 2, (i) => [i % 20, (i * 7) % 100]),
    );
  }
  return dir;
}
