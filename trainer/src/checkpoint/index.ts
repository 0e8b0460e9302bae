// Checkpoints: atomic directories (written under a temp name, then renamed) holding groups of tensors (student,
// projector, optimiser slots) and a JSON state, with a manifest of sha256 sums written last. A start resumes from
// the newest checkpoint whose manifest verifies; a corrupt one is reported and skipped.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";

export const MANIFEST_FILE = "manifest.json";
const STATE_FILE = "state.json";
const PREFIX = "ckpt-";
const TMP_PREFIX = ".tmp-";
const FORMAT_VERSION = 1;

export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

export interface Checkpoint<S> {
  /** Directory of the checkpoint. */
  path: string;
  state: S;
  /** Tensor groups by name (e.g. student, projector, optimizer). The caller disposes the tensors. */
  groups: Record<string, NamedTensor[]>;
}

interface TensorEntry {
  name: string;
  shape: number[];
  dtype: tf.DataType;
  /** Byte offset in the group's .bin file. */
  offset: number;
  bytes: number;
}

interface Manifest {
  version: number;
  step: number;
  createdAt: string;
  groups: string[];
  /** sha256 of every other file in the directory. */
  files: Record<string, string>;
}

type Logger = (message: string) => void;

const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");
const checkpointName = (step: number) => `${PREFIX}${String(step).padStart(10, "0")}`;

function encodeGroup(tensors: NamedTensor[]): { index: TensorEntry[]; bin: Buffer } {
  const chunks: Buffer[] = [];
  const index: TensorEntry[] = [];
  let offset = 0;
  for (const { name, tensor } of tensors) {
    const values = tensor.dataSync();
    if (!(values instanceof Float32Array || values instanceof Int32Array)) {
      throw new Error(`checkpoint: tensor ${name} has unsupported dtype ${tensor.dtype}`);
    }
    const chunk = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    index.push({ name, shape: tensor.shape, dtype: tensor.dtype, offset, bytes: chunk.byteLength });
    chunks.push(chunk);
    offset += chunk.byteLength;
  }
  return { index, bin: Buffer.concat(chunks) };
}

function decodeGroup(index: TensorEntry[], bin: Buffer): NamedTensor[] {
  return index.map((e) => {
    // Copy: the slice of a Buffer may be unaligned for a typed array view.
    const bytes = new Uint8Array(bin.subarray(e.offset, e.offset + e.bytes)).buffer;
    const values = e.dtype === "int32" ? new Int32Array(bytes) : new Float32Array(bytes);
    return { name: e.name, tensor: tf.tensor(values, e.shape, e.dtype) };
  });
}

/** Writes a checkpoint for `step` atomically, then keeps only the newest `keep`. Returns its directory. */
export function saveCheckpoint<S>(
  dir: string,
  step: number,
  state: S,
  groups: Record<string, NamedTensor[]>,
  keep: number,
): string {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `${TMP_PREFIX}${checkpointName(step)}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const files: Record<string, string> = {};
  const put = (file: string, data: Buffer | string) => {
    writeFileSync(join(tmp, file), data);
    files[file] = sha256(data);
  };
  for (const [group, tensors] of Object.entries(groups)) {
    const { index, bin } = encodeGroup(tensors);
    put(`${group}.bin`, bin);
    put(`${group}.json`, JSON.stringify(index));
  }
  put(STATE_FILE, JSON.stringify(state));
  const manifest: Manifest = {
    version: FORMAT_VERSION,
    step,
    createdAt: new Date().toISOString(),
    groups: Object.keys(groups),
    files,
  };
  // The manifest last: a directory without a verifying manifest is never used.
  writeFileSync(join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
  const final = join(dir, checkpointName(step));
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  pruneCheckpoints(dir, keep);
  return final;
}

/** Checkpoint directories, newest (highest step) first. */
export function listCheckpoints(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => n.startsWith(PREFIX))
    .sort()
    .reverse()
    .map((n) => join(dir, n));
}

/** Removes every checkpoint in `dir` (those of a different spec: they cannot be resumed). */
export function removeCheckpoints(dir: string): void {
  for (const path of listCheckpoints(dir)) rmSync(path, { recursive: true, force: true });
}

function pruneCheckpoints(dir: string, keep: number): void {
  for (const stale of listCheckpoints(dir).slice(keep)) rmSync(stale, { recursive: true, force: true });
  for (const n of readdirSync(dir)) {
    if (n.startsWith(TMP_PREFIX)) rmSync(join(dir, n), { recursive: true, force: true });
  }
}

/** Reads and verifies one checkpoint; throws with the reason when it is incomplete or corrupt. */
export function readCheckpoint<S>(path: string): Checkpoint<S> {
  const manifestPath = join(path, MANIFEST_FILE);
  if (!existsSync(manifestPath)) throw new Error("no manifest (incomplete write)");
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
  if (manifest.version !== FORMAT_VERSION) throw new Error(`unknown format version ${manifest.version}`);
  const contents = new Map<string, Buffer>();
  for (const [file, expected] of Object.entries(manifest.files)) {
    const full = join(path, file);
    if (!existsSync(full)) throw new Error(`missing ${file}`);
    const data = readFileSync(full);
    if (sha256(data) !== expected) throw new Error(`sha256 mismatch in ${file}`);
    contents.set(file, data);
  }
  const groups: Record<string, NamedTensor[]> = {};
  for (const group of manifest.groups) {
    const index = JSON.parse(contents.get(`${group}.json`)!.toString("utf8")) as TensorEntry[];
    groups[group] = decodeGroup(index, contents.get(`${group}.bin`)!);
  }
  const state = JSON.parse(contents.get(STATE_FILE)!.toString("utf8")) as S;
  return { path, state, groups };
}

/** The newest checkpoint that verifies; corrupt ones are logged and skipped. */
export function latestValidCheckpoint<S>(dir: string, log: Logger): Checkpoint<S> | undefined {
  for (const path of listCheckpoints(dir)) {
    try {
      return readCheckpoint<S>(path);
    } catch (error) {
      log(`skipping corrupt checkpoint ${path}: ${(error as Error).message}`);
    }
  }
  return undefined;
}

export function disposeGroups(groups: Record<string, NamedTensor[]>): void {
  for (const tensors of Object.values(groups)) for (const { tensor } of tensors) tensor.dispose();
}
