// The trainer's storage module against a real S3-compatible server (versitygw, posix backend, started here): URI
// parsing, error classification and retries, the download cache, verification, uploads, and the atomicity of
// checkpoints in object storage. No S3 mock: the one fault injector is an HTTP proxy in front of the real server
// that answers 503 to the first requests (a store under load).
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer, request, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseArtifactUri, StorageSpec } from "../../../../api/v1alpha1/index.ts";
import { storageContext, type StorageContext } from "../../../../trainer/src/storage/client.ts";
import { CheckpointMirror, type Pointer } from "../../../../trainer/src/storage/checkpoints.ts";
import { classify, StorageError } from "../../../../trainer/src/storage/errors.ts";
import { fetchArtifact } from "../../../../trainer/src/storage/fetch.ts";
import { withRetry } from "../../../../trainer/src/storage/retry.ts";
import { uploadDirectory } from "../../../../trainer/src/storage/upload.ts";
import { startS3Server, type S3Server } from "../../../bed/versitygw.ts";

let s3: S3Server;
const BUCKET = "mokd-unit";

beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
}, 1_800_000);

afterAll(async () => {
  await s3?.stop();
});

/** The error a promise rejects with (a resolved one fails the test). */
async function failure(promise: Promise<unknown>): Promise<StorageError> {
  try {
    await promise;
  } catch (error) {
    return error as StorageError;
  }
  throw new Error("expected a failure");
}

const temp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));
const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

interface Counted extends StorageContext {
  lines: string[];
  retries: string[];
  downloaded: () => number;
}

/** A context for the test server (credentials passed as the standard variables, as a user's shell would). */
function context(
  endpoint = s3.endpoint,
  secret = s3.secretAccessKey,
  attempts = 5,
  extraEnv: Record<string, string> = {},
): Counted {
  const lines: string[] = [];
  const retries: string[] = [];
  let downloaded = 0;
  const ctx = storageContext(
    StorageSpec.parse({ s3: { endpoint, forcePathStyle: true, maxAttempts: attempts } }),
    {
      info: (m) => lines.push(m),
      warn: (m) => lines.push(m),
      retried: (op) => retries.push(op),
      bytes: (direction, n) => {
        if (direction === "download") downloaded += n;
      },
      env: {
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: secret,
        AWS_REGION: s3.region,
        ...extraEnv,
      },
    },
  );
  // The SDK reads credentials from process.env: set them for this client only.
  process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = secret;
  return { ...ctx, retry: { ...ctx.retry, baseDelayMs: 10 }, lines, retries, downloaded: () => downloaded };
}

async function put(key: string, body: string | Buffer): Promise<void> {
  await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
}

async function keys(prefix: string): Promise<string[]> {
  const page = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (page.Contents ?? []).map((o) => o.Key!).sort();
}

describe("artifact URIs", () => {
  it("parses paths, s3 objects and prefixes, and http(s) URLs", () => {
    expect(parseArtifactUri("/data")).toEqual({ kind: "local", path: "/data" });
    expect(parseArtifactUri("data/mnist")).toEqual({ kind: "local", path: "data/mnist" });
    expect(parseArtifactUri("s3://my-bucket")).toEqual({ kind: "s3", bucket: "my-bucket", key: "" });
    expect(parseArtifactUri("s3://my.bucket/a/b/")).toEqual({ kind: "s3", bucket: "my.bucket", key: "a/b/" });
    expect(parseArtifactUri("s3://b12/model.json")).toEqual({ kind: "s3", bucket: "b12", key: "model.json" });
    expect(parseArtifactUri("https://example.org/m/model.json")).toEqual({
      kind: "https",
      url: "https://example.org/m/model.json",
    });
  });

  it("refuses bad buckets, dot segments and unknown schemes, naming the URI", () => {
    expect(() => parseArtifactUri("s3://B")).toThrow("s3://B: not s3://bucket/key");
    expect(() => parseArtifactUri("s3://Upper-Case/x")).toThrow(/bucket/);
    expect(() => parseArtifactUri("s3://bucket/a/../b")).toThrow("'..' segments");
    expect(() => parseArtifactUri("gs://bucket/x")).toThrow("unsupported scheme");
  });

  it("the schema refuses a bad URI in data.path with the field named", async () => {
    const { parseTrainerSpec } = await import("../../../../api/v1alpha1/index.ts");
    expect(() => parseTrainerSpec({ data: { path: "s3://X" } })).toThrow(/spec\.data\.path/);
    expect(() => parseTrainerSpec({ output: { uri: "/local" } })).toThrow(/spec\.output\.uri/);
  });
});

