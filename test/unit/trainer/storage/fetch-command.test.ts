// `trainer fetch`, the init container, as the pod runs it: config from $MOKD_CONFIG, downloads into
// $MOKD_CACHE_DIR, and on a storage failure the exit code and the {error, reason} termination message the
// operator turns into the job's Failed reason — against a real S3 server.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCode } from "../../../../api/v1alpha1/index.ts";
import { main } from "../../../../trainer/src/cli.ts";
import { cacheDirFor } from "../../../../trainer/src/storage/fetch.ts";
import { startS3Server, type S3Server } from "../../../bed/versitygw.ts";
import { tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

const BUCKET = "mokd-fetch";
let s3: S3Server;

beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
  await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "data/train-images", Body: "images" }));
  await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "data/train-labels", Body: "labels" }));
}, 1_800_000);

afterAll(async () => {
  await s3?.stop();
});

/** Runs `trainer fetch` on a bare spec with the pod's variables; returns the exit code and termination message. */
async function fetchCommand(spec: Record<string, unknown>, secret = s3.secretAccessKey) {
  const dir = mkdtempSync(join(tmpdir(), "mokd-fetch-cmd-"));
  const config = join(dir, "job.json");
  writeFileSync(
    config,
    JSON.stringify({ storage: { s3: { endpoint: s3.endpoint, forcePathStyle: true } }, ...spec }),
  );
  const log = join(dir, "termination-log");
  writeFileSync(log, "");
  const env = {
    MOKD_CONFIG: config,
    MOKD_CACHE_DIR: join(dir, "cache"),
    MOKD_TERMINATION_LOG: log,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: secret,
    AWS_REGION: s3.region,
  };
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const code = await main(["fetch"]);
    const text = readFileSync(log, "utf8");
    return {
      code,
      message: text ? (JSON.parse(text) as { error: string; reason: string }) : undefined,
      cache: env.MOKD_CACHE_DIR,
    };
  } finally {
    process.env = saved;
  }
}

describe("trainer fetch (the init container)", () => {
  it("downloads the inputs where the trainer looks for them, and exits 0", async () => {
    const uri = `s3://${BUCKET}/data`;
    const { code, cache } = await fetchCommand({ data: { path: uri } });
    expect(code).toBe(ExitCode.Success);
    expect(readFileSync(join(cacheDirFor(cache, uri), "train-labels"), "utf8")).toBe("labels");
  });

  it.each([
    [
      "a missing prefix",
      { data: { path: `s3://${BUCKET}/nothing-here/` } },
      undefined,
      ExitCode.StorageNotFound,
      "StorageNotFound",
      /s3:\/\/mokd-fetch\/nothing-here\/: not found.*\(NoSuchKey\)/,
    ],
    [
      "a missing bucket",
      { data: { path: "s3://no-such-bucket/data/" } },
      undefined,
      ExitCode.StorageNotFound,
      "StorageNotFound",
      /s3:\/\/no-such-bucket\/data\/: not found.*\(NoSuchBucket\)/,
    ],
    [
      "wrong credentials",
      { data: { path: `s3://${BUCKET}/data` } },
      "not-the-secret",
      ExitCode.StorageAccessDenied,
      "StorageAccessDenied",
      /s3:\/\/mokd-fetch\/data: access denied.*\((SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied)\)/,
    ],
    [
      "a sha256 that does not match",
      { data: { path: `s3://${BUCKET}/data/train-images`, sha256: "0".repeat(64) } },
      undefined,
      ExitCode.ChecksumMismatch,
      "ChecksumMismatch",
      /s3:\/\/mokd-fetch\/data\/train-images: sha256 [0-9a-f]{64}, expected 0{64}/,
    ],
  ])(
    "%s: exit code and termination message name the reason, the URI and the code",
    async (_what, spec, secret, exit, reason, error) => {
      const { code, message } = await fetchCommand(spec, secret);
      expect(code).toBe(exit);
      expect(message?.reason).toBe(reason);
      expect(message?.error).toMatch(error);
    },
  );

  it("the trainer after it (two processes, as init container and container) finds every file in the cache", async () => {
    const data = writeTinyIdx();
    for (const f of readdirSync(data)) {
      const body = readFileSync(join(data, f));
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `tiny/${f}`, Body: body }));
    }
    const dir = mkdtempSync(join(tmpdir(), "mokd-pod-"));
    const spec = tinyJob(`s3://${BUCKET}/tiny/`, dir).spec as Record<string, Record<string, unknown>>;
    spec.output = { ...spec.output, uri: `s3://${BUCKET}/out/tiny` };
    spec.storage = { s3: { endpoint: s3.endpoint, forcePathStyle: true } };
    const config = join(dir, "job.json");
    writeFileSync(config, JSON.stringify(spec));
    const env = {
      MOKD_CONFIG: config,
      MOKD_CACHE_DIR: join(dir, "cache"),
      MOKD_TERMINATION_LOG: join(dir, "termination-log"),
      MOKD_BACKEND: "cpu",
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_REGION: s3.region,
    };
    const init = await cli(["fetch"], env);
    expect(init.code, init.stdout + init.stderr).toBe(0);
    expect(init.stdout).toMatch(/fetched s3:\/\/mokd-fetch\/tiny\/: 4 file\(s\), .* \(0 cached/);
    const trainer = await cli(["train"], env);
    expect(trainer.code, trainer.stdout.slice(-3000) + trainer.stderr).toBe(0);
    expect(trainer.stdout).toMatch(
      /fetched s3:\/\/mokd-fetch\/tiny\/: 4 file\(s\), .* \(4 cached, 0\.0 KiB downloaded\)/,
    );
    const result = JSON.parse(readFileSync(env.MOKD_TERMINATION_LOG, "utf8")) as { outputUri?: string };
    expect(result.outputUri).toBe(`s3://${BUCKET}/out/tiny`);
    const report = await s3.client.send(
      new HeadObjectCommand({ Bucket: BUCKET, Key: "out/tiny/report.html" }),
    );
    expect(report.ContentLength).toBeGreaterThan(0);
  });
});

function cli(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ["trainer/src/cli.ts", ...args], {
      env: { ...process.env, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
