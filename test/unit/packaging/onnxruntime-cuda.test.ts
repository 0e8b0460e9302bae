// The GPU trainer image's ONNX Runtime CUDA execution provider (trainer/Dockerfile): from PyPI only, pinned by
// sha256, of onnxruntime-node's own version, placed where the binding loads providers from, and checked at build
// time (files present, every library resolving except the driver's). Running it on CUDA is not verified (no GPU).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseDockerfile } from "../../../scripts/images/dockerfile.ts";
import { ROOT } from "../../../scripts/generate.ts";

const pins = readFileSync(join(ROOT, "scripts/images/onnxruntime-cuda-requirements.txt"), "utf8");
const dockerfile = readFileSync(join(ROOT, "trainer/Dockerfile"), "utf8");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
  allowScripts: Record<string, boolean>;
};

describe("the GPU image's ONNX Runtime CUDA provider", () => {
  it("comes from the onnxruntime-gpu wheel of onnxruntime-node's exact version, every wheel pinned by sha256", () => {
    const lines = pins.split("\n").filter((l) => l.trim() && !l.startsWith("#"));
    expect(lines.every((l) => /^[a-z0-9-]+==\S+ --hash=sha256:[0-9a-f]{64}$/.test(l))).toBe(true);
    const versions = Object.fromEntries(lines.map((l) => l.split(" ")[0]!.split("==")));
    expect(versions["onnxruntime-gpu"]).toBe(pkg.dependencies["onnxruntime-node"]);
    expect(Object.keys(versions).sort()).toEqual(["nvidia-cublas", "nvidia-cuda-runtime", "onnxruntime-gpu"]);
    // The package's own install script (a NuGet download) never runs.
    expect(pkg.allowScripts["onnxruntime-node"]).toBe(false);
  });

  it("is installed with --require-hashes, put beside libonnxruntime.so.1, and its linkage checked by the build", () => {
    const steps = parseDockerfile(dockerfile);
    const runs = steps.filter((i) => i.keyword === "RUN").map((r) => r.args);
    expect(
      runs.some((r) =>
        /pip install --no-deps --require-hashes .*-r \/tmp\/onnxruntime-cuda-requirements.txt/.test(r),
      ),
    ).toBe(true);
    expect(
      steps.some(
        (i) =>
          i.keyword === "COPY" &&
          i.args ===
            "--from=onnxruntime-cuda /opt/onnxruntime-cuda/provider/ ./node_modules/onnxruntime-node/bin/napi-v6/linux/x64/",
      ),
    ).toBe(true);
    const check = runs.find((r) => r.includes("libonnxruntime_providers_cuda.so") && r.includes("ldd"))!;
    expect(check).toContain("test -f $ort/libonnxruntime_providers_cuda.so");
    expect(check).toContain("test -f $ort/libonnxruntime_providers_shared.so");
    expect(check).toContain('grep "not found" | grep -v libcuda.so.1');
    expect(check).toContain(`require('onnxruntime-node/package.json').version`);
  });
});