describe("error classification and retries", () => {
  const sdk = (name: string, status?: number) =>
    Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });

  it("classifies S3 error codes and HTTP statuses", () => {
    expect(classify(sdk("NoSuchKey", 404))).toBe("StorageNotFound");
    expect(classify(sdk("NoSuchBucket", 404))).toBe("StorageNotFound");
    expect(classify(sdk("AccessDenied", 403))).toBe("StorageAccessDenied");
    expect(classify(sdk("InvalidAccessKeyId", 403))).toBe("StorageAccessDenied");
    expect(classify(sdk("SlowDown", 503))).toBe("transient");
    expect(classify(sdk("InternalError", 500))).toBe("transient");
    expect(classify(sdk("Unknown", 502))).toBe("transient");
    expect(classify(Object.assign(new Error("reset"), { code: "ECONNRESET" }))).toBe("transient");
    expect(classify(sdk("QuotaExceeded", 403))).toBe("StorageQuotaExceeded"); // the code before the status
    expect(classify(sdk("Unknown", 403))).toBe("StorageAccessDenied");
    expect(classify(sdk("InsufficientStorage", 507))).toBe("StorageQuotaExceeded");
    expect(classify(new Error("a bug"))).toBe("other");
  });

  it("retries transient errors with backoff, counted; permanent ones fail at once", async () => {
    const retried: string[] = [];
    const observer = { warn: () => {}, retried: (op: string) => retried.push(op) };
    const policy = { attempts: 4, baseDelayMs: 1, maxDelayMs: 5 };
    let calls = 0;
    const value = await withRetry(
      "download",
      "s3://b/k",
      async () => {
        if (++calls < 3) throw sdk("SlowDown", 503);
        return "ok";
      },
      policy,
      observer,
    );
    expect([value, calls, retried]).toEqual(["ok", 3, ["download", "download"]]);

    calls = 0;
    const denied = await withRetry(
      "head",
      "s3://b/k",
      async () => {
        calls++;
        throw sdk("AccessDenied", 403);
      },
      policy,
      observer,
    ).catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect(denied).toBeInstanceOf(StorageError);
    expect((denied as StorageError).message).toMatch(/^s3:\/\/b\/k: access denied.*\(AccessDenied\)$/);

    calls = 0;
    const exhausted = await withRetry(
      "list",
      "s3://b/",
      async () => {
        calls++;
        throw sdk("InternalError", 500);
      },
      policy,
      observer,
    ).catch((e: unknown) => e as Error);
    expect(calls).toBe(4);
    expect((exhausted as Error).message).toMatch(/still failing after 4 attempts \(InternalError\)/);
  });
});

