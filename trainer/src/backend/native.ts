// The native backends: @tensorflow/tfjs-node (CPU libtensorflow) and @tensorflow/tfjs-node-gpu (GPU
// libtensorflow), provisioned by scripts/native-tf/install.ts into <package>/lib/napi-v8/. Both register a tfjs
// backend named "tensorflow"; only one libtensorflow can live in a process, so the first that loads stays.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { installLegacyUtilShim } from "./node-compat.ts";

export type NativeChoice = "tensorflow" | "tensorflow-gpu";

export const NATIVE_PACKAGES: Record<NativeChoice, string> = {
  tensorflow: "@tensorflow/tfjs-node",
  "tensorflow-gpu": "@tensorflow/tfjs-node-gpu",
};

export interface NativeInfo {
  package: string;
  /** TensorFlow's own version, as the loaded library reports it (TF_Version()). */
  tensorflowVersion: string;
  /** Where TensorFlow places ops: "gpu" when the library found a CUDA device, else "cpu". */
  device: "gpu" | "cpu";
}

interface Binding {
  TF_Version: string;
  isUsingGpuDevice(): boolean;
}

const INSTALL_HINT: Record<NativeChoice, string> = {
  tensorflow: "npm run native-tf",
  "tensorflow-gpu": "npm run native-tf -- --gpu",
};

let loaded: { choice: NativeChoice; info: NativeInfo } | undefined;

function packageDirectory(pkg: string): string | undefined {
  try {
    return path.dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`));
  } catch {
    return undefined;
  }
}

/**
 * Why `choice` cannot load, checked without importing it: a failed import of tfjs-node has already registered its
 * kernels, and a second libtensorflow in one process is not supported.
 */
export function nativeUnavailableReason(
  choice: NativeChoice,
  resolveDirectory: (pkg: string) => string | undefined = packageDirectory,
): string | undefined {
  const pkg = NATIVE_PACKAGES[choice];
  if (loaded && loaded.choice !== choice)
    return `${NATIVE_PACKAGES[loaded.choice]} is already loaded in this process`;
  const dir = resolveDirectory(pkg);
  if (!dir) return `${pkg} is not installed (run npm ci)`;
  if (!existsSync(path.join(dir, "lib/napi-v8/tfjs_binding.node")))
    return `${pkg} has no native backend (run ${INSTALL_HINT[choice]})`;
  return undefined;
}

/** Imports the package (shim first), activates its "tensorflow" backend and reports what it loaded. */
export async function activateNative(choice: NativeChoice): Promise<NativeInfo> {
  const reason = nativeUnavailableReason(choice);
  if (reason) throw new Error(reason);
  if (!loaded) {
    installLegacyUtilShim();
    const specifier: string = NATIVE_PACKAGES[choice]; // not a literal: optional package, maybe without types
    await import(specifier);
  }
  if (!(await tf.setBackend("tensorflow"))) throw new Error(`tf.setBackend("tensorflow") failed`);
  await tf.ready();
  const binding = (tf.backend() as unknown as { binding: Binding }).binding;
  const info: NativeInfo = {
    package: NATIVE_PACKAGES[choice],
    tensorflowVersion: binding.TF_Version,
    device: binding.isUsingGpuDevice() ? "gpu" : "cpu",
  };
  loaded = { choice, info };
  return info;
}

/** The native package loaded in this process, if any (its tf.node API serves SavedModel teachers). */
/** The native backend this process loaded (tensorflow or tensorflow-gpu), if any. */
export const loadedNativeChoice = (): NativeChoice | undefined => loaded?.choice;

export function loadedNativePackage(): string | undefined {
  return loaded ? NATIVE_PACKAGES[loaded.choice] : undefined;
}

/** A GPU the NVIDIA driver exposes to this container (the device plugin mounts these), without loading CUDA. */
export function nvidiaDeviceVisible(exists: (p: string) => boolean = existsSync): boolean {
  return exists("/dev/nvidiactl") || exists("/proc/driver/nvidia/version");
}
