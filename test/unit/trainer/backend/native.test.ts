// The native backend is really native: scripts/native-tf/install.ts (run by `npm test` first) put TensorFlow
// 2.18.0 under @tensorflow/tfjs-node, and the trainer loads it, not a silent fallback. Also auto's rule, the
// GPU check and what a run reports about its backend.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import util, { promisify } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../../api/v1alpha1/index.ts";
import { TrainerMetric } from "../../../../api/metrics.ts";
import {
  autoOrder,
  BackendUnavailableError,
  checkGpu,
  selectBackend,
  type SelectedBackend,
} from "../../../../trainer/src/backend/index.ts";
import { placementCounts } from "../../../../trainer/src/diagnostics/gpu-check.ts";
import { nativeUnavailableReason } from "../../../../trainer/src/backend/native.ts";
import {
  forwardMacsPerSample,
  runWorkload,
  WASM_BELOW_FORWARD_MACS_PER_BATCH,
} from "../../../../trainer/src/backend/workload.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import { runJob } from "../../../../trainer/src/engine/run.ts";
import { renderReport } from "../../../../trainer/src/report/html.ts";
import { TrainerMetrics } from "../../../../trainer/src/telemetry/metrics.ts";
import { tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

const PACKAGE_LIB = join("node_modules", "@tensorflow", "tfjs-node", "lib", "napi-v8");
type LegacyUtil = { isNullOrUndefined?: unknown; isArray?: unknown };

describe("the native backend (tfjs-node with libtensorflow 2.18.0)", () => {
  it("loads for real: TF 2.18.0 reported, the binding and libtensorflow mapped into this process", async () => {
    // Importing the backend module (above) must not have patched node:util: only loading a native package does.
    expect((util as LegacyUtil).isNullOrUndefined).toBeUndefined();
    const selected = await selectBackend("tensorflow", () => {});
    expect(selected).toMatchObject({ choice: "tensorflow", tfBackend: "tensorflow", device: "cpu" });
    expect(selected.tensorflowVersion).toBe("2.18.0");
    expect(selected.kernels).toEqual([]); // the project's gradient kernels are for cpu/wasm only
    expect(tf.backend().constructor.name).toBe("NodeJSKernelBackend");
    const maps = readFileSync("/proc/self/maps", "utf8");
    expect(maps).toContain(join(PACKAGE_LIB, "tfjs_binding.node"));
    expect(maps).toContain(join(PACKAGE_LIB, "libtensorflow_cc.so.2"));
    const marker = JSON.parse(readFileSync(join(PACKAGE_LIB, "mokd-native-tf.json"), "utf8")) as {
      tensorflow: string;
    };
    expect(marker.tensorflow).toBe("2.18.0");
    expect(typeof (util as LegacyUtil).isNullOrUndefined).toBe("function");
    const product = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]]));
    expect(Array.from(product.dataSync())).toEqual([11]);
  });

  it("its Step replacement (every ReLU gradient) gives tfjs' values: 1 above 0, else alpha, NaN for NaN", () => {
    const x = tf.tensor1d([-2, -0, 0, 1e-30, 3, NaN]);
    expect(Array.from(tf.step(x).dataSync())).toEqual([0, 0, 0, 1, 1, NaN]);
    expect(Array.from(tf.step(x, 0.5).dataSync())).toEqual([0.5, 0.5, 0.5, 1, 1, NaN]); // stock kernel
    const grad = tf.grad((v: tf.Tensor) => tf.relu(v).sum())(tf.tensor1d([-1, 2, 0]));
    expect(Array.from(grad.dataSync())).toEqual([0, 1, 0]);
  });

  it("auto takes it when no workload says otherwise; a second native library is refused", async () => {
    expect((await selectBackend("auto", () => {})).choice).toBe("tensorflow");
    const forced = selectBackend("tensorflow-gpu", () => {});
    await expect(forced).rejects.toThrow(BackendUnavailableError);
    await expect(forced).rejects.toThrow(/tfjs-node is already loaded/);
    await expect(forced).rejects.toBeInstanceOf(ConfigError); // so the CLI exits 2 (BadConfig)
  });

  it("a whole run reports the backend and TensorFlow version in summary, report and metrics", async () => {
    const out = mkdtempSync(join(tmpdir(), "mokd-native-"));
    const config = parseConfig(tinyJob(writeTinyIdx(), out, { epochs: 1 }), "test", {});
    const result = await runJob({ config, backend: "tensorflow", log: { info: () => {}, warn: () => {} } });
    expect(result.summary).toMatchObject({
      backend: "tensorflow",
      tensorflowVersion: "2.18.0",
      device: "cpu",
    });
    const saved = JSON.parse(readFileSync(join(result.outputPath, "summary.json"), "utf8")) as object;
    expect(saved).toMatchObject({ backend: "tensorflow", tensorflowVersion: "2.18.0" });
    const html = renderReport(result, config, join(result.outputPath, "metrics.jsonl"));
    expect(html).toContain("tensorflow (TensorFlow 2.18.0), ops on cpu");
    const metrics = new TrainerMetrics("j", "n");
    metrics.backend("tensorflow", "2.18.0", "cpu");
    expect(await metrics.registry.metrics()).toMatch(
      new RegExp(
        `${TrainerMetric.backendInfo}\\{backend="tensorflow",tensorflow_version="2.18.0",device="cpu"`,
      ),
    );
  });
});

describe("a native package without its backend", () => {
  it("is reported with the command that installs it, before anything is imported", () => {
    const dir = mkdtempSync(join(tmpdir(), "mokd-no-binding-"));
    // "tensorflow": the package this file has loaded (another one would be refused as a second library first).
    expect(nativeUnavailableReason("tensorflow", () => dir)).toBe(
      "@tensorflow/tfjs-node has no native backend (run npm run native-tf)",
    );
    expect(nativeUnavailableReason("tensorflow", () => undefined)).toMatch(/not installed \(run npm ci\)/);
  });
});

