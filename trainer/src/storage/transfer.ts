// Streaming one object or file to disk: hashed on the way (md5 for a simple ETag, sha256 when asked), written to a
// `.part` file and renamed only when complete and verified. Memory: the stream's buffers (64 KiB chunks, a few in
// flight), whatever the size. Progress: a log line every PROGRESS_INTERVAL_MS while bytes move.
import { createHash, randomBytes, type Hash } from "node:crypto";
import { createWriteStream, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StorageError } from "./errors.ts";

export const PROGRESS_INTERVAL_MS = 5000;

export const formatBytes = (n: number) =>
  n >= 2 ** 30
    ? `${(n / 2 ** 30).toFixed(2)} GiB`
    : n >= 2 ** 20
      ? `${(n / 2 ** 20).toFixed(1)} MiB`
      : `${(n / 1024).toFixed(1)} KiB`;

/** Bytes done of one artifact (all its files), reported as it goes. */
export class TransferProgress {
  done = 0;
  /** Called after every change of `done` (the fetch initializer's progress document). */
  onChange: (() => void) | undefined;
  private readonly label: string;
  private readonly total: number | undefined;
  private readonly info: (message: string) => void;
  private readonly now: () => number;
  private lastReport: number;
  constructor(label: string, total: number | undefined, info: (message: string) => void, now = Date.now) {
    this.label = label;
    this.total = total;
    this.info = info;
    this.now = now;
    this.lastReport = now();
  }

  add(n: number): void {
    this.done += n;
    this.onChange?.();
    const t = this.now();
    if (t - this.lastReport >= PROGRESS_INTERVAL_MS) {
      this.lastReport = t;
      this.info(`${this.label}: ${this.describe()}`);
    }
  }

  describe(): string {
    if (!this.total) return formatBytes(this.done);
    return `${formatBytes(this.done)} / ${formatBytes(this.total)} (${((this.done / this.total) * 100).toFixed(0)}%)`;
  }
}

export interface Expected {
  /** Bytes the store announced. */
  size?: number;
  /** The object's ETag (quoted or not): checked as an MD5 when it is one (not a multipart ETag). */
  etag?: string;
  sha256?: string;
}

/** An ETag that is the MD5 of the content: 32 hex digits (multipart ETags end in -<parts>). */
export const md5OfEtag = (etag: string | undefined) => {
  const bare = etag?.replace(/^W\//, "").replace(/"/g, "").toLowerCase();
  return bare && /^[0-9a-f]{32}$/.test(bare) ? bare : undefined;
};

function counter(hashes: Hash[], onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      for (const h of hashes) h.update(chunk);
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
}

/** Writes `body` to `file` (via file.part), verifying size, MD5 ETag and sha256; a mismatch is ChecksumMismatch. */
export async function streamToFile(
  body: Readable,
  file: string,
  uri: string,
  expected: Expected,
  onBytes: (n: number) => void,
): Promise<{ size: number; sha256: string }> {
  mkdirSync(dirname(file), { recursive: true });
  // Unique per writer: two pods filling one shared cache claim never write into each other's file.
  const part = `${file}.${randomBytes(6).toString("hex")}.part`;
  const md5 = createHash("md5");
  const sha = createHash("sha256");
  let size = 0;
  try {
    await pipeline(
      body,
      counter([md5, sha], (n) => {
        size += n;
        onBytes(n);
      }),
      createWriteStream(part),
    );
    const sha256 = sha.digest("hex");
    verify(uri, expected, { size, md5: md5.digest("hex"), sha256 });
    renameSync(part, file);
    return { size, sha256 };
  } catch (error) {
    rmSync(part, { force: true });
    throw error;
  }
}

function verify(uri: string, expected: Expected, got: { size: number; md5: string; sha256: string }): void {
  if (expected.size !== undefined && got.size !== expected.size)
    throw new StorageError(
      "ChecksumMismatch",
      uri,
      `size ${got.size} bytes, the store announced ${expected.size}`,
    );
  const md5 = md5OfEtag(expected.etag);
  if (md5 && got.md5 !== md5)
    throw new StorageError("ChecksumMismatch", uri, `MD5 ${got.md5} does not match the ETag ${md5}`);
  if (expected.sha256 && got.sha256 !== expected.sha256)
    throw new StorageError("ChecksumMismatch", uri, `sha256 ${got.sha256}, expected ${expected.sha256}`);
}

/** A `.part` file untouched this long belongs to a download that died (a live one writes every moment). */
export const STALE_PART_MS = 10 * 60_000;

/** Drops the `.part` files of `file` that crashed downloads left (called before a fetch writes it again). */
export function removePart(file: string, now = Date.now()): void {
  const prefix = `${basename(file)}.`;
  let entries: string[];
  try {
    entries = readdirSync(dirname(file));
  } catch {
    return;
  }
  for (const entry of entries) {
    if (!entry.startsWith(prefix) || !entry.endsWith(".part")) continue;
    const path = join(dirname(file), entry);
    const modified = statSync(path, { throwIfNoEntry: false })?.mtimeMs;
    if (modified !== undefined && now - modified >= STALE_PART_MS) rmSync(path, { force: true });
  }
}
