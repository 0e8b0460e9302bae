// Direct float32 access to tensor storage on the host-memory backends (cpu: JS typed arrays, wasm: views on the
// wasm heap), for in-place JS kernels such as the fused optimiser update. Returns null on any other backend or
// storage layout: callers then fall back to tensor ops.
import * as tf from "@tensorflow/tfjs";

interface WasmBackendInternals {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array<ArrayBufferLike>;
  refCount(dataId: object): number;
}
interface CpuBackendInternals {
  data: { get(dataId: object): { values?: unknown } | undefined };
  refCount(dataId: object): number;
}

const isWasm = (b: unknown): b is WasmBackendInternals =>
  typeof (b as Partial<WasmBackendInternals>).typedArrayFromHeap === "function";
const isCpu = (b: unknown): b is CpuBackendInternals =>
  tf.getBackend() === "cpu" && typeof (b as Partial<CpuBackendInternals>).data?.get === "function";

/** True when the active backend keeps float32 tensors in memory JS can write (cpu, wasm). */
export function hostMemoryBackend(): boolean {
  const backend = tf.engine().backend;
  return isWasm(backend) || isCpu(backend);
}

/**
 * The live float32 storage of `t` (writes change the tensor), or null. On wasm the view is detached by any
 * later allocation that grows the heap: take views after allocating, use them before allocating again.
 */
export function float32View(t: tf.Tensor): Float32Array<ArrayBufferLike> | null {
  if (t.dtype !== "float32") return null;
  const backend = tf.engine().backend;
  if (isWasm(backend)) return backend.typedArrayFromHeap(t);
  if (isCpu(backend)) {
    const values = backend.data.get(t.dataId)?.values;
    return values instanceof Float32Array ? values : null;
  }
  return null;
}

/** How many tensors share `t`'s storage (reshape, clone on cpu and Variable(tensor) share it). */
export function storageRefCount(t: tf.Tensor): number {
  const backend = tf.engine().backend as unknown as Partial<CpuBackendInternals>;
  return typeof backend.refCount === "function" ? backend.refCount(t.dataId) : Number.POSITIVE_INFINITY;
}

/** A tensor with its own copy of `t`'s values (tf.clone shares storage on cpu). */
export function privateCopy(t: tf.Tensor): tf.Tensor {
  return tf.tensor(Float32Array.from(t.dataSync() as Float32Array), t.shape, "float32");
}

/** A new float32 tensor whose storage JS fills through float32View (contents undefined until written). */
export function uninitializedFloat32(shape: number[]): tf.Tensor {
  const backend = tf.engine().backend as unknown as Partial<{
    makeOutput(shape: number[], dtype: "float32"): tf.TensorInfo;
  }>;
  if (isWasm(backend) && typeof backend.makeOutput === "function")
    return tf.engine().makeTensorFromTensorInfo(backend.makeOutput(shape, "float32"));
  return tf.tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, "float32");
}
