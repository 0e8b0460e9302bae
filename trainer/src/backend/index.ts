// Backend selection: the fastest tfjs backend that loads here. tfjs-node-gpu and tfjs-node are optional
// dependencies that are often absent or broken (their install fetches libtensorflow; a missing native addon
// throws errors without a `code`), so every failure is caught and the next backend is tried.
import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { registerTrainingKernels } from "./kernels.ts";

export const backendPreferences = ["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"] as const;
export type BackendPreference = (typeof backendPreferences)[number];
export type BackendChoice = Exclude<BackendPreference, "auto">;

export interface SelectedBackend {
  choice: BackendChoice;
  /** tfjs's name of the active backend (tfjs-node and tfjs-node-gpu both call theirs "tensorflow"). */
  tfBackend: string;
  /** Replacement gradient kernels registered for it. */
  kernels: string[];
}

const AUTO_ORDER: BackendChoice[] = ["tensorflow-gpu", "tensorflow", "wasm", "cpu"];

type Log = (message: string) => void;
const stderrLog: Log = (m) => process.stderr.write(`${m}\n`);

/**
 * Activates a backend: `auto` tries tensorflow-gpu, tensorflow, wasm, cpu in that order; a named one is forced
 * (and throws if it cannot load). Logs and returns the choice.
 */
export async function selectBackend(
  preference: BackendPreference = "auto",
  log: Log = stderrLog,
): Promise<SelectedBackend> {
  const candidates = preference === "auto" ? AUTO_ORDER : [preference];
  const failures: string[] = [];
  for (const choice of candidates) {
    try {
      await activate(choice);
      const kernels = registerTrainingKernels(tf.getBackend());
      const extra = kernels.length ? ` (+ gradient kernels: ${kernels.join(", ")})` : "";
      log(`tfjs backend: ${choice}${extra}`);
      return { choice, tfBackend: tf.getBackend(), kernels };
    } catch (error) {
      const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
      failures.push(`${choice}: ${reason}`);
      if (preference === "auto") log(`tfjs backend ${choice} unavailable: ${reason}`);
    }
  }
  throw new Error(`no tfjs backend could be activated (${failures.join("; ")})`);
}

async function activate(choice: BackendChoice): Promise<void> {
  switch (choice) {
    case "tensorflow-gpu":
      return activateNative("@tensorflow/tfjs-node-gpu");
    case "tensorflow":
      return activateNative("@tensorflow/tfjs-node");
    case "wasm":
      return activateWasm();
    case "cpu":
      await import("@tensorflow/tfjs-backend-cpu");
      return setBackend("cpu");
  }
}

async function activateNative(pkg: string): Promise<void> {
  const specifier: string = pkg; // not a literal: the package is optional and may have no types installed
  await import(specifier);
  await setBackend("tensorflow");
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
