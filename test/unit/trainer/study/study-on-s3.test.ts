// A study as the cluster runs it, with a real S3-compatible server as its only shared storage: each stage on its
// own "node" (fresh local directories), reading the config the operator mounts (studyTrainerConfig as JSON) and
// its index from JOB_COMPLETION_INDEX, as an Indexed Job's pod does.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DistillationStudy, Result, studyTrainerConfig } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { StorageError } from "../../../../trainer/src/storage/errors.ts";
import { runStudyStage } from "../../../../trainer/src/study/command.ts";
import { startS3Server, type S3Server } from "../../../bed/versitygw.ts";
import { tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

const BUCKET = "mokd-study";
const ROOT = `s3://${BUCKET}/studies/tiny`;
let s3: S3Server;
let configFile: string;
const quiet = { info: () => {}, warn: () => {} };

beforeAll(async () => {
  await selectBackend("cpu", () => {});
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
  const data = writeTinyIdx();
  for (const file of readdirSync(data))
    await s3.client.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: `datasets/tiny/${file}`,
        Body: readFileSync(join(data, file)),
      }),
    );
  process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
  process.env.AWS_REGION = s3.region;
  const template = tinyJob("unused", "/unused", { epochs: 1 }).spec;
  const study = DistillationStudy.parse({
    apiVersion: "distillation.mokd.io/v1alpha1",
    kind: "DistillationStudy",
    metadata: { name: "tiny-study", namespace: "tests", uid: "u-1", generation: 1 },
    spec: {
      template: {
        ...template,
        data: { path: `s3://${BUCKET}/datasets/tiny`, validationSplit: 0.125 },
        storage: { s3: { endpoint: s3.endpoint, forcePathStyle: true } },
        output: {
          uri: ROOT,
          checkpoints: { uri: `s3://${BUCKET}/checkpoints/tiny` },
          compression: { enabled: false },
        },
      },
      variants: { automatic: ["mokd"], fixedAlphas: [0.9], studentAlone: true },
      seeds: [1],
    },
  });
  configFile = join(mkdtempSync(join(tmpdir(), "mokd-config-")), "job.json");
  writeFileSync(configFile, JSON.stringify(studyTrainerConfig(study)));
}, 1_800_000);

afterAll(async () => {
  await s3?.stop();
});

async function keys(prefix: string): Promise<string[]> {
  const page = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (page.Contents ?? []).map((o) => o.Key!).sort();
}

/** One pod of `stage` on a fresh node; returns its termination message. */
async function pod(stage: string, index?: number): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), `mokd-${stage}-`));
  const terminationLog = join(dir, "termination-log");
  const env = {
    ...(index !== undefined ? { JOB_COMPLETION_INDEX: String(index) } : {}),
    MOKD_STUDY: "tiny-study",
  };
  await runStudyStage(
    stage,
    {
      configFile,
      index: undefined,
      backend: "cpu",
      log: quiet,
      metricsPort: 0,
      terminationLog,
      outputPath: join(dir, "output"),
      checkpointPath: join(dir, "checkpoints"),
      cacheDir: join(dir, "cache"),
    },
    env,
  );
  return JSON.parse(readFileSync(terminationLog, "utf8"));
}

describe("a study's stages as pods sharing only object storage", () => {
  it("refuses a variant before the teacher pass, then runs teacher, variants and report", async () => {
    const early = await pod("variant", 1).catch((e: unknown) => e);
    expect(early).toBeInstanceOf(StorageError);
    expect((early as StorageError).reason).toBe("StorageNotFound");
    expect((early as Error).message).toContain(`${ROOT}/teacher/shard-0.json`);

    const teacher = Result.parse(await pod("teacher", 0));
    expect(teacher.teacherSource).toBe("trained");
    expect(teacher.teacherAccuracy).toBeGreaterThan(0.5);
    expect(await keys("studies/tiny/teacher/")).toEqual(
      expect.arrayContaining([
        "studies/tiny/teacher/shard-0.bin",
        "studies/tiny/teacher/shard-0.json",
        "studies/tiny/teacher/summary-0.json",
        "studies/tiny/teacher/model/model.json",
      ]),
    );

    for (const index of [0, 1, 2]) {
      const result = Result.parse(await pod("variant", index));
      expect(result.variant).toBe(["alone-s1", "mokd-s1", "kd@0.9-s1"][index]);
      expect(result.teacherSource).toBe(index === 0 ? "none" : "shared");
      expect(result.outputUri).toBe(`${ROOT}/variants/${result.variant}`);
    }
    expect(await keys("studies/tiny/variants/mokd-s1/")).toEqual(
      expect.arrayContaining([
        "studies/tiny/variants/mokd-s1/summary.json",
        "studies/tiny/variants/mokd-s1/metrics.jsonl",
      ]),
    );

    // Each pod checkpointed under its own prefix (a preempted pod resumes from there, on any node).
    const checkpoints = await keys("checkpoints/tiny/");
    for (const stage of ["teacher-0", "variants/alone-s1", "variants/mokd-s1", "variants/kd@0.9-s1"])
      expect(checkpoints.some((k) => k.startsWith(`checkpoints/tiny/${stage}/`))).toBe(true);

    const report = Result.parse(await pod("report"));
    expect(report.outputUri).toBe(ROOT);
    const got = await s3.client.send(
      new GetObjectCommand({
        Bucket: BUCKET,
        Key: "studies/tiny/study-summary.json",
      }),
    );
    const answer = JSON.parse(await got.Body!.transformToString());
    expect([answer.runs, answer.succeeded]).toEqual([3, 3]);
    expect(answer.teacher).toMatchObject({ trainings: 1, source: "trained" });
    expect(await keys("studies/tiny/report.html")).toEqual(["studies/tiny/report.html"]);
  }, 300_000);
});
