// Checkpoints in object storage that follow the job to any node. The local checkpoint directory (every stage's
// atomic checkpoints, the trained teacher) is mirrored under an s3:// prefix: each file is stored once under its
// content hash (`blobs/<sha256>`), and a pointer object (`latest.json`, one PUT, written last) maps the files of
// the current state to their blobs. A resume reads the pointer and downloads exactly the blobs it names, so an
// upload cut short (preemption, a crash) is never taken for a checkpoint: its blobs are named by no pointer.
// Blobs the new pointer no longer names are deleted after it is written.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { Readable } from "node:stream";
import type { StorageContext } from "./client.ts";
import { withRetry } from "./retry.ts";
import { streamToFile } from "./transfer.ts";
import {
  deleteKeys,
  getJson,
  joinKey,
  listFiles,
  putJson,
  s3Location,
  s3Uri,
  uploadFile,
  type S3Location,
} from "./upload.ts";

export const POINTER = "latest.json";
const POINTER_VERSION = 1;

export interface CheckpointInfo {
  stage: "teacher" | "student";
  epoch: number;
  step: number;
}

export interface Pointer extends CheckpointInfo {
  version: number;
  time: string;
  /** The checkpoint directory the newest checkpoint is in, relative to the mirrored directory. */
  checkpoint: string;
  /** Every file of the state: relative path -> sha256 and size. */
  files: Record<string, { sha256: string; size: number }>;
}

/** Files of a checkpoint directory that are never part of a state: writes in progress. */
const inProgress = (rel: string) => rel.split("/").some((p) => p.startsWith(".tmp-") || p.endsWith(".part"));

async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export class CheckpointMirror {
  readonly uri: string;
  readonly pointerUri: string;
  private readonly ctx: StorageContext;
  private readonly dir: string;
  private readonly root: S3Location;
  /** Blobs known to be in the store. */
  private readonly stored = new Set<string>();
  /** sha256 of local files by path, valid while size and mtime are unchanged. */
  private readonly hashes = new Map<string, { size: number; mtimeMs: number; sha256: string }>();
  private current: Pointer | undefined;

  constructor(ctx: StorageContext, uri: string, localDir: string) {
    this.ctx = ctx;
    this.uri = uri.replace(/\/+$/, "");
    this.dir = localDir;
    this.root = s3Location(this.uri);
    this.pointerUri = `${this.uri}/${POINTER}`;
  }

  private key(name: string): S3Location {
    return { bucket: this.root.bucket, key: joinKey(this.root.key, name) };
  }

  /**
   * Downloads the state the pointer names into the local directory (files already there with the same content
   * are kept). Returns the pointer, or undefined when there is none (a fresh start).
   */
  async restore(): Promise<Pointer | undefined> {
    const pointer = await getJson<Pointer>(this.ctx, this.key(POINTER));
    if (!pointer) {
      this.ctx.info(`checkpoints: none at ${this.pointerUri} (a fresh start)`);
      return undefined;
    }
    if (pointer.version !== POINTER_VERSION)
      throw new Error(`${this.pointerUri}: unknown version ${pointer.version}`);
    let downloaded = 0;
    for (const [rel, { sha256, size }] of Object.entries(pointer.files)) {
      this.stored.add(sha256);
      const local = join(this.dir, rel);
      if (existsSync(local) && (await this.hashOf(rel)) === sha256) continue;
      const blob = this.key(`blobs/${sha256}`);
      await withRetry(
        "download",
        s3Uri(blob),
        async () => {
          const got = await this.ctx.s3().send(new GetObjectCommand({ Bucket: blob.bucket, Key: blob.key }));
          await streamToFile(got.Body as Readable, local, s3Uri(blob), { size, sha256 }, () => {});
        },
        this.ctx.retry,
        this.ctx.observer,
      );
      downloaded++;
    }
    this.current = pointer;
    this.ctx.info(
      `checkpoints: restored ${pointer.stage} step ${pointer.step} (epoch ${pointer.epoch}, ${pointer.time}) from ${this.pointerUri}: ${downloaded} file(s) downloaded`,
    );
    return pointer;
  }

  /** Uploads the directory's current state, then points `latest.json` at it; returns the pointer. */
  async publish(info: CheckpointInfo, checkpointDir: string): Promise<Pointer> {
    mkdirSync(this.dir, { recursive: true });
    const files: Pointer["files"] = {};
    for (const rel of listFiles(this.dir, inProgress)) {
      const sha256 = await this.hashOf(rel);
      const size = statSync(join(this.dir, rel)).size;
      if (!this.stored.has(sha256)) {
        await uploadFile(this.ctx, join(this.dir, rel), this.key(`blobs/${sha256}`));
        this.stored.add(sha256);
      }
      files[rel] = { sha256, size };
    }
    const pointer: Pointer = {
      version: POINTER_VERSION,
      ...info,
      time: new Date().toISOString(),
      checkpoint: checkpointDir,
      files,
    };
    await putJson(this.ctx, this.key(POINTER), pointer);
    const referenced = new Set(Object.values(files).map((f) => f.sha256));
    const stale = Object.values(this.current?.files ?? {})
      .map((f) => f.sha256)
      .filter((h) => !referenced.has(h));
    if (stale.length) {
      await deleteKeys(
        this.ctx,
        this.root.bucket,
        [...new Set(stale)].map((h) => this.key(`blobs/${h}`).key),
      );
      for (const h of stale) this.stored.delete(h);
    }
    this.current = pointer;
    this.ctx.info(`checkpoint ${info.stage} step ${info.step} uploaded: ${this.pointerUri}`);
    return pointer;
  }

  private async hashOf(rel: string): Promise<string> {
    const file = join(this.dir, rel);
    const { size, mtimeMs } = statSync(file);
    const known = this.hashes.get(rel);
    if (known && known.size === size && known.mtimeMs === mtimeMs) return known.sha256;
    const sha256 = await sha256File(file);
    this.hashes.set(rel, { size, mtimeMs, sha256 });
    return sha256;
  }
}
