// Static checks of the Dockerfiles (the images themselves are built and run by test/images). Every COPY source exists
// and survives .dockerignore, installs come from the lockfile without dev dependencies, and every module the
// entrypoint loads at run time is inside the copied directories or a production dependency.
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../../scripts/generate.ts";
import { TF_VERSION } from "../../../scripts/native-tf/pins.ts";
import {
  contextCopySources,
  contextMountSources,
  dockerignorePatterns,
  ignored,
  parseDockerfile,
} from "../../../scripts/images/dockerfile.ts";

const RUNTIME_IMPORT = /^\s*(?:import|export)\s+(?!type\b)(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Every file reachable from `entry` through value imports, and every bare package it imports. */
function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const text = readFileSync(file, "utf8");
    for (const m of [...text.matchAll(RUNTIME_IMPORT), ...text.matchAll(DYNAMIC_IMPORT)]) {
      const spec = m[1]!;
      if (spec.startsWith(".")) queue.push(resolve(dirname(file), spec));
      else if (!spec.startsWith("node:") && !builtinModules.includes(spec)) {
        packages.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
      }
    }
  }
  return { files, packages };
}

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
};
const runtimeDeps = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.optionalDependencies)]);

const images = [
  {
    dockerfile: "trainer/Dockerfile",
    entry: "trainer/src/cli.ts",
    entrypoint: ["node", "trainer/src/cli.ts", "train"],
  },
  {
    dockerfile: "trainer/Dockerfile.cpu",
    entry: "trainer/src/cli.ts",
    entrypoint: ["node", "trainer/src/cli.ts", "train"],
  },
  {
    dockerfile: "operator/Dockerfile",
    entry: "operator/src/main.ts",
    entrypoint: ["node", "operator/src/main.ts"],
  },
];

describe.each(images)("$dockerfile", ({ dockerfile, entry, entrypoint }) => {
  const instructions = parseDockerfile(readFileSync(join(ROOT, dockerfile), "utf8"));
  const finalStage = Math.max(...instructions.map((i) => i.stage));
  const sources = contextCopySources(instructions);
  const mounts = contextMountSources(instructions);

  it("copies only files that exist and that .dockerignore keeps", () => {
    expect(sources.length).toBeGreaterThan(0);
    const patterns = dockerignorePatterns(ROOT);
    for (const src of [...sources, ...mounts]) {
      expect(existsSync(join(ROOT, src)), `${src} does not exist`).toBe(true);
      expect(ignored(src, patterns), `${src} is excluded by .dockerignore`).toBe(false);
    }
  });

  it("installs from the lockfile without dev dependencies, and not in the final stage", () => {
    const installs = instructions.filter((i) => i.keyword === "RUN" && /\bnpm (ci|install)\b/.test(i.args));
    expect(installs.length).toBeGreaterThan(0);
    for (const i of installs) {
      expect(i.args).toMatch(/npm ci\b[^&]*--omit=dev/);
      expect(i.stage).not.toBe(finalStage);
    }
    expect(sources).toContain("package-lock.json");
  });

  it("runs as non-root with the documented entrypoint", () => {
    const last = (k: string) => instructions.filter((i) => i.keyword === k && i.stage === finalStage).at(-1);
    expect(last("USER")?.args).toMatch(/^[1-9][0-9]*(:[0-9]+)?$/);
    expect(JSON.parse(last("ENTRYPOINT")!.args)).toEqual(entrypoint);
  });

  it("copies every module the entrypoint loads, and needs only production packages", () => {
    const copied = sources.filter((s) => !s.startsWith("package"));
    const { files, packages } = importGraph(join(ROOT, entry));
    for (const file of files) {
      const rel = relative(ROOT, file);
      expect(
        copied.some((c) => rel === c || rel.startsWith(`${c}/`)),
        `${rel} is imported at run time but not copied`,
      ).toBe(true);
    }
    for (const p of packages) expect(runtimeDeps, `${p} is not a production dependency`).toContain(p);
  });
});

describe("operator image", () => {
  it("never imports tfjs or ONNX Runtime, so its Dockerfile may uninstall @tensorflow/*, onnxruntime-node, onnx-proto", () => {
    const { packages } = importGraph(join(ROOT, "operator/src/main.ts"));
    expect([...packages].filter((p) => p.startsWith("@tensorflow/") || p.startsWith("onnx"))).toEqual([]);
    expect(packages).toContain("prom-client");
    const dockerfile = readFileSync(join(ROOT, "operator/Dockerfile"), "utf8");
    expect(dockerfile).toMatch(/npm uninstall[^\n]*--omit=optional/);
    expect(dockerfile).toContain("n.startsWith('@tensorflow/') || n.startsWith('onnx')");
    expect(dockerfile).toContain("test ! -e node_modules/onnxruntime-node");
  });
});

