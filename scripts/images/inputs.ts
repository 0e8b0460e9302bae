// The cache key of an image: a hash of everything its build reads from this repository (the Dockerfile, the
// .dockerignore, every file its COPY/ADD instructions and RUN bind mounts take from the context) plus the caller's extra parts (base
// image recipes, build settings). A change anywhere else does not rebuild it.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import {
  contextCopySources,
  contextMountSources,
  dockerignorePatterns,
  ignored,
  parseDockerfile,
} from "./dockerfile.ts";

export function recipeHash(parts: string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(`${p.length}:${p}`);
  return h.digest("hex").slice(0, 16);
}

/** Files under `path` (a file or a directory) that the build context keeps, relative to root, sorted. */
export function contextFiles(root: string, path: string, patterns: string[]): string[] {
  const rel = relative(root, path);
  if (ignored(rel, patterns)) return [];
  if (!statSync(path).isDirectory()) return [rel];
  return readdirSync(path)
    .sort()
    .flatMap((entry) => contextFiles(root, join(path, entry), patterns));
}

/** The files a Dockerfile's build reads from the context, sorted and without duplicates. */
export function imageInputs(root: string, dockerfile: string): string[] {
  const patterns = dockerignorePatterns(root);
  const instructions = parseDockerfile(readFileSync(join(root, dockerfile), "utf8"));
  const sources = [...contextCopySources(instructions), ...contextMountSources(instructions)];
  const files = sources.flatMap((s) => contextFiles(root, join(root, s), patterns));
  return [...new Set([dockerfile, ".dockerignore", ...files])].sort();
}

export function imageInputsHash(root: string, dockerfile: string, extra: string[]): string {
  const h = createHash("sha256");
  for (const e of extra) h.update(`extra ${e.length}:${e}\n`);
  for (const file of imageInputs(root, dockerfile)) {
    const content = readFileSync(join(root, file));
    h.update(`file ${file} ${content.length}\n`);
    h.update(content);
  }
  return h.digest("hex").slice(0, 16);
}
