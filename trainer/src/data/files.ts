// Reading dataset files: locate a file with or without `.gz`, and gunzip when the content (not the name) says so.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { DataError } from "./errors.ts";

const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;

/** The path of `name` or `name.gz` in `dir`, whichever exists (raw first). */
export function locate(dir: string, name: string): string {
  for (const candidate of [join(dir, name), join(dir, `${name}.gz`)]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new DataError(join(dir, name), `missing file (looked for ${name} and ${name}.gz in ${dir})`);
}

/** The file's bytes, gunzipped if they start with the gzip magic. */
export function readMaybeGzip(file: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new DataError(file, `cannot read: ${(err as Error).message}`);
  }
  if (bytes.length < 2 || bytes[0] !== GZIP_MAGIC_0 || bytes[1] !== GZIP_MAGIC_1) return bytes;
  try {
    return gunzipSync(bytes);
  } catch (err) {
    throw new DataError(file, `gzip data is corrupt (${(err as Error).message})`);
  }
}
