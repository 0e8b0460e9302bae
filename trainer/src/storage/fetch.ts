// The initializer: resolves an artifact URI to a local path. s3:// objects and prefixes and http(s) files are
// downloaded into a cache directory keyed by the URI, verified (size, MD5 ETag, sha256 when given) and recorded
// (ETag and size per file), so a second fetch of an unchanged artifact — the trainer after the init container, a
// retry in the same pod, a local re-run — checks the store and downloads nothing. A tfjs model.json brings the
// weight files its manifest names. Local paths are returned unchanged. The cache may be a volume claim that
// outlives the pod (spec.storage.cache): an entry is used only when its record, its size on disk and the store's
// size and ETag (and a given sha256) all agree, so a partial or stale file is downloaded again.
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { basename, join, posix } from "node:path";
import { Readable } from "node:stream";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { parseArtifactUri } from "../../../api/v1alpha1/index.ts";
import type { StorageContext } from "./client.ts";
import { classify, errorCode, StorageError } from "./errors.ts";
import { withRetry } from "./retry.ts";
import { formatBytes, removePart, streamToFile, TransferProgress } from "./transfer.ts";

export interface FetchRequest {
  uri: string;
  /** sha256 of the file (a single object or https file). */
  sha256?: string;
}

/** One remote file of an artifact and where it goes, relative to the artifact's cache directory. */
interface RemoteFile {
  uri: string;
  s3?: { bucket: string; key: string };
  relative: string;
  size?: number;
  etag?: string;
  open(): Promise<{ body: Readable; size?: number; etag?: string }>;
}

/** What a completed fetch downloaded: the cache record (`<key>.fetch.json`). */
interface FetchRecord {
  uri: string;
  /** Local path the URI resolved to, relative to the cache directory ("" for a prefix). */
  resolved: string;
  files: Record<string, { size: number; etag?: string; sha256: string }>;
}

export interface FetchResult {
  path: string;
  files: number;
  bytes: number;
  /** Files found in the cache, unchanged in the store: not downloaded again. */
  cached: number;
  /** Bytes downloaded (0: everything came from the cache). */
  downloaded: number;
}

/** Hears how one artifact's fetch goes (the initializer's progress document, storage/fetch-progress.ts). */
export interface ArtifactWatch {
  /** Listed: its files and their bytes (undefined when a size is unknown). */
  listed(files: number, bytesTotal: number | undefined): void;
  /** Bytes in the cache so far (found there plus downloaded) and bytes downloaded. */
  progressed(bytesDone: number, bytesDownloaded: number, cachedFiles: number): void;
  finished(result: FetchResult): void;
}

const cacheKey = (uri: string) => createHash("sha256").update(uri).digest("hex").slice(0, 32);

/** Where a remote URI's files go under `cacheRoot` (the same for `trainer fetch` and the trainer). */
export const cacheDirFor = (cacheRoot: string, uri: string) => join(cacheRoot, cacheKey(uri));

/** The record of a completed fetch; a missing or damaged one (not a record): none, so everything is fetched. */
function readRecord(file: string): FetchRecord | undefined {
  try {
    const record = JSON.parse(readFileSync(file, "utf8")) as Partial<FetchRecord> | null;
    return record && typeof record.files === "object" && record.files !== null
      ? (record as FetchRecord)
      : undefined;
  } catch {
    return undefined;
  }
}

const sizeOf = (file: string) => statSync(file, { throwIfNoEntry: false })?.size;

