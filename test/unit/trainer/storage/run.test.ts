// A whole local run (runJob, as `npm run job` does it) with everything in a real S3-compatible server: data read
// from a bucket, outputs and checkpoints written to it. Stopped mid-student (SIGTERM's path) on "node A", it
// resumes on "node B" — fresh local directories, nothing shared but the bucket — from the checkpoint the pointer
// names, and ends exactly as an uninterrupted run.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TrainerProgress } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import { runJob } from "../../../../trainer/src/engine/run.ts";
import { StopSignal, StoppedError } from "../../../../trainer/src/engine/stop.ts";
import { StorageError } from "../../../../trainer/src/storage/errors.ts";
import { ProgressDocument } from "../../../../trainer/src/telemetry/progress-document.ts";
import { startS3Server, type S3Server } from "../../../bed/versitygw.ts";
import { tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

const BUCKET = "mokd-run";
let s3: S3Server;
let data: string;

beforeAll(async () => {
  await selectBackend("cpu", () => {});
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
  data = writeTinyIdx();
  for (const file of readdirSync(data)) {
    await s3.client.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: `datasets/tiny/${file}`,
        Body: readFileSync(join(data, file)),
      }),
    );
  }
  // The standard variables, as a user's shell has them for `npm run job`.
  process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
  process.env.AWS_REGION = s3.region;
}, 1_800_000);

afterAll(async () => {
  await s3?.stop();
});

/** A fresh "node": its own output, checkpoint and cache directories. */
function node(name: string, spec: Record<string, unknown>) {
  const dir = mkdtempSync(join(tmpdir(), `mokd-${name}-`));
  const manifest = tinyJob("unused", dir, { epochs: 2 });
  const base = manifest.spec as Record<string, Record<string, unknown>>;
  const merged = { ...base, ...spec, output: { ...base.output, ...(spec.output as object) } };
  return {
    config: parseConfig({ ...manifest, spec: merged }, "test", {}),
    cacheDir: join(dir, "cache"),
    terminationLog: join(dir, "termination-log"),
    dir,
  };
}

const storageSpec = () => ({
  data: { path: `s3://${BUCKET}/datasets/tiny`, validationSplit: 0.125 },
  storage: { s3: { endpoint: s3.endpoint, forcePathStyle: true } },
  output: { uri: `s3://${BUCKET}/runs/tiny`, checkpoints: { uri: `s3://${BUCKET}/checkpoints/tiny` } },
});

async function keys(prefix: string): Promise<string[]> {
  const page = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (page.Contents ?? []).map((o) => o.Key!).sort();
}

describe("a run with data, outputs and checkpoints in object storage", () => {
  it("resumes on another node from the uploaded checkpoint and uploads every output before reporting", async () => {
    const quiet = { info: () => {}, warn: () => {} };
    const reference = node("reference", { data: { path: data, validationSplit: 0.125 } });
    const uninterrupted = await runJob({ config: reference.config, backend: "cpu", log: quiet });

    // Node A: stopped after the 10th student step (an epoch is 7 steps: one checkpoint at step 7 was uploaded).
    const a = node("node-a", storageSpec());
    const stop = new StopSignal();
    let studentSteps = 0;
    const hooks = {
      onStep: (r: { stage: string }) => {
        if (r.stage === "student" && ++studentSteps === 10) stop.requested = true;
      },
    };
    const logsA: string[] = [];
    const logA = { info: (m: string) => logsA.push(m), warn: (m: string) => logsA.push(m) };
    const stopped = await runJob({
      config: a.config,
      backend: "cpu",
      log: logA,
      stop,
      hooks,
      cacheDir: a.cacheDir,
    }).catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(StoppedError);
    expect(logsA.join("\n")).toMatch(/fetched s3:\/\/mokd-run\/datasets\/tiny: 4 file\(s\)/);
    expect(logsA.join("\n")).toMatch(
      /checkpoint student step 10 uploaded: s3:\/\/mokd-run\/checkpoints\/tiny\/latest.json/,
    );
    // Nothing of the outputs before success.
    expect(await keys("runs/tiny/")).toEqual([]);

    // Node B: nothing local; resumes from the bucket.
    const b = node("node-b", storageSpec());
    const logsB: string[] = [];
    const logB = { info: (m: string) => logsB.push(m), warn: (m: string) => logsB.push(m) };
    let document: ProgressDocument | undefined;
    const seen: TrainerProgress[] = [];
    const resumed = await runJob({
      config: b.config,
      backend: "cpu",
      log: logB,
      cacheDir: b.cacheDir,
      terminationLog: b.terminationLog,
      progress: (plan) => (document = new ProgressDocument(plan)),
      hooks: { onStep: () => seen.push(TrainerProgress.parse(document!.document())) },
      beforeUpload: async (r) => writeFileSync(join(r.outputPath, "report.html"), "<html></html>"),
    });
    const text = logsB.join("\n");
    expect(text).toMatch(
      /checkpoints: restored student step 10 \(epoch 1, .*\) from s3:\/\/mokd-run\/checkpoints\/tiny\/latest.json/,
    );
    expect(seen[0]).toMatchObject({ stage: "student", step: 11 });
    // The epoch-2 checkpoint comes after the last step: the document's state at the end.
    expect(document!.document()?.lastCheckpoint).toMatchObject({
      stage: "student",
      step: 14,
      epoch: 2,
      location: `s3://${BUCKET}/checkpoints/tiny/latest.json`,
    });
    expect(resumed.summary.teacher.accuracy).toBe(uninterrupted.summary.teacher.accuracy);
    expect(resumed.summary.student.accuracy).toBe(uninterrupted.summary.student.accuracy);

    // Every output file is in the bucket, and the termination message names where.
    expect(await keys("runs/tiny/")).toEqual(
      expect.arrayContaining([
        "runs/tiny/metrics.jsonl",
        "runs/tiny/report.html",
        "runs/tiny/student/model.json",
        "runs/tiny/student/weights.bin",
        "runs/tiny/summary.json",
      ]),
    );
    const message = JSON.parse(readFileSync(b.terminationLog, "utf8")) as Record<string, unknown>;
    expect(message).toMatchObject({
      outputUri: `s3://${BUCKET}/runs/tiny`,
      checkpointUri: `s3://${BUCKET}/checkpoints/tiny/latest.json`,
    });
  });

  it("fails at the start, before any step, when the output bucket is missing", async () => {
    const c = node("no-bucket", { ...storageSpec(), output: { uri: "s3://no-such-bucket/runs/tiny" } });
    let steps = 0;
    const error = await runJob({
      config: c.config,
      backend: "cpu",
      log: { info: () => {}, warn: () => {} },
      cacheDir: c.cacheDir,
      hooks: { onStep: () => void steps++ },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(error instanceof StorageError)) throw new Error(`expected a StorageError, got ${String(error)}`);
    expect([error.reason, error.code]).toEqual(["StorageNotFound", "NoSuchBucket"]);
    expect(error.message).toContain("s3://no-such-bucket/runs/tiny");
    expect(steps).toBe(0);
  });
});
