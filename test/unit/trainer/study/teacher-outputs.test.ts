import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { shardRange, StudyLayout, type TeacherShardManifest } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { DataError } from "../../../../trainer/src/data/errors.ts";
import { TeacherOutputCache } from "../../../../trainer/src/engine/teacher-cache.ts";
import { StorageError } from "../../../../trainer/src/storage/errors.ts";
import { SharedStore } from "../../../../trainer/src/study/shared-store.ts";
import {
  encodeRows,
  readTeacherOutputs,
  type ExpectedPass,
} from "../../../../trainer/src/study/teacher-outputs.ts";
import { outputsOnlyTeacher } from "../../../../trainer/src/study/variant.ts";

const CLASSES = 3;
const FEATURES = 2;
const SAMPLES = 7;

beforeAll(async () => {
  await selectBackend("cpu", () => {});
});

/** Distinct, exactly representable values: sample s, column c -> s * 10 + c (+ 0.5 for features). */
function rows(start: number, count: number) {
  const logits = Float32Array.from(
    { length: count * CLASSES },
    (_, i) => (start + Math.floor(i / CLASSES)) * 10 + (i % CLASSES),
  );
  const features = Float32Array.from(
    { length: count * FEATURES },
    (_, i) => (start + Math.floor(i / FEATURES)) * 10 + (i % FEATURES) + 0.5,
  );
  return TeacherOutputCache.fromRows(CLASSES, FEATURES, logits, features);
}

const expected: ExpectedPass = {
  shards: 2,
  samples: SAMPLES,
  numClasses: CLASSES,
  dataFingerprint: "data-a",
  teacherFingerprint: "teacher-a",
  needsFeatures: true,
};

/** Writes a two-shard pass as the teacher stage does: rows, then the manifest. */
async function writePass(store: SharedStore, dir: string): Promise<void> {
  for (let shard = 0; shard < 2; shard++) {
    const range = shardRange(SAMPLES, 2, shard);
    const bytes = encodeRows(rows(range.start, range.count));
    const file = join(dir, `local-${shard}.bin`);
    writeFileSync(file, bytes);
    await store.putFile(file, StudyLayout.teacherShard(shard));
    const manifest: TeacherShardManifest = {
      version: 1,
      shard,
      shards: 2,
      samples: SAMPLES,
      ...range,
      numClasses: CLASSES,
      featureDim: FEATURES,
      bytes: bytes.byteLength,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      dataFingerprint: "data-a",
      teacherFingerprint: "teacher-a",
      teacher: { source: "trained", ...(shard === 0 ? { accuracy: 0.9 } : {}), parameters: 10 },
      createdAt: new Date().toISOString(),
    };
    await store.putJson(StudyLayout.teacherShardManifest(shard), manifest);
  }
}

function freshStore(): { store: SharedStore; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "mokd-pass-"));
  const root = join(dir, "shared");
  return { store: new SharedStore({ kind: "path", path: root }, undefined, join(dir, "cache")), dir };
}

describe("study teacher pass on shared storage", () => {
  it("splits the training split into contiguous shards covering it once", () => {
    const ranges = [0, 1, 2].map((i) => shardRange(10, 3, i));
    expect(ranges).toEqual([
      { start: 0, count: 4 },
      { start: 4, count: 3 },
      { start: 7, count: 3 },
    ]);
  });

  it("reads back, shard by shard, exactly the outputs written", async () => {
    const { store, dir } = freshStore();
    await writePass(store, dir);
    const { cache, manifests } = await readTeacherOutputs(store, expected);
    expect(manifests.map((m) => m.count)).toEqual([4, 3]);
    const whole = rows(0, SAMPLES).rows();
    expect(Array.from(cache.rows().logits)).toEqual(Array.from(whole.logits));
    expect(Array.from(cache.rows().features!)).toEqual(Array.from(whole.features!));
    // And a batch looks up its samples' rows, in the batch's order.
    const batch = {
      xs: tf.zeros([2, 1, 1, 1]) as tf.Tensor4D,
      ys: tf.tensor1d([0, 0], "int32"),
      indices: Int32Array.from([6, 2]),
    };
    const out = cache.outputs(batch);
    expect(Array.from(out.teacherLogits.dataSync())).toEqual([60, 61, 62, 20, 21, 22]);
    tf.dispose([batch.xs, batch.ys, out.teacherLogits, out.teacherFeatures!]);
  });

  it("keeps logits only for a student that does not read features", async () => {
    const { store, dir } = freshStore();
    await writePass(store, dir);
    const { cache } = await readTeacherOutputs(store, { ...expected, needsFeatures: false });
    expect(cache.featureDim).toBe(0);
    expect(cache.rows().features).toBeUndefined();
  });

  it("refuses a missing shard with StorageNotFound naming its manifest", async () => {
    const { store } = freshStore();
    const error = await readTeacherOutputs(store, expected).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).reason).toBe("StorageNotFound");
    expect((error as Error).message).toContain(store.location("teacher/shard-0.json"));
  });

  it("refuses a corrupt shard (same size, one value changed) with ChecksumMismatch", async () => {
    const { store, dir } = freshStore();
    await writePass(store, dir);
    const file = store.location(StudyLayout.teacherShard(1));
    const bytes = readFileSync(file);
    bytes[5] = bytes[5]! ^ 0xff;
    writeFileSync(file, bytes);
    const error = await readTeacherOutputs(store, expected).catch((e: unknown) => e);
    expect((error as StorageError).reason).toBe("ChecksumMismatch");
    expect((error as Error).message).toContain("shard-1.bin");
  });

  it("refuses a truncated shard with ChecksumMismatch", async () => {
    const { store, dir } = freshStore();
    await writePass(store, dir);
    const file = store.location(StudyLayout.teacherShard(0));
    writeFileSync(file, readFileSync(file).subarray(0, 8));
    const error = await readTeacherOutputs(store, expected).catch((e: unknown) => e);
    expect((error as StorageError).reason).toBe("ChecksumMismatch");
  });

  it("refuses outputs computed on other data or by another teacher (BadData)", async () => {
    const { store, dir } = freshStore();
    await writePass(store, dir);
    for (const other of [
      { dataFingerprint: "data-b" },
      { teacherFingerprint: "teacher-b" },
      { samples: 8 },
    ]) {
      const error = await readTeacherOutputs(store, { ...expected, ...other }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DataError);
      expect((error as Error).message).toContain("teacher outputs refused");
    }
  });

  it("gives a variant a teacher with the outputs' shape and no model to load", () => {
    const teacher = outputsOnlyTeacher(10, 4, 1234);
    expect([teacher.numClasses, teacher.featureDim, teacher.parameters]).toEqual([10, 4, 1234]);
    expect(() => teacher.model).toThrow(/never loads the teacher/);
  });
});