describe("fetch from a real S3 server", () => {
  it("downloads a prefix keeping relative paths; a second fetch downloads nothing; a changed object is fetched again", async () => {
    await put("data/a.bin", Buffer.alloc(3000, 1));
    await put("data/sub/b.txt", "hello");
    await put("data/sub/c.txt", "world");
    const cache = temp("mokd-cache-");
    const ctx = context();
    const first = await fetchArtifact(ctx, { uri: `s3://${BUCKET}/data` }, cache);
    expect(readFileSync(join(first.path, "sub", "b.txt"), "utf8")).toBe("hello");
    expect(readFileSync(join(first.path, "a.bin")).length).toBe(3000);
    expect([first.files, first.cached, ctx.downloaded()]).toEqual([3, 0, 3010]);
    expect(ctx.lines.at(-1)).toMatch(/^fetched s3:\/\/mokd-unit\/data: 3 file\(s\), .* \(0 cached/);

    const again = context();
    const second = await fetchArtifact(again, { uri: `s3://${BUCKET}/data` }, cache);
    expect([second.path, second.cached, again.downloaded()]).toEqual([first.path, 3, 0]);

    await put("data/sub/c.txt", "changed");
    const third = context();
    const changed = await fetchArtifact(third, { uri: `s3://${BUCKET}/data/` }, cache);
    expect(readFileSync(join(changed.path, "sub", "c.txt"), "utf8")).toBe("changed");
    // data/ and data are different URIs (separate cache entries); fetch `data` again: only c.txt moves.
    const fourth = context();
    await fetchArtifact(fourth, { uri: `s3://${BUCKET}/data` }, cache);
    expect(fourth.downloaded()).toBe("changed".length);
  });

  it("verifies a single object's sha256: a mismatch is ChecksumMismatch and leaves no file", async () => {
    const body = "teacher weights";
    await put("one/model.bin", body);
    const cache = temp("mokd-cache-");
    const ok = await fetchArtifact(
      context(),
      { uri: `s3://${BUCKET}/one/model.bin`, sha256: sha256(body) },
      cache,
    );
    expect(readFileSync(ok.path, "utf8")).toBe(body);

    const other = temp("mokd-cache-");
    const error = await failure(
      fetchArtifact(context(), { uri: `s3://${BUCKET}/one/model.bin`, sha256: "0".repeat(64) }, other),
    );
    expect(error).toBeInstanceOf(StorageError);
    expect(error.reason).toBe("ChecksumMismatch");
    expect(error.message).toContain(
      `s3://${BUCKET}/one/model.bin: sha256 ${sha256(body)}, expected ${"0".repeat(64)}`,
    );
    const left = readdirSync(other, { recursive: true }).map(String);
    expect(left.filter((f) => f.endsWith("model.bin") || f.endsWith(".part"))).toEqual([]);
  });

  it("a tfjs model.json brings the weight files its manifest names", async () => {
    const manifest = {
      modelTopology: {},
      weightsManifest: [{ paths: ["group1-shard1of1.bin"], weights: [] }],
    };
    await put("teacher/model.json", JSON.stringify(manifest));
    await put("teacher/group1-shard1of1.bin", Buffer.alloc(64, 7));
    await put("teacher/unrelated.txt", "not fetched");
    const got = await fetchArtifact(
      context(),
      { uri: `s3://${BUCKET}/teacher/model.json` },
      temp("mokd-cache-"),
    );
    expect(got.path.endsWith("model.json")).toBe(true);
    expect(readFileSync(join(got.path, "..", "group1-shard1of1.bin")).length).toBe(64);
    expect(existsSync(join(got.path, "..", "unrelated.txt"))).toBe(false);
  });

  it("a missing key, prefix or bucket is StorageNotFound naming the URI and the S3 code", async () => {
    const missing = await failure(
      fetchArtifact(context(), { uri: `s3://${BUCKET}/no/such/thing` }, temp("c-")),
    );
    expect([missing.reason, missing.code]).toEqual(["StorageNotFound", "NoSuchKey"]);
    expect(missing.message).toContain(`s3://${BUCKET}/no/such/thing`);
    const bucket = await failure(fetchArtifact(context(), { uri: "s3://no-such-bucket/x/" }, temp("c-")));
    expect([bucket.reason, bucket.code]).toEqual(["StorageNotFound", "NoSuchBucket"]);
    expect(bucket.message).toContain("s3://no-such-bucket/x/");
  });

  it("wrong credentials are StorageAccessDenied with the S3 code, in one attempt", async () => {
    await put("secret/x", "x");
    const ctx = context(s3.endpoint, "wrong-secret");
    const error = await failure(fetchArtifact(ctx, { uri: `s3://${BUCKET}/secret/x` }, temp("c-")));
    expect(error.reason).toBe("StorageAccessDenied");
    expect(error.code).toMatch(/^(SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied)$/);
    expect(error.message).toContain(`s3://${BUCKET}/secret/x`);
    expect(ctx.retries).toEqual([]);
  });

  it("retries a store answering 503, logged and counted, and still verifies the download", async () => {
    await put("busy/file.bin", Buffer.alloc(1000, 3));
    const proxy = await flakyProxy(s3.endpoint, 2);
    try {
      const ctx = context(proxy.endpoint);
      const got = await fetchArtifact(ctx, { uri: `s3://${BUCKET}/busy/file.bin` }, temp("c-"));
      expect(readFileSync(got.path).length).toBe(1000);
      expect(ctx.retries).toEqual(["head", "head"]);
      expect(
        ctx.lines.filter((l) => /head .*: transient error .*; retry \d\/4/.test(l)),
        ctx.lines.join("\n"),
      ).toHaveLength(2);
    } finally {
      proxy.server.close();
    }
  });

  it("fetches an http(s) URL with its sha256", async () => {
    const body = "a file behind a URL";
    const server = createServer((req, res) => {
      if (req.url !== "/files/data.txt") res.writeHead(404).end();
      else if (req.method === "HEAD")
        res.writeHead(200, { ETag: '"v1"', "Content-Length": body.length }).end();
      else res.writeHead(200, { ETag: '"v1"' }).end(body);
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const cache = temp("c-");
      const got = await fetchArtifact(
        context(),
        { uri: `${base}/files/data.txt`, sha256: sha256(body) },
        cache,
      );
      expect(readFileSync(got.path, "utf8")).toBe(body);
      // Its ETag (from a HEAD) unchanged: the cached file is used, not downloaded again.
      const again = context();
      const cached = await fetchArtifact(
        again,
        { uri: `${base}/files/data.txt`, sha256: sha256(body) },
        cache,
      );
      expect([cached.cached, again.downloaded()]).toEqual([1, 0]);
      const missing = await failure(fetchArtifact(context(), { uri: `${base}/files/none` }, temp("c-")));
      expect([missing.reason, missing.code]).toEqual(["StorageNotFound", "HTTP 404"]);
    } finally {
      server.close();
    }
  });
});

describe("uploads and checkpoints in a real S3 server", () => {
  it("uploads every file of a directory under a prefix", async () => {
    const dir = temp("mokd-out-");
    mkdirSync(join(dir, "student"), { recursive: true });
    writeFileSync(join(dir, "summary.json"), "{}");
    writeFileSync(join(dir, "student", "model.json"), "{}");
    writeFileSync(join(dir, "student", "weights.bin"), Buffer.alloc(9 * 2 ** 20, 5)); // multipart (8 MiB parts)
    const n = await uploadDirectory(context(), dir, `s3://${BUCKET}/runs/one`);
    expect(n).toBe(3);
    expect(await keys("runs/one/")).toEqual([
      "runs/one/student/model.json",
      "runs/one/student/weights.bin",
      "runs/one/summary.json",
    ]);
    // Multipart: the ETag of a completed multipart upload ends in -<parts>.
    const head = await s3.client.send(
      new HeadObjectCommand({ Bucket: BUCKET, Key: "runs/one/student/weights.bin" }),
    );
    expect(head.ContentLength).toBe(9 * 2 ** 20);
    expect(head.ETag).toMatch(/-2"?$/);
  });

  it("a resume reads only what the pointer names: an upload cut short is never taken for a checkpoint", async () => {
    const uri = `s3://${BUCKET}/ckpt/job-a`;
    const nodeA = temp("mokd-node-a-");
    const writeCheckpoint = (step: number, content: string) => {
      const dir = join(nodeA, `ckpt-${String(step).padStart(10, "0")}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "state.json"), content);
      writeFileSync(join(dir, "manifest.json"), JSON.stringify({ step }));
      return dir;
    };
    const mirror = new CheckpointMirror(context(), uri, nodeA);
    expect(await mirror.restore()).toBeUndefined();
    writeCheckpoint(10, "state at 10");
    // In-progress writes are never uploaded.
    mkdirSync(join(nodeA, ".tmp-ckpt-0000000020-1"));
    writeFileSync(join(nodeA, ".tmp-ckpt-0000000020-1", "state.json"), "partial");
    await mirror.publish({ stage: "student", epoch: 1, step: 10 }, "ckpt-0000000010");

    // Node A is preempted while uploading step 20: its blob reaches the store, the pointer does not move.
    writeCheckpoint(20, "state at 20");
    await put(`ckpt/job-a/blobs/${sha256("state at 20")}`, "state at 20");

    const nodeB = temp("mokd-node-b-");
    const restored = await new CheckpointMirror(context(), uri, nodeB).restore();
    expect(restored).toMatchObject({ stage: "student", epoch: 1, step: 10, checkpoint: "ckpt-0000000010" });
    expect(readdirSync(nodeB)).toEqual(["ckpt-0000000010"]);
    expect(readFileSync(join(nodeB, "ckpt-0000000010", "state.json"), "utf8")).toBe("state at 10");

    // Node B goes on, prunes step 10 and publishes step 30: the pointer moves, step 10's blobs are deleted.
    const mirrorB = new CheckpointMirror(context(), uri, nodeB);
    await mirrorB.restore();
    rmSync(join(nodeB, "ckpt-0000000010"), { recursive: true });
    mkdirSync(join(nodeB, "ckpt-0000000030"));
    writeFileSync(join(nodeB, "ckpt-0000000030", "state.json"), "state at 30");
    await mirrorB.publish({ stage: "student", epoch: 3, step: 30 }, "ckpt-0000000030");
    const pointer = JSON.parse(
      await (
        await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "ckpt/job-a/latest.json" }))
      ).Body!.transformToString(),
    ) as Pointer;
    expect(Object.keys(pointer.files)).toEqual(["ckpt-0000000030/state.json"]);
    const blobs = await keys("ckpt/job-a/blobs/");
    expect(blobs).not.toContain(`ckpt/job-a/blobs/${sha256("state at 10")}`);
    expect(blobs).toContain(`ckpt/job-a/blobs/${sha256("state at 30")}`);

    // A blob altered in the store is caught on restore (sha256), not resumed from.
    await put(`ckpt/job-a/blobs/${sha256("state at 30")}`, "tampered!!!");
    const error = await failure(new CheckpointMirror(context(), uri, temp("mokd-node-c-")).restore());
    expect(error.reason).toBe("ChecksumMismatch");
  });
});

/** An HTTP proxy to `target` that answers 503 SlowDown to the first `failures` requests. */
async function flakyProxy(target: string, failures: number): Promise<{ endpoint: string; server: Server }> {
  const to = new URL(target);
  let seen = 0;
  const server = createServer((req, res) => {
    if (seen++ < failures) {
      res.writeHead(503, { "Content-Type": "application/xml" });
      res.end("<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>");
      return;
    }
    // Same path and headers (Host included: the signature covers it).
    const upstream = request(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.on("error", () => res.destroy());
        r.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return { endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

describe("a private endpoint with its own CA", () => {
  it("is trusted with the CA bundle ($MOKD_STORAGE_CA_BUNDLE), refused without it", async () => {
    const tls = await startS3Server("127.0.0.1", { tls: true });
    try {
      await tls.createBucket("private");
      await tls.client.send(new PutObjectCommand({ Bucket: "private", Key: "x.txt", Body: "over TLS" }));
      const uri = "s3://private/x.txt";
      const trusted = context(tls.endpoint, tls.secretAccessKey, 1, { MOKD_STORAGE_CA_BUNDLE: tls.caFile! });
      const got = await fetchArtifact(trusted, { uri }, temp("c-"));
      expect(readFileSync(got.path, "utf8")).toBe("over TLS");
      const untrusted = await failure(
        fetchArtifact(context(tls.endpoint, tls.secretAccessKey, 1), { uri }, temp("c-")),
      );
      expect(String(untrusted)).toMatch(/self[- ]signed|unable to verify|certificate/i);
    } finally {
      await tls.stop();
    }
  });
});
