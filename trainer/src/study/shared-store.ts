// The study's shared storage (api/v1alpha1/study-contract.ts: sharedRoot): an s3:// prefix, or a directory every
// pod mounts (a ReadWriteMany claim; locally, the template's output path). Each pod writes its files in its own
// local directory first; `publish` then puts them in the shared storage, the marker file last, so a reader that
// finds the marker finds everything before it. On a shared directory a file appears by an atomic rename.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { sharedLocation, type SharedRoot } from "../../../api/v1alpha1/index.ts";
import type { StorageContext } from "../storage/client.ts";
import { StorageError } from "../storage/errors.ts";
import { fetchArtifact } from "../storage/fetch.ts";
import { getJson, joinKey, listFiles, putJson, s3Location, uploadFile } from "../storage/upload.ts";

export class SharedStore {
  readonly root: SharedRoot;
  private readonly storage: StorageContext | undefined;
  private readonly cacheDir: string;

  /** `storage` is required for an s3:// root; `cacheDir` is where downloaded files go. */
  constructor(root: SharedRoot, storage: StorageContext | undefined, cacheDir: string) {
    if (root.kind === "s3" && !storage) throw new Error(`${root.uri}: no storage context`);
    this.root = root.kind === "path" ? { kind: "path", path: resolve(root.path) } : root;
    this.storage = storage;
    this.cacheDir = cacheDir;
  }

  /** Where `relative` lives: an s3:// URI or a path. */
  location(relative: string): string {
    return sharedLocation(this.root, relative);
  }

  /** Whether writing into `localDir` already writes into the shared directory. */
  isSharedDir(localDir: string, relative: string): boolean {
    return this.root.kind === "path" && resolve(localDir) === resolve(this.root.path, relative);
  }

  /** Puts one local file at `relative`. */
  async putFile(localFile: string, relative: string): Promise<void> {
    if (this.root.kind === "s3") {
      const { bucket, key } = s3Location(this.root.uri);
      await uploadFile(this.storage!, localFile, { bucket, key: joinKey(key, relative) });
      return;
    }
    const target = this.location(relative);
    if (resolve(localFile) === target) return;
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(localFile, `${target}.part`);
    renameSync(`${target}.part`, target);
  }

  /** Puts every file of `localDir` under `relativeDir` (the marker, when given, last). */
  async putDirectory(localDir: string, relativeDir: string, marker?: string): Promise<void> {
    if (this.isSharedDir(localDir, relativeDir)) return;
    const files = listFiles(localDir).filter((f) => f !== marker);
    for (const f of [...files, ...(marker && existsSync(join(localDir, marker)) ? [marker] : [])])
      await this.putFile(join(localDir, f), `${relativeDir}/${f}`);
  }

  /** Writes a small JSON object (atomically: readers see it whole or not at all). */
  async putJson(relative: string, value: unknown): Promise<void> {
    if (this.root.kind === "s3") {
      const { bucket, key } = s3Location(this.root.uri);
      await putJson(this.storage!, { bucket, key: joinKey(key, relative) }, value);
      return;
    }
    const target = this.location(relative);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(`${target}.part`, JSON.stringify(value, null, 2) + "\n");
    renameSync(`${target}.part`, target);
  }

  /** A small JSON object, or undefined when there is none. */
  async getJson<T>(relative: string): Promise<T | undefined> {
    if (this.root.kind === "s3") {
      const { bucket, key } = s3Location(this.root.uri);
      return getJson<T>(this.storage!, { bucket, key: joinKey(key, relative) });
    }
    const file = this.location(relative);
    if (!existsSync(file)) return undefined;
    try {
      return JSON.parse(readFileSync(file, "utf8")) as T;
    } catch {
      throw new StorageError("ChecksumMismatch", file, "not valid JSON");
    }
  }

  /**
   * A local path holding `relative` (downloaded into the cache for s3://, verified against `sha256` and `bytes`).
   * Missing: StorageNotFound naming it; another size or sha256: ChecksumMismatch.
   */
  async localFile(relative: string, expected: { sha256: string; bytes: number }): Promise<string> {
    const uri = this.location(relative);
    let path: string;
    if (this.root.kind === "s3") {
      path = (await fetchArtifact(this.storage!, { uri, sha256: expected.sha256 }, this.cacheDir)).path;
    } else {
      if (!existsSync(uri)) throw new StorageError("StorageNotFound", uri, "not found");
      path = uri;
    }
    const size = statSync(path).size;
    if (size !== expected.bytes)
      throw new StorageError("ChecksumMismatch", uri, `${size} bytes, the manifest says ${expected.bytes}`);
    return path;
  }
}
