// The fetch initializer's progress and its cache, against the real versitygw: the document it serves (bytes done
// of bytes total per artifact, cached or downloaded) while `trainer fetch` runs; a second fetch into the same
// cache (a retry's or a resume's pod mounting the cache claim) downloads 0 bytes; a partial or stale entry is
// never used; a crashed download's leftovers go.
import { createServer } from "node:net";
import { mkdtempSync, readdirSync, readFileSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FetchProgress, StorageSpec, TrainerSpec } from "../../../../api/v1alpha1/index.ts";
import { storageContext } from "../../../../trainer/src/storage/client.ts";
import { fetchInputs } from "../../../../trainer/src/storage/command.ts";
import { cacheDirFor, fetchArtifact, type ArtifactWatch } from "../../../../trainer/src/storage/fetch.ts";
import {
  closeFetchProgress,
  FetchProgressDocument,
  serveFetchProgress,
} from "../../../../trainer/src/storage/fetch-progress.ts";
import { STALE_PART_MS } from "../../../../trainer/src/storage/transfer.ts";
import { startS3Server, type S3Server } from "../../../bed/versitygw.ts";

const BUCKET = "mokd-fetch-progress";
const BIG = Buffer.alloc(1 << 20, 7); // 1 MiB: many stream chunks
let s3: S3Server;
const saved = { ...process.env };

beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
  for (const [key, body] of [
    ["data/images", BIG],
    ["data/labels", "labels"],
    ["teacher.onnx", "onnx bytes"],
  ] as const)
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
  process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
}, 1_800_000);

afterAll(async () => {
  process.env = saved;
  await s3?.stop();
});

const temp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));
const storage = () =>
  StorageSpec.parse({ s3: { endpoint: s3.endpoint, forcePathStyle: true, region: s3.region } });
const context = (lines: string[] = []) =>
  storageContext(storage(), { info: (m) => lines.push(m), warn: (m) => lines.push(m) });

/** A watch that keeps a copy of the document at every report. */
function recording(document: FetchProgressDocument, index: number, seen: FetchProgress[]): ArtifactWatch {
  const watch = document.watch(index);
  const keep = () => seen.push(FetchProgress.parse(document.document()));
  return {
    listed: (...a) => (watch.listed(...a), keep()),
    progressed: (...a) => (watch.progressed(...a), keep()),
    finished: (...a) => (watch.finished(...a), keep()),
  };
}