const cudaPins = readFileSync(join(ROOT, "scripts/images/cuda12-requirements.txt"), "utf8");

describe("trainer images: ONNX Runtime", () => {
  it.each(["trainer/Dockerfile.cpu", "trainer/Dockerfile"])(
    "%s keeps onnxruntime-node's linux-x64 CPU library only, and fails its build without it",
    (file) => {
      const runs = parseDockerfile(readFileSync(join(ROOT, file), "utf8")).filter((i) => i.keyword === "RUN");
      const install = runs.find((r) => /npm ci --omit=dev --ignore-scripts/.test(r.args))!.args;
      expect(install).toContain(
        "find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 2 -maxdepth 2 ! -path '*/linux/x64' -exec rm -rf {} +",
      );
      expect(install).toContain(
        "test -e node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node",
      );
      // Its install script (a CUDA download from outside the registries) never runs: --ignore-scripts, and
      // package.json's allowScripts says no.
      const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
        allowScripts: Record<string, boolean>;
      };
      expect(pkg.allowScripts["onnxruntime-node"]).toBe(false);
    },
  );
});

describe("trainer images: native TensorFlow", () => {
  it.each([
    ["trainer/Dockerfile.cpu", "--cpu", "tensorflow", "@tensorflow/tfjs-node-gpu"],
    ["trainer/Dockerfile", "--gpu", "tensorflow-gpu", "@tensorflow/tfjs-node"],
  ])(
    "%s installs its backend with scripts/native-tf and fails its build unless it loads",
    (file, flag, backend, other) => {
      const text = readFileSync(join(ROOT, file), "utf8");
      const runs = parseDockerfile(text).filter((i) => i.keyword === "RUN");
      // Optional dependencies stay (npm ci without --omit=optional), no install script runs, no second npm install.
      expect(runs.some((r) => /npm ci --omit=dev --ignore-scripts/.test(r.args))).toBe(true);
      expect(text).not.toMatch(/--omit=optional|npm install/);
      expect(text).toContain(
        `npm uninstall --no-save --omit=dev --ignore-scripts --offline --no-audit --no-fund ${other} `,
      );
      expect(runs.some((r) => r.args === `node scripts/native-tf/install.ts ${flag}`)).toBe(true);
      const last = runs.at(-1)!;
      expect(last.args).toBe(
        `--mount=type=bind,source=scripts/images/check,target=/mnt node /mnt/backend.ts ${backend} "$TF_VERSION"`,
      );
      expect(text).toContain(`ARG TF_VERSION=${TF_VERSION}`);
      expect(contextMountSources(parseDockerfile(text))).toEqual(["scripts/images/check"]);
    },
  );

  it("the GPU image carries CUDA 12 from the pinned NVIDIA wheels, and no CUDA 11", () => {
    const text = readFileSync(join(ROOT, "trainer/Dockerfile"), "utf8");
    for (const t of [text, cudaPins]) expect(t).not.toMatch(/cuda[:-]?11|cu11|cudnn8|11\.2\.2/i);
    const runs = parseDockerfile(text).filter((r) => r.keyword === "RUN");
    expect(
      runs.some((r) =>
        /pip install --no-deps --require-hashes.*-r \/tmp\/cuda12-requirements.txt/.test(r.args),
      ),
    ).toBe(true);
    expect(text).toMatch(/COPY --from=datasets \/usr\/share\/datasets\/fashion-mnist/);
    // The versions tensorflow==2.18.0 pins for `and-cuda` (docs/images.md), each with its sha256.
    const pins = Object.fromEntries(
      [...cudaPins.matchAll(/^(nvidia-[a-z0-9-]+)==(\S+) --hash=sha256:[0-9a-f]{64}$/gm)].map((m) => [
        m[1],
        m[2],
      ]),
    );
    expect(pins).toEqual({
      "nvidia-cuda-runtime-cu12": "12.5.82",
      "nvidia-cublas-cu12": "12.5.3.2",
      "nvidia-cudnn-cu12": "9.3.0.75",
      "nvidia-cufft-cu12": "11.2.3.61",
      "nvidia-curand-cu12": "10.3.6.82",
      "nvidia-cusolver-cu12": "11.6.3.83",
      "nvidia-cusparse-cu12": "12.5.1.3",
      "nvidia-nvjitlink-cu12": "12.5.82",
      "nvidia-cuda-nvrtc-cu12": "12.5.82",
      "nvidia-cuda-cupti-cu12": "12.5.82",
    });
  });
});
