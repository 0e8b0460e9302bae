// Backend selection. `auto` takes the native TensorFlow backend when it loads (tfjs-node-gpu first when an NVIDIA
// GPU is visible, else tfjs-node, then tfjs-node-gpu on the CPU), then wasm, then cpu, except that a run too small
// for native TensorFlow's per-op cost tries wasm first (autoOrder); a named backend is forced and fails with its
// cause. Native packages are checked before they are imported (see native.ts), every other
// failure is caught and the next candidate tried.
import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { backendNames, ConfigError } from "../../../api/v1alpha1/index.ts";
import { registerTrainingKernels } from "./kernels.ts";
import { activateNative, nvidiaDeviceVisible, type NativeChoice } from "./native.ts";
import { WASM_BELOW_FORWARD_MACS_PER_BATCH, type Workload } from "./workload.ts";

export type { Workload } from "./workload.ts";

export const backendPreferences = backendNames;
export type BackendPreference = (typeof backendNames)[number];
export type BackendChoice = Exclude<BackendPreference, "auto">;

export interface SelectedBackend {
  choice: BackendChoice;
  /** tfjs's name of the active backend (tfjs-node and tfjs-node-gpu both call theirs "tensorflow"). */
  tfBackend: string;
  /** Replacement gradient kernels registered for it (cpu and wasm only). */
  kernels: string[];
  /** TensorFlow's version as the native library reports it; undefined on wasm and cpu. */
  tensorflowVersion?: string;
  /** Where ops run: "gpu" only when the native library placed them on a CUDA device. */
  device: "gpu" | "cpu";
}

/**
 * A forced backend that cannot be activated, or no GPU where `runtime.gpus` asks for one: a config error (exit
 * code 2, not retried), since a retry runs the same image on the same kind of node.
 */
export class BackendUnavailableError extends ConfigError {
  constructor(field: string, message: string) {
    super([{ field, message }]);
    this.name = "BackendUnavailableError";
  }
}

type Log = (message: string) => void;
const stderrLog: Log = (m) => process.stderr.write(`${m}\n`);

/**
 * The order `auto` tries: tfjs-node-gpu first when an NVIDIA GPU is visible; then the native CPU backends and
 * wasm, wasm first when the run's workload is below WASM_BELOW_FORWARD_MACS_PER_BATCH (tfjs-node's per-op cost
 * dominates there); cpu last. Without a workload (benchmarks, tests) native comes first.
 */
export function autoOrder(gpuVisible: boolean, workload?: Workload): BackendChoice[] {
  const gpu: BackendChoice[] = gpuVisible ? ["tensorflow-gpu"] : [];
  const native: BackendChoice[] = gpuVisible ? ["tensorflow"] : ["tensorflow", "tensorflow-gpu"];
  const small = workload !== undefined && workload.forwardMacsPerBatch < WASM_BELOW_FORWARD_MACS_PER_BATCH;
  return small ? [...gpu, "wasm", ...native, "cpu"] : [...gpu, ...native, "wasm", "cpu"];
}

function explainOrder(order: BackendChoice[], workload: Workload | undefined): string {
  if (!workload) return `auto tries ${order.join(", ")}`;
  const macs = `${(workload.forwardMacsPerBatch / 1e6).toFixed(1)} M forward multiply-adds per batch (${workload.model})`;
  const side = workload.forwardMacsPerBatch < WASM_BELOW_FORWARD_MACS_PER_BATCH ? "<" : ">=";
  return `auto: ${macs} ${side} ${WASM_BELOW_FORWARD_MACS_PER_BATCH / 1e6} M, tries ${order.join(", ")}`;
}

/**
 * Activates a backend (see the file comment), logs the choice and returns it. A forced backend that cannot load
 * throws BackendUnavailableError naming the cause.
 */
export async function selectBackend(
  preference: BackendPreference = "auto",
  log: Log = stderrLog,
  workload?: Workload,
): Promise<SelectedBackend> {
  const candidates = preference === "auto" ? autoOrder(nvidiaDeviceVisible(), workload) : [preference];
  if (preference === "auto") log(explainOrder(candidates, workload));
  const failures: string[] = [];
  for (const choice of candidates) {
    try {
      const selected = await activate(choice);
      log(describe(selected));
      return selected;
    } catch (error) {
      const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
      failures.push(`${choice}: ${reason}`);
      if (preference === "auto") log(`tfjs backend ${choice} unavailable: ${reason}`);
    }
  }
  const message = `no tfjs backend could be activated (${failures.join("; ")})`;
  throw preference === "auto" ? new Error(message) : new BackendUnavailableError("backend", message);
}

/**
 * For a pod that asked for GPUs: fails when an NVIDIA GPU is visible to this container but TensorFlow did not
 * place its ops on it (a CPU-only image, or CUDA libraries that do not load); warns when no GPU is visible at all
 * (a node without the NVIDIA device plugin, a test bed), since then nothing here can use one.
 */
export function checkGpu(
  selected: SelectedBackend,
  gpus: number,
  log: Log,
  gpuVisible = nvidiaDeviceVisible(),
): void {
  if (selected.device === "gpu") return;
  const what = selected.tensorflowVersion
    ? `${selected.choice} (TensorFlow ${selected.tensorflowVersion}) runs its ops on the CPU`
    : `the ${selected.choice} backend runs on the CPU`;
  if (!gpuVisible) {
    log(`warning: runtime.gpus is ${gpus} but no NVIDIA GPU is visible in this container: ${what}`);
    return;
  }
  throw new BackendUnavailableError(
    "runtime.gpus",
    `${gpus} GPU(s) requested and an NVIDIA GPU is visible, but ${what}: use the GPU trainer image ` +
      "(docs/gpu.md), or set runtime.gpus: 0 to train on the CPU",
  );
}

export function describe(s: SelectedBackend): string {
  const tf = s.tensorflowVersion ? ` (TensorFlow ${s.tensorflowVersion}, ops on ${s.device})` : "";
  const extra = s.kernels.length ? ` (+ gradient kernels: ${s.kernels.join(", ")})` : "";
  return `tfjs backend: ${s.choice}${tf}${extra}`;
}

async function activate(choice: BackendChoice): Promise<SelectedBackend> {
  if (choice === "tensorflow" || choice === "tensorflow-gpu") return activateNativeChoice(choice);
  if (choice === "wasm") await activateWasm();
  else {
    await import("@tensorflow/tfjs-backend-cpu");
    await setBackend("cpu");
  }
  const kernels = registerTrainingKernels(tf.getBackend());
  return { choice, tfBackend: tf.getBackend(), kernels, device: "cpu" };
}

async function activateNativeChoice(choice: NativeChoice): Promise<SelectedBackend> {
  const info = await activateNative(choice);
  // The project's gradient kernels are for cpu/wasm; TensorFlow has its own.
  return {
    choice,
    tfBackend: tf.getBackend(),
    kernels: [],
    tensorflowVersion: info.tensorflowVersion,
    device: info.device,
  };
}

let wasmPathsSet = false;

async function activateWasm(): Promise<void> {
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  if (!wasmPathsSet) {
    wasm.setWasmPaths(wasmDistDirectory());
    wasmPathsSet = true;
  }
  await setBackend("wasm");
}

/** node_modules/@tensorflow/tfjs-backend-wasm/dist/, with a trailing slash (setWasmPaths takes a prefix). */
export function wasmDistDirectory(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm")) + path.sep;
}

async function setBackend(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend("${name}") failed`);
  await tf.ready();
}
