// Uploads: one file with lib-storage's Upload (multipart above 8 MiB: at most queueSize x partSize = 16 MiB in
// memory per file, streamed from disk), a whole directory under an s3:// prefix, and small JSON objects.
import { createReadStream, readdirSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { parseArtifactUri } from "../../../api/v1alpha1/index.ts";
import type { StorageContext } from "./client.ts";
import { classify, StorageError } from "./errors.ts";
import { withRetry } from "./retry.ts";
import { formatBytes, TransferProgress } from "./transfer.ts";

const PART_SIZE = 8 * 2 ** 20;
const QUEUE_SIZE = 2;

export interface S3Location {
  bucket: string;
  key: string;
}

/** An s3:// URI as bucket and key (the schema only lets s3:// prefixes reach here). */
export function s3Location(uri: string): S3Location {
  const parsed = parseArtifactUri(uri);
  if (parsed.kind !== "s3") throw new Error(`${uri}: not an s3:// URI`);
  return { bucket: parsed.bucket, key: parsed.key };
}

/** `prefix` joined with `name` as an S3 key (no doubled or leading slash). */
export const joinKey = (prefix: string, name: string) =>
  prefix ? `${prefix.replace(/\/+$/, "")}/${name}` : name;
export const s3Uri = (l: S3Location) => `s3://${l.bucket}/${l.key}`;

/** Uploads one file; the body is re-opened on each retry. */
export async function uploadFile(
  ctx: StorageContext,
  file: string,
  to: S3Location,
  onBytes?: (n: number) => void,
): Promise<void> {
  const uri = s3Uri(to);
  await withRetry(
    "upload",
    uri,
    async () => {
      const upload = new Upload({
        client: ctx.s3(),
        params: { Bucket: to.bucket, Key: to.key, Body: createReadStream(file) },
        partSize: PART_SIZE,
        queueSize: QUEUE_SIZE,
        leavePartsOnError: false,
      });
      let last = 0;
      upload.on("httpUploadProgress", (p) => {
        if (p.loaded !== undefined && p.loaded > last) {
          onBytes?.(p.loaded - last);
          last = p.loaded;
        }
      });
      await upload.done();
    },
    ctx.retry,
    ctx.observer,
  );
  ctx.bytes?.("upload", statSync(file).size);
}

/** Every regular file under `dir`, as paths relative to it with '/' separators. */
export function listFiles(dir: string, skip: (relativePath: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      const rel = relative(dir, full).split(sep).join("/");
      if (skip(rel)) continue;
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) out.push(rel);
    }
  };
  walk(dir);
  return out.sort();
}

/** Uploads every file of `dir` under the s3:// prefix `uri` (keeping relative paths); returns their count. */
export async function uploadDirectory(ctx: StorageContext, dir: string, uri: string): Promise<number> {
  const to = s3Location(uri);
  const files = listFiles(dir);
  const total = files.reduce((s, f) => s + statSync(join(dir, f)).size, 0);
  const progress = new TransferProgress(`upload ${uri}`, total, ctx.info);
  const started = Date.now();
  for (const f of files) {
    await uploadFile(ctx, join(dir, f), { bucket: to.bucket, key: joinKey(to.key, f) }, (n) =>
      progress.add(n),
    );
  }
  ctx.info(
    `uploaded ${dir} -> ${uri}: ${files.length} file(s), ${formatBytes(total)} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return files.length;
}

/** Writes a small JSON object (one PUT: readers see the old or the new one, never a part). */
export async function putJson(ctx: StorageContext, to: S3Location, value: unknown): Promise<void> {
  const uri = s3Uri(to);
  await withRetry(
    "upload",
    uri,
    () =>
      new Upload({
        client: ctx.s3(),
        params: {
          Bucket: to.bucket,
          Key: to.key,
          Body: JSON.stringify(value),
          ContentType: "application/json",
        },
      }).done(),
    ctx.retry,
    ctx.observer,
  );
}

/** Reads a small JSON object; undefined when there is none. */
export async function getJson<T>(ctx: StorageContext, from: S3Location): Promise<T | undefined> {
  const uri = s3Uri(from);
  try {
    return await withRetry(
      "download",
      uri,
      async () => {
        const got = await ctx.s3().send(new GetObjectCommand({ Bucket: from.bucket, Key: from.key }));
        const text = (await got.Body?.transformToString("utf8")) ?? "";
        try {
          return JSON.parse(text) as T;
        } catch {
          throw new StorageError("ChecksumMismatch", uri, "not valid JSON");
        }
      },
      ctx.retry,
      ctx.observer,
    );
  } catch (error) {
    if (
      classify(error) === "StorageNotFound" &&
      !(error instanceof StorageError && error.code === "NoSuchBucket")
    )
      return undefined;
    throw error;
  }
}

export async function deleteKeys(ctx: StorageContext, bucket: string, keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    await withRetry(
      "delete",
      `s3://${bucket}`,
      () =>
        ctx.s3().send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        ),
      ctx.retry,
      ctx.observer,
    );
  }
}

/**
 * Checks at the start that an upload destination's bucket exists and the credentials may list it, so wrong
 * credentials or a missing bucket fail the run in seconds rather than after training (a write permission
 * missing on its own still shows only at the upload).
 */
export async function checkDestination(ctx: StorageContext, uri: string): Promise<void> {
  const { bucket, key } = s3Location(uri);
  await withRetry(
    "list",
    uri,
    () => ctx.s3().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key, MaxKeys: 1 })),
    ctx.retry,
    ctx.observer,
  );
}