describe("auto's rule", () => {
  const inputShape = [28, 28, 1] as const;
  const example = {
    teacher: { architecture: "cnn", width: 16, depth: 2, hiddenUnits: 64 },
    student: { architecture: "mlp", width: 64, depth: 1, hiddenUnits: 32 },
    training: { batchSize: 64 },
  } as const;

  it("counts forward multiply-adds of the built-in models", () => {
    expect(forwardMacsPerSample(example.student, inputShape, 10)).toBe(784 * 64 + 64 * 32 + 32 * 10);
    const conv = 28 * 28 * 9 * 16 + 14 * 14 * 9 * 16 * 32;
    expect(forwardMacsPerSample(example.teacher, inputShape, 10)).toBe(conv + 7 * 7 * 32 * 64 + 64 * 10);
  });

  it("sizes a run by its largest trained model: the example's teacher, unless the teacher is loaded", () => {
    const trained = runWorkload(example, inputShape, 10);
    expect(trained.model).toBe("teacher");
    expect(trained.forwardMacsPerBatch).toBeGreaterThan(WASM_BELOW_FORWARD_MACS_PER_BATCH);
    const loaded = runWorkload({ ...example, teacher: { ...example.teacher, model: "/t" } }, inputShape, 10);
    expect(loaded.model).toBe("student");
    expect(loaded.forwardMacsPerBatch).toBeLessThan(WASM_BELOW_FORWARD_MACS_PER_BATCH);
  });

  it("orders native before wasm for large runs, wasm first for small ones, a visible GPU always first", () => {
    const small = { forwardMacsPerBatch: WASM_BELOW_FORWARD_MACS_PER_BATCH - 1, model: "student" };
    const large = { forwardMacsPerBatch: WASM_BELOW_FORWARD_MACS_PER_BATCH, model: "teacher" };
    expect(autoOrder(false)).toEqual(["tensorflow", "tensorflow-gpu", "wasm", "cpu"]);
    expect(autoOrder(false, large)).toEqual(["tensorflow", "tensorflow-gpu", "wasm", "cpu"]);
    expect(autoOrder(false, small)).toEqual(["wasm", "tensorflow", "tensorflow-gpu", "cpu"]);
    expect(autoOrder(true, small)).toEqual(["tensorflow-gpu", "wasm", "tensorflow", "cpu"]);
    expect(autoOrder(true, large)).toEqual(["tensorflow-gpu", "tensorflow", "wasm", "cpu"]);
  });
});

describe("a pod that asked for GPUs", () => {
  const onCpu: SelectedBackend = {
    choice: "tensorflow-gpu",
    tfBackend: "tensorflow",
    kernels: [],
    tensorflowVersion: "2.18.0",
    device: "cpu",
  };

  it("fails (BadConfig, runtime.gpus) when a GPU is visible but TensorFlow runs on the CPU", () => {
    const check = () => checkGpu(onCpu, 1, () => {}, true);
    expect(check).toThrow(BackendUnavailableError);
    expect(check).toThrow(/runtime\.gpus: 1 GPU\(s\) requested and an NVIDIA GPU is visible/);
  });

  it("only warns when no GPU is visible at all, and says nothing when ops are on the GPU", () => {
    const logs: string[] = [];
    checkGpu(onCpu, 1, (m) => logs.push(m), false);
    checkGpu({ ...onCpu, device: "gpu" }, 1, (m) => logs.push(m), true);
    expect(logs).toEqual([
      "warning: runtime.gpus is 1 but no NVIDIA GPU is visible in this container: " +
        "tensorflow-gpu (TensorFlow 2.18.0) runs its ops on the CPU",
    ]);
  });
});

describe("trainer gpu-check", () => {
  it("reads TensorFlow's placement log", () => {
    const log =
      "I execute.cc:1746] Executing op _MklBatchMatMulV2 in device /job:localhost/replica:0/task:0/device:CPU:0\n" +
      "I execute.cc:1746] Executing op Relu in device /job:localhost/replica:0/task:0/device:GPU:0\n" +
      "I execute.cc:1225] Placer place op [Conv2D] on device: /job:localhost/replica:0/task:0/device:CPU:0\n";
    expect(placementCounts(log)).toEqual(
      new Map([
        ["/job:localhost/replica:0/task:0/device:CPU:0", 1],
        ["/job:localhost/replica:0/task:0/device:GPU:0", 1],
      ]),
    );
  });

  it("prints the backend, where TensorFlow placed the ops and samples/s; --require-gpu fails on the CPU", async () => {
    const run = (extra: string[]) =>
      promisify(execFile)(
        process.execPath,
        [
          "trainer/src/cli.ts",
          "gpu-check",
          "--backend",
          "tensorflow",
          "--seconds",
          "0",
          "--batch",
          "4",
          ...extra,
        ],
        { maxBuffer: 16 << 20 },
      );
    const { stdout } = await run([]);
    expect(stdout).toContain("backend: tensorflow (TensorFlow 2.18.0; GPU device found by TensorFlow: no)");
    expect(stdout).toMatch(
      /as TensorFlow placed them: \d+ on \/job:localhost\/replica:0\/task:0\/device:CPU:0\n/,
    );
    expect(stdout).toMatch(/batch 4, Adam: [\d.]+ samples\/s \(3 steps in/);
    expect(stdout).toContain("result: training on the CPU");
    await expect(run(["--require-gpu"])).rejects.toMatchObject({ code: 1 });
  });
});
