// Static checks of the Dockerfiles (the images themselves are built and run by test/unit/images). Every COPY source exists
// and survives .dockerignore, installs come from the lockfile without dev dependencies, and every module the
// entrypoint loads at run time is inside the copied directories or a production dependency.
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../../api/generate.ts";
import {
  contextCopySources,
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

  it("copies only files that exist and that .dockerignore keeps", () => {
    expect(sources.length).toBeGreaterThan(0);
    const patterns = dockerignorePatterns(ROOT);
    for (const src of sources) {
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
  it("never imports tfjs, so its Dockerfile may uninstall @tensorflow/*", () => {
    const { packages } = importGraph(join(ROOT, "operator/src/main.ts"));
    expect([...packages].filter((p) => p.startsWith("@tensorflow/"))).toEqual([]);
    expect(packages).toContain("prom-client");
    expect(readFileSync(join(ROOT, "operator/Dockerfile"), "utf8")).toMatch(
      /npm uninstall[^\n]*--omit=optional/,
    );
  });
});

describe("trainer GPU image", () => {
  const text = readFileSync(join(ROOT, "trainer/Dockerfile"), "utf8");
  it("uses the CUDA 11.2 / cuDNN 8 runtime that tfjs-node-gpu 4.x links against, and ships Fashion-MNIST", () => {
    expect(text).toContain("nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04");
    expect(text).toMatch(/COPY --from=node \/usr\/local\/bin\/node/);
    expect(text).toMatch(/dataset-fashion-mnist/);
    expect(text).toMatch(/COPY --from=datasets \/usr\/share\/datasets\/fashion-mnist/);
  });
});
