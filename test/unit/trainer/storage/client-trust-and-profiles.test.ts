// The trainer's S3 client (trainer/src/storage/client.ts) as a user's machine and a pod configure it, against the
// real versitygw: credentials and region from a shared AWS profile (AWS_PROFILE, AWS_CONFIG_FILE,
// AWS_SHARED_CREDENTIALS_FILE) with the endpoint from the spec, as `npm run job` runs; and an endpoint whose
// certificate is not trusted (no caBundle) ending at once as StorageTLSError, naming the URI and the TLS error.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ExitCode, StorageSpec } from "../../../../api/v1alpha1/index.ts";
import { storageContext } from "../../../../trainer/src/storage/client.ts";
import { StorageError } from "../../../../trainer/src/storage/errors.ts";
import { fetchArtifact } from "../../../../trainer/src/storage/fetch.ts";
import { startS3Server, type S3Server } from "../../../bed/versitygw.ts";

const temp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));
const AWS_VARIABLES = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "AWS_PROFILE",
  "AWS_CONFIG_FILE",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_S3",
  "AWS_CA_BUNDLE",
  "MOKD_STORAGE_CA_BUNDLE",
];
const saved = { ...process.env };

/** The process environment with only `env` of the AWS variables (the SDK's chain reads process.env). */
function awsEnvironment(env: Record<string, string>): void {
  const others = Object.entries(process.env).filter(([name]) => !AWS_VARIABLES.includes(name));
  process.env = { ...Object.fromEntries(others), ...env };
}

afterEach(() => {
  process.env = { ...saved };
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a failure");
}

function context(endpoint: string, region?: string, retries: string[] = []) {
  const lines: string[] = [];
  const ctx = storageContext(
    StorageSpec.parse({ s3: { endpoint, forcePathStyle: true, ...(region ? { region } : {}) } }),
    { info: (m) => lines.push(m), warn: (m) => lines.push(m), retried: (op) => retries.push(op) },
  );
  return { ...ctx, retry: { ...ctx.retry, baseDelayMs: 1 }, lines };
}

describe("credentials and region from a shared AWS profile (local parity)", () => {
  let s3: S3Server;
  beforeAll(async () => {
    s3 = await startS3Server();
    await s3.createBucket("profiles");
    await s3.client.send(new PutObjectCommand({ Bucket: "profiles", Key: "x.txt", Body: "from a profile" }));
  }, 1_800_000);
  afterAll(() => s3?.stop());

  /** A config and a credentials file: the `mokd` profile has the server's keys; `default` has wrong ones. */
  function sharedFiles(): { config: string; credentials: string } {
    const dir = temp("mokd-aws-");
    const config = join(dir, "config");
    const credentials = join(dir, "credentials");
    writeFileSync(config, `[default]\nregion = eu-north-1\n\n[profile mokd]\nregion = ${s3.region}\n`);
    writeFileSync(
      credentials,
      `[default]\naws_access_key_id = ${s3.accessKeyId}\naws_secret_access_key = not-the-key\n\n` +
        `[mokd]\naws_access_key_id = ${s3.accessKeyId}\naws_secret_access_key = ${s3.secretAccessKey}\n`,
    );
    return { config, credentials };
  }

  it("reads AWS_PROFILE's keys and region from AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE", async () => {
    const files = sharedFiles();
    awsEnvironment({
      AWS_PROFILE: "mokd",
      AWS_CONFIG_FILE: files.config,
      AWS_SHARED_CREDENTIALS_FILE: files.credentials,
    });
    const ctx = context(s3.endpoint); // no region in the spec: the profile's
    expect(await ctx.s3().config.region()).toBe(s3.region);
    expect((await ctx.s3().config.credentials()).secretAccessKey).toBe(s3.secretAccessKey);
    const got = await fetchArtifact(ctx, { uri: "s3://profiles/x.txt" }, temp("mokd-cache-"));
    expect(got).toMatchObject({ files: 1, cached: 0 });
  });

  it("takes the default profile without AWS_PROFILE", async () => {
    const files = sharedFiles();
    awsEnvironment({ AWS_CONFIG_FILE: files.config, AWS_SHARED_CREDENTIALS_FILE: files.credentials });
    const client = context(s3.endpoint).s3();
    expect(await client.config.region()).toBe("eu-north-1");
    expect((await client.config.credentials()).secretAccessKey).toBe("not-the-key");
  });
});

describe("an endpoint whose certificate is not trusted", () => {
  let tls: S3Server;
  beforeAll(async () => {
    tls = await startS3Server("127.0.0.1", { tls: true });
    await tls.createBucket("private");
    await tls.client.send(new PutObjectCommand({ Bucket: "private", Key: "x.txt", Body: "over TLS" }));
  }, 1_800_000);
  afterAll(() => tls?.stop());

  it.each([
    ["an s3:// object (the S3 client)", () => "s3://private/x.txt"],
    ["an https:// file (fetch)", () => `${tls.endpoint}/private/x.txt`],
  ])("ends %s as StorageTLSError at the first attempt, naming the URI and the TLS error", async (_, uri) => {
    awsEnvironment({ AWS_ACCESS_KEY_ID: tls.accessKeyId, AWS_SECRET_ACCESS_KEY: tls.secretAccessKey });
    const retries: string[] = [];
    const ctx = context(tls.endpoint, tls.region, retries); // 5 attempts allowed: none used
    const error = await rejection(fetchArtifact(ctx, { uri: uri() }, temp("mokd-cache-")));
    expect(error).toBeInstanceOf(StorageError);
    const storage = error as StorageError;
    expect(storage.reason).toBe("StorageTLSError");
    expect(storage.exitCode).toBe(ExitCode.StorageTLSError);
    expect(storage.uri).toBe(uri());
    expect(storage.message).toContain(uri());
    expect(storage.message).toMatch(/TLS: .*self[- ]signed certificate.*storage\.caBundle/);
    expect(storage.code).toMatch(/SELF_SIGNED|DEPTH_ZERO/);
    expect(retries).toEqual([]);
  });

  it("is trusted with the CA bundle", async () => {
    awsEnvironment({ AWS_ACCESS_KEY_ID: tls.accessKeyId, AWS_SECRET_ACCESS_KEY: tls.secretAccessKey });
    const lines: string[] = [];
    const ctx = storageContext(
      StorageSpec.parse({ s3: { endpoint: tls.endpoint, forcePathStyle: true, region: tls.region } }),
      {
        info: (m) => lines.push(m),
        warn: (m) => lines.push(m),
        env: { MOKD_STORAGE_CA_BUNDLE: tls.caFile! },
      },
    );
    const got = await fetchArtifact(ctx, { uri: "s3://private/x.txt" }, temp("mokd-cache-"));
    expect(got.files).toBe(1);
  });
});
