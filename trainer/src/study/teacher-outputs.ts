// The study's teacher pass on storage: each shard's rows (float32 little-endian, per sample its logits then its
// features) and its manifest (TeacherShardManifest), and the reader that assembles every shard into one
// TeacherOutputCache for a variant, refusing anything it cannot verify: a missing shard (StorageNotFound, naming
// the URI), a file of another size or sha256 (ChecksumMismatch), outputs computed on other data or by another
// teacher (BadData).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  shardRange,
  StudyLayout,
  TeacherShardManifest,
  type TrainerSpec,
} from "../../../api/v1alpha1/index.ts";
import type { Normalization } from "../data/index.ts";
import { DataError } from "../data/errors.ts";
import type { Dataset } from "../contracts.ts";
import { TeacherOutputCache } from "../engine/teacher-cache.ts";
import { StorageError } from "../storage/errors.ts";
import type { SharedStore } from "./shared-store.ts";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const hashJson = (value: unknown) => sha256(Buffer.from(JSON.stringify(value))).slice(0, 32);

/** The training split the teacher saw: its samples in order and the normalisation of its inputs. */
export function dataFingerprint(dataset: Dataset & { normalization: Normalization }): string {
  const digest = dataset.train.digest?.();
  if (!digest) throw new Error("the training split cannot be fingerprinted");
  return hashJson({
    digest,
    inputShape: dataset.inputShape,
    numClasses: dataset.numClasses,
    normalization: dataset.normalization,
  });
}

/**
 * The teacher of a study's template: its spec (a given model and its sha256, or the built-in architecture and
 * recipe), and for one trained on the spot what else decides its weights (the template's seed, batch size, which
 * evaluated weights it keeps). Variants change training.seed, so they compute it from the template too.
 */
export function teacherFingerprint(template: TrainerSpec): string {
  const { outputCache: _cache, ...teacher } = template.teacher;
  const { seed, batchSize, evaluationsPerEpoch, reportedModel } = template.training;
  return hashJson(
    teacher.model ? { teacher } : { teacher, seed, batchSize, evaluationsPerEpoch, reportedModel },
  );
}

/** A shard's rows as bytes: per sample its numClasses logits, then its featureDim features. */
export function encodeRows(cache: TeacherOutputCache): Uint8Array {
  const { logits, features } = cache.rows();
  const { numClasses: c, featureDim: f, size } = cache;
  const out = new Float32Array(size * (c + f));
  for (let i = 0; i < size; i++) {
    out.set(logits.subarray(i * c, (i + 1) * c), i * (c + f));
    if (features) out.set(features.subarray(i * f, (i + 1) * f), i * (c + f) + c);
  }
  return new Uint8Array(out.buffer);
}

/** Splits rows back into `into` (logits and features of the whole split) from sample `start` on. */
export function decodeRows(
  bytes: Uint8Array,
  shape: { numClasses: number; featureDim: number; start: number; count: number },
  into: { logits: Float32Array; features?: Float32Array },
): void {
  const { numClasses: c, featureDim: f, start, count } = shape;
  // A copy (Buffer.slice would be a view): a Buffer's offset in its pool need not be a multiple of 4.
  const rows = new Float32Array(new Uint8Array(bytes).buffer, 0, count * (c + f));
  for (let i = 0; i < count; i++) {
    const row = rows.subarray(i * (c + f), (i + 1) * (c + f));
    into.logits.set(row.subarray(0, c), (start + i) * c);
    if (into.features && f > 0) into.features.set(row.subarray(c), (start + i) * f);
  }
}

export interface ExpectedPass {
  shards: number;
  samples: number;
  numClasses: number;
  dataFingerprint: string;
  teacherFingerprint: string;
  /** Whether the student reads the teacher's features (the pass must hold them). */
  needsFeatures: boolean;
}

