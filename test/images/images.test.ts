// The real images, built here from their Dockerfiles by the project's script (scripts/images/build.ts, cached by
// a hash of their inputs: a warm run with no change only checks hashes) and run under podman: each trainer image
// trains a tiny job to success on its native backend (the GPU image on the CPU: no GPU here), the operator
// image prints its flags and carries no tfjs. Each trainer build already fails when its backend does not load.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/generate.ts";
import { cacheDir, type Manifest } from "../../scripts/images/build.ts";
import { TF_VERSION } from "../../scripts/native-tf/pins.ts";
import { tinyTrainerJob } from "../fixtures/tiny-job.ts";

const HERE = join(ROOT, "scripts", "images");
/** The same container settings the build uses (its storage under the cache, runc, cgroupfs). */
const podmanEnv = {
  ...process.env,
  CONTAINERS_STORAGE_CONF: join(cacheDir(), "config", "storage.conf"),
  CONTAINERS_CONF: join(HERE, "containers.conf"),
  CONTAINERS_REGISTRIES_CONF: join(HERE, "registries.conf"),
};

function podman(args: string[]) {
  return spawnSync("podman", args, { env: podmanEnv, encoding: "utf8", timeout: 300_000 });
}

const IMAGES = ["operator", "trainer-cpu", "trainer-gpu"] as const;
let manifest: Manifest;
let work: string;

beforeAll(() => {
  const r = spawnSync(process.execPath, [join(HERE, "build.ts"), ...IMAGES], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  expect(r.status, "scripts/images/build.ts failed (its last line on stderr says why)").toBe(0);
  manifest = JSON.parse(r.stdout) as Manifest;
  work = mkdtempSync(join(tmpdir(), "mokd-images-"));
  // The images run as UID 1000 / 65532: the mounted folder must be theirs to write.
  chmodSync(work, 0o777);
}, 60 * 60_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("images built from their Dockerfiles", () => {
  it("lists every requested image with its saved archive in the manifest", () => {
    for (const name of IMAGES) {
      const entry = manifest.images[name]!;
      expect(entry.ref).toMatch(/^ghcr\.io\/mokd\//);
      expect(entry.bytes).toBeGreaterThan(100e6);
      // A docker-archive naming exactly this ref (what `ctr images import` and `podman load` read).
      const listed = spawnSync("tar", ["-xOf", entry.tar, "manifest.json"], { encoding: "utf8" });
      expect(listed.status, listed.stderr).toBe(0);
      expect(JSON.parse(listed.stdout)).toMatchObject([{ RepoTags: [entry.ref] }]);
    }
  });

  it("operator image: prints its flags and exits without a cluster", () => {
    const r = podman(["run", "--rm", "--network", "none", manifest.images.operator!.ref, "--help"]);
    const out = r.stdout + r.stderr;
    for (const flag of ["--namespace", "--leader-elect", "--trainer-image", "--log-level"])
      expect(out).toContain(flag);
    expect(r.status, out).toBe(2);
  });

  it("operator image: carries no ML runtime (tfjs, ONNX Runtime)", () => {
    const r = podman([
      "run",
      "--rm",
      "--entrypoint",
      "sh",
      manifest.images.operator!.ref,
      "-c",
      "ls node_modules",
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("@kubernetes");
    expect(r.stdout).not.toContain("@tensorflow");
    expect(r.stdout).not.toContain("onnxruntime");
    expect(r.stdout).not.toContain("onnx-proto");
  });

  it.each([
    ["trainer-cpu", "tensorflow"],
    ["trainer-gpu", "tensorflow-gpu"],
  ] as const)("%s image: trains a tiny job to success on %s", (image, backend) => {
    const dir = join(work, image);
    mkdirSync(dir, { mode: 0o777 });
    chmodSync(dir, 0o777);
    const job = tinyTrainerJob({
      name: "image-check",
      namespace: "default",
      dir: "/work",
      metricsPort: 9400,
      maxTrainSamples: 256,
      epochs: 1,
    });
    writeFileSync(join(dir, "job.json"), JSON.stringify(job));
    const r = podman([
      ...["run", "--rm", "--network", "none", "-v", `${dir}:/work`],
      ...["-e", "MOKD_CONFIG=/work/job.json", "-e", "MOKD_TERMINATION_LOG=/work/termination-log"],
      // Forced: `auto` rightly takes wasm for a job this small (trainer/src/backend/workload.ts).
      ...["-e", `MOKD_BACKEND=${backend}`],
      manifest.images[image]!.ref,
    ]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const result = JSON.parse(readFileSync(join(dir, "termination-log"), "utf8")) as {
      studentAccuracy: number;
    };
    expect(result.studentAccuracy).toBeGreaterThan(0);
    const summary = JSON.parse(readFileSync(join(dir, "output", "summary.json"), "utf8")) as Record<
      string,
      unknown
    >;
    // The run reports the image's native backend and its TensorFlow: no silent fallback to wasm.
    expect(summary).toMatchObject({ backend, tensorflowVersion: TF_VERSION, device: "cpu" });
    // onnxruntime-node is in the image and runs: the ONNX student passed its parity check in it.
    expect(summary).toMatchObject({ exports: { onnx: { status: "written", parity: { passed: true } } } });
    expect(existsSync(join(dir, "output", "student.onnx"))).toBe(true);
  });
});