describe("the fetch progress document", () => {
  it("shows bytes done of bytes total while downloading, then downloaded; a second fetch is a cache hit", async () => {
    const uri = `s3://${BUCKET}/data`;
    const cache = temp("mokd-cache-");
    const first = new FetchProgressDocument([{ field: "data.path", uri }]);
    const seen: FetchProgress[] = [];
    await fetchArtifact(context(), { uri }, cache, recording(first, 0, seen));
    const total = BIG.length + "labels".length;
    const during = seen.map((d) => d.artifacts[0]!).filter((a) => a.state === "fetching");
    expect(during[0]).toMatchObject({ bytesDone: 0, bytesTotal: total, files: 2 });
    expect(during.some((a) => a.bytesDone > 0 && a.bytesDone < total)).toBe(true);
    expect(first.document().artifacts[0]).toEqual({
      field: "data.path",
      uri,
      state: "downloaded",
      files: 2,
      cachedFiles: 0,
      bytesDone: total,
      bytesTotal: total,
      bytesDownloaded: total,
    });

    const again = new FetchProgressDocument([{ field: "data.path", uri }]);
    const hit = await fetchArtifact(context(), { uri }, cache, again.watch(0));
    expect(hit).toMatchObject({ cached: 2, downloaded: 0 });
    expect(again.document().artifacts[0]).toMatchObject({
      state: "cached",
      cachedFiles: 2,
      bytesDone: total,
      bytesDownloaded: 0,
    });
  });

  it("is served at GET /progress (the FetchProgress schema), 404 elsewhere", async () => {
    const document = new FetchProgressDocument([
      { field: "data.path", uri: "s3://b/data/" },
      { field: "teacher.model", uri: "s3://b/teacher.onnx" },
    ]);
    document.watch(0).listed(2, 2048);
    document.watch(0).progressed(1024, 1024, 0);
    const port = await freePort();
    const server = await serveFetchProgress(document, port, () => {});
    try {
      const served = FetchProgress.parse(await readProgress(port));
      expect(served.artifacts).toEqual([
        {
          field: "data.path",
          uri: "s3://b/data/",
          state: "fetching",
          files: 2,
          cachedFiles: 0,
          bytesDone: 1024,
          bytesTotal: 2048,
          bytesDownloaded: 1024,
        },
        expect.objectContaining({ field: "teacher.model", state: "pending", bytesDone: 0 }),
      ]);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
    } finally {
      await closeFetchProgress(server);
    }
    await expect(listenOn(port)).resolves.toBe(true);
  });

  it("`trainer fetch` frees the port when done, and logs its counters: a retry into the same cache downloads 0 bytes", async () => {
    const port = await freePort();
    const spec = TrainerSpec.parse({
      data: { path: `s3://${BUCKET}/data` },
      teacher: { model: `s3://${BUCKET}/teacher.onnx` },
      storage: { s3: { endpoint: s3.endpoint, forcePathStyle: true, region: s3.region } },
    });
    const cache = temp("mokd-cache-");
    const lines: string[] = [];
    await fetchInputs(spec, { info: (m) => lines.push(m), warn: (m) => lines.push(m) }, cache, { port });
    expect(lines.at(-1)).toMatch(/fetch: done: 2 artifact\(s\), 3 file\(s\), 0 cached, \d+ bytes downloaded/);
    expect(lines.filter((l) => /cannot listen/.test(l))).toEqual([]);
    await expect(listenOn(port)).resolves.toBe(true); // closed: the trainer can listen there

    // The retry's pod, mounting the same cache: nothing downloaded.
    const retry: string[] = [];
    await fetchInputs(spec, { info: (m) => retry.push(m), warn: (m) => retry.push(m) }, cache, { port: 0 });
    expect(retry.at(-1)).toMatch(
      /fetch: done: 2 artifact\(s\), 3 file\(s\), 3 cached, 0 bytes downloaded of \d+/,
    );
  });
});

describe("the download cache", () => {
  afterEach(() => {
    process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
  });

  it("never uses a partial entry: a truncated file is downloaded again", async () => {
    const uri = `s3://${BUCKET}/data/images`;
    const cache = temp("mokd-cache-");
    const first = await fetchArtifact(context(), { uri }, cache);
    truncateSync(first.path, 1000);
    const second = await fetchArtifact(context(), { uri }, cache);
    expect(second).toMatchObject({ cached: 0, downloaded: BIG.length });
    expect(readFileSync(second.path).equals(BIG)).toBe(true);
  });

  it("never uses a stale entry: an object changed in the store is downloaded again", async () => {
    const key = "changing.txt";
    const uri = `s3://${BUCKET}/${key}`;
    const cache = temp("mokd-cache-");
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: "version 1" }));
    await fetchArtifact(context(), { uri }, cache);
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: "version 2" }));
    const second = await fetchArtifact(context(), { uri }, cache);
    expect(second).toMatchObject({ cached: 0, downloaded: "version 2".length });
    expect(readFileSync(second.path, "utf8")).toBe("version 2");
  });

  it("drops a dead download's .part file, and leaves a live one (another pod's on a shared claim)", async () => {
    const uri = `s3://${BUCKET}/teacher.onnx`;
    const cache = temp("mokd-cache-");
    const dir = cacheDirFor(cache, uri);
    await fetchArtifact(context(), { uri }, cache);
    writeFileSync(join(dir, "teacher.onnx.dead.part"), "partial");
    writeFileSync(join(dir, "teacher.onnx.live.part"), "partial");
    const old = (Date.now() - STALE_PART_MS - 1000) / 1000;
    utimesSync(join(dir, "teacher.onnx.dead.part"), old, old);
    writeFileSync(join(cache, `${dir.split("/").at(-1)}.fetch.json`), "{}"); // no record: fetched again
    const again = await fetchArtifact(context(), { uri }, cache);
    expect(again.downloaded).toBe("onnx bytes".length);
    expect(readdirSync(dir).sort()).toEqual(["teacher.onnx", "teacher.onnx.live.part"]);
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "0.0.0.0", done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

async function listenOn(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "0.0.0.0", () => server.close(() => resolve(true)));
  });
}

async function readProgress(port: number): Promise<unknown> {
  const response = await fetch(`http://127.0.0.1:${port}/progress`);
  return response.json();
}