/** Every shard's manifest, checked against what this run expects; the first problem throws, naming the URI. */
export async function readManifests(
  store: SharedStore,
  expected: ExpectedPass,
): Promise<TeacherShardManifest[]> {
  const manifests: TeacherShardManifest[] = [];
  for (let shard = 0; shard < expected.shards; shard++) {
    const relative = StudyLayout.teacherShardManifest(shard);
    const uri = store.location(relative);
    const raw = await store.getJson<unknown>(relative);
    if (raw === undefined)
      throw new StorageError(
        "StorageNotFound",
        uri,
        `no teacher outputs: shard ${shard} of the teacher pass has not completed (its manifest is written last)`,
      );
    const parsed = TeacherShardManifest.safeParse(raw);
    if (!parsed.success)
      throw new DataError(uri, `not a teacher shard manifest: ${parsed.error.issues[0]?.message}`);
    manifests.push(checkManifest(parsed.data, shard, expected, uri));
  }
  return manifests;
}

function checkManifest(
  m: TeacherShardManifest,
  shard: number,
  expected: ExpectedPass,
  uri: string,
): TeacherShardManifest {
  const range = shardRange(expected.samples, expected.shards, shard);
  const problems = [
    m.dataFingerprint !== expected.dataFingerprint &&
      "computed on other data (the training split or its normalisation differs)",
    m.teacherFingerprint !== expected.teacherFingerprint && "computed by another teacher",
    (m.shard !== shard || m.shards !== expected.shards) &&
      `shard ${m.shard} of ${m.shards}, expected ${shard} of ${expected.shards}`,
    (m.samples !== expected.samples || m.start !== range.start || m.count !== range.count) &&
      `samples ${m.start}..${m.start + m.count} of ${m.samples}, expected ${range.start}..${range.start + range.count} of ${expected.samples}`,
    m.numClasses !== expected.numClasses && `${m.numClasses} classes, the data has ${expected.numClasses}`,
    expected.needsFeatures &&
      m.featureDim === 0 &&
      "holds no teacher features, and the feature objective needs them",
    m.bytes !== m.count * (m.numClasses + m.featureDim) * 4 && `${m.bytes} bytes do not match its shape`,
  ].filter((p): p is string => typeof p === "string");
  if (problems.length > 0) throw new DataError(uri, `teacher outputs refused: ${problems.join("; ")}`);
  return m;
}

/** Reads and verifies every shard; returns the whole split's outputs as one cache (row i = training sample i). */
export async function readTeacherOutputs(
  store: SharedStore,
  expected: ExpectedPass,
): Promise<{ cache: TeacherOutputCache; manifests: TeacherShardManifest[] }> {
  const manifests = await readManifests(store, expected);
  const featureDim = expected.needsFeatures ? manifests[0]!.featureDim : 0;
  if (manifests.some((m) => (expected.needsFeatures ? m.featureDim !== featureDim : false)))
    throw new DataError(
      store.location(StudyLayout.teacherDir),
      "teacher shards disagree on the feature width",
    );
  const logits = new Float32Array(expected.samples * expected.numClasses);
  const features = featureDim > 0 ? new Float32Array(expected.samples * featureDim) : undefined;
  for (const m of manifests) {
    const relative = StudyLayout.teacherShard(m.shard);
    const path = await store.localFile(relative, { sha256: m.sha256, bytes: m.bytes });
    const bytes = readFileSync(path);
    if (sha256(bytes) !== m.sha256)
      throw new StorageError(
        "ChecksumMismatch",
        store.location(relative),
        "sha256 differs from its manifest's",
      );
    // Rows hold the features the pass stored; a student that does not read them skips them.
    decodeRows(
      bytes,
      { numClasses: m.numClasses, featureDim: m.featureDim, start: m.start, count: m.count },
      {
        logits,
        ...(features ? { features } : {}),
      },
    );
  }
  return { cache: TeacherOutputCache.fromRows(expected.numClasses, featureDim, logits, features), manifests };
}