/** Resolves `request.uri` to a local path, downloading what is not already in `cacheRoot`. */
export async function fetchArtifact(
  ctx: StorageContext,
  request: FetchRequest,
  cacheRoot: string,
  watch?: ArtifactWatch,
): Promise<FetchResult> {
  const parsed = parseArtifactUri(request.uri);
  if (parsed.kind === "local") return { path: parsed.path, files: 0, bytes: 0, cached: 0, downloaded: 0 };
  const dir = cacheDirFor(cacheRoot, request.uri);
  const recordFile = `${dir}.fetch.json`;
  const previous = readRecord(recordFile);
  const { files, resolved } =
    parsed.kind === "s3"
      ? await listS3(ctx, parsed.bucket, parsed.key, request.uri)
      : await httpFiles(ctx, parsed.url);
  const single = files.length === 1 && resolved !== "";
  if (request.sha256 && !single)
    throw new StorageError(
      "ChecksumMismatch",
      request.uri,
      "a sha256 is given, but the URI names a prefix, not one file",
    );
  const record: FetchRecord = { uri: request.uri, resolved, files: {} };
  const total = files.every((f) => f.size !== undefined) ? files.reduce((s, f) => s + f.size!, 0) : undefined;
  const progress = new TransferProgress(`fetch ${request.uri}`, total, ctx.info);
  const started = Date.now();
  let cached = 0;
  let cachedBytes = 0;
  watch?.listed(files.length, total);
  progress.onChange = () => watch?.progressed(cachedBytes + progress.done, progress.done, cached);
  const queue = [...files];
  for (let file = queue.shift(); file; file = queue.shift()) {
    const sha256 = single && file === files[0] ? request.sha256 : undefined;
    const got = await fetchFile(ctx, file, dir, previous, sha256, progress);
    if (got.cached) {
      cached++;
      cachedBytes += got.entry.size;
      progress.onChange();
    }
    record.files[file.relative] = got.entry;
    queue.push(...companions(ctx, file, join(dir, file.relative), record));
  }
  mkdirSync(cacheRoot, { recursive: true });
  // Unique per writer (a shared cache claim), renamed into place: a reader sees a whole record or none.
  const tmp = `${recordFile}.${randomBytes(6).toString("hex")}.tmp`;
  writeFileSync(tmp, JSON.stringify(record, null, 2));
  renameSync(tmp, recordFile);
  const n = Object.keys(record.files).length;
  const bytes = Object.values(record.files).reduce((s, f) => s + f.size, 0);
  ctx.info(
    `fetched ${request.uri}: ${n} file(s), ${formatBytes(bytes)} (${cached} cached, ${formatBytes(progress.done)} downloaded) in ${((Date.now() - started) / 1000).toFixed(1)} s -> ${join(dir, resolved)}`,
  );
  const result = { path: join(dir, resolved), files: n, bytes, cached, downloaded: progress.done };
  watch?.finished(result);
  return result;
}

async function fetchFile(
  ctx: StorageContext,
  file: RemoteFile,
  dir: string,
  previous: FetchRecord | undefined,
  sha256: string | undefined,
  progress: TransferProgress,
): Promise<{ cached: boolean; entry: FetchRecord["files"][string] }> {
  const local = join(dir, file.relative);
  const known = previous?.files[file.relative];
  const unchanged =
    known &&
    sizeOf(local) === known.size &&
    (file.size === undefined || file.size === known.size) &&
    (file.etag === undefined || file.etag === known.etag) &&
    (sha256 === undefined || sha256 === known.sha256);
  if (unchanged && (file.etag !== undefined || file.size !== undefined))
    return { cached: true, entry: known };
  removePart(local);
  const entry = await withRetry(
    "download",
    file.uri,
    async () => {
      const { body, size, etag } = await file.open();
      let moved = 0;
      try {
        const seenEtag = etag ?? file.etag;
        // An S3 ETag without a part count is the content's MD5; a web server's ETag is only a version tag.
        const expected = { size: size ?? file.size, ...(file.s3 ? { etag: seenEtag } : {}), sha256 };
        const done = await streamToFile(body, local, file.uri, expected, (n) => {
          moved += n;
          progress.add(n);
        });
        ctx.bytes?.("download", done.size);
        return { size: done.size, sha256: done.sha256, ...(seenEtag ? { etag: seenEtag } : {}) };
      } catch (error) {
        progress.done -= moved; // a retry starts the file again
        progress.onChange?.();
        throw error;
      }
    },
    ctx.retry,
    ctx.observer,
  );
  return { cached: false, entry };
}

/** The objects of an S3 URI: the object itself, else every object under `key/` (or under `key` ending in /). */
async function listS3(
  ctx: StorageContext,
  bucket: string,
  key: string,
  uri: string,
): Promise<{ files: RemoteFile[]; resolved: string }> {
  if (key !== "" && !key.endsWith("/")) {
    const head = await headObject(ctx, bucket, key, uri);
    if (head)
      return { files: [s3File(ctx, bucket, key, posix.basename(key), head)], resolved: posix.basename(key) };
  }
  const prefix = key === "" || key.endsWith("/") ? key : `${key}/`;
  const files: RemoteFile[] = [];
  let token: string | undefined;
  do {
    const page = await withRetry(
      "list",
      uri,
      () =>
        ctx.s3().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token })),
      ctx.retry,
      ctx.observer,
    );
    for (const o of page.Contents ?? []) {
      if (!o.Key || o.Key.endsWith("/")) continue; // "directory" markers
      const relative = o.Key.slice(prefix.length);
      if (relative.split("/").some((p) => p === ".." || p === "." || p === "")) continue;
      files.push(s3File(ctx, bucket, o.Key, relative, { size: o.Size, etag: o.ETag }));
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  if (files.length === 0)
    throw new StorageError(
      "StorageNotFound",
      uri,
      "not found: no object with this key and none under it",
      "NoSuchKey",
    );
  return { files, resolved: "" };
}

async function headObject(
  ctx: StorageContext,
  bucket: string,
  key: string,
  uri: string,
): Promise<{ size?: number; etag?: string } | undefined> {
  try {
    const head = await withRetry(
      "head",
      uri,
      () => ctx.s3().send(new HeadObjectCommand({ Bucket: bucket, Key: key })),
      ctx.retry,
      ctx.observer,
    );
    return { size: head.ContentLength, etag: head.ETag };
  } catch (error) {
    // No such object: maybe a prefix (a missing bucket shows when listing it).
    if (classify(error) === "StorageNotFound") return undefined;
    if (error instanceof StorageError && error.code?.startsWith("HTTP "))
      throw await withS3Code(ctx, bucket, key, error);
    throw error;
  }
}

/**
 * A HEAD's error response has no body, so no S3 error code: a one-byte ranged GET of the same key gets it (e.g.
 * InvalidAccessKeyId vs SignatureDoesNotMatch vs AccessDenied), for the message.
 */
async function withS3Code(
  ctx: StorageContext,
  bucket: string,
  key: string,
  error: StorageError,
): Promise<StorageError> {
  try {
    await ctx.s3().send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: "bytes=0-0" }));
  } catch (detailed) {
    const code = errorCode(detailed);
    if (code && classify(detailed) === error.reason)
      return new StorageError(error.reason, error.uri, error.detail, code);
  }
  return error;
}

function s3File(
  ctx: StorageContext,
  bucket: string,
  key: string,
  relative: string,
  meta: { size?: number; etag?: string },
): RemoteFile {
  const uri = `s3://${bucket}/${key}`;
  return {
    uri,
    s3: { bucket, key },
    relative,
    ...(meta.size !== undefined ? { size: meta.size } : {}),
    ...(meta.etag ? { etag: meta.etag } : {}),
    open: async () => {
      const got = await ctx.s3().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if (!got.Body) throw new StorageError("StorageNotFound", uri, "the store returned no body");
      return { body: got.Body as Readable, size: got.ContentLength, etag: got.ETag };
    },
  };
}

/** An error shaped like the SDK's, so classify() reads HTTP statuses of plain fetches the same way. */
function httpError(url: string, status: number): Error {
  return Object.assign(new Error(`GET ${url}: HTTP ${status}`), {
    name: `HTTP ${status}`,
    $metadata: { httpStatusCode: status },
  });
}

function httpFile(url: string, relative: string): RemoteFile {
  return {
    uri: url,
    relative,
    open: async () => {
      const response = await fetch(url, { redirect: "follow" });
      if (!response.ok || !response.body) throw httpError(url, response.status);
      const length = response.headers.get("content-length");
      return {
        body: Readable.fromWeb(response.body as import("node:stream/web").ReadableStream),
        ...(length ? { size: Number(length) } : {}),
      };
    },
  };
}

/**
 * An http(s) URL: one file, named after the URL's last path segment. A HEAD first gives its ETag and size (when
 * the server sends them), so an unchanged file in the cache is not downloaded again.
 */
async function httpFiles(
  ctx: StorageContext,
  url: string,
): Promise<{ files: RemoteFile[]; resolved: string }> {
  const name = basename(new URL(url).pathname) || "download";
  const file = httpFile(url, name);
  const head = await withRetry(
    "head",
    url,
    async () => {
      const response = await fetch(url, { method: "HEAD", redirect: "follow" });
      if (response.status === 405 || response.status === 501) return undefined; // no HEAD: GET decides
      if (!response.ok) throw httpError(url, response.status);
      return response.headers;
    },
    ctx.retry,
    ctx.observer,
  );
  const etag = head?.get("etag") ?? undefined;
  const length = head?.get("content-length");
  return {
    files: [{ ...file, ...(etag ? { etag } : {}), ...(length ? { size: Number(length) } : {}) }],
    resolved: name,
  };
}

/** The weight files a downloaded tfjs model.json names, as siblings of its URI (not yet fetched). */
function companions(ctx: StorageContext, file: RemoteFile, local: string, record: FetchRecord): RemoteFile[] {
  if (!file.relative.endsWith(".json") || record.resolved === "" || !existsSync(local)) return [];
  let manifest: { weightsManifest?: { paths?: string[] }[] };
  try {
    manifest = JSON.parse(readFileSync(local, "utf8")) as typeof manifest;
  } catch {
    return [];
  }
  const paths = (manifest.weightsManifest ?? []).flatMap((g) => g.paths ?? []);
  const dir = posix.dirname(file.relative);
  return paths
    .map((p) => ({ p, relative: posix.normalize(posix.join(dir, p)) }))
    .filter(({ relative }) => !relative.startsWith("..") && !(relative in record.files))
    .map(({ p, relative }) =>
      file.s3
        ? s3File(
            ctx,
            file.s3.bucket,
            posix.normalize(posix.join(posix.dirname(file.s3.key), p)),
            relative,
            {},
          )
        : httpFile(new URL(p, file.uri).toString(), relative),
    );
}
