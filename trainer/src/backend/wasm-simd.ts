// Small hand-assembled WebAssembly SIMD kernels that work directly on the wasm backend's heap (the module imports
// that backend's memory): the fused Adam update (engine/optimizer.ts) and the dot product / axpy behind the Gram
// matrix and gradient combination (gradients.ts), which as tensor ops are ~50 tiny kernels per step.
//
// Adam: The JS loop in engine/optimizer.ts must round every operation to
// float32 (Math.fround) to match tf.train.adam bit for bit, which makes it ~3 ms per 100k parameters; f32x4 ops
// ARE float32 (IEEE, correctly rounded, no FMA), so this function matches the stock kernels exactly at ~10x the
// speed. Signature: adam(x, g, m, v: byte offsets, n: elements, b1, 1-b1, b2, 1-b2, 1-b1^t, 1-b2^t, eps, -lr).
import * as tf from "@tensorflow/tfjs";

export type AdamKernel = (
  x: number,
  g: number,
  m: number,
  v: number,
  n: number,
  beta1: number,
  oneMinusBeta1: number,
  beta2: number,
  oneMinusBeta2: number,
  oneMinusAccBeta1: number,
  oneMinusAccBeta2: number,
  epsilon: number,
  negLearningRate: number,
) => void;

// Opcodes (WebAssembly core 2.0 + fixed-width SIMD).
const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;
const get = (i: number) => [0x20, i];
const set = (i: number) => [0x21, i];
const simd = (op: number) => [0xfd, ...uleb(op)];
const V_LOAD = [...simd(0x00), 0, 0];
const V_STORE = [...simd(0x0b), 0, 0];
const SPLAT = simd(0x13);
const [V_SQRT, V_ADD, V_MUL, V_DIV] = [simd(0xe3), simd(0xe4), simd(0xe6), simd(0xe7)];
const F_LOAD = [0x2a, 2, 0];
const F_STORE = [0x38, 2, 0];
const [F_SQRT, F_ADD, F_MUL, F_DIV] = [[0x91], [0x92], [0x94], [0x95]];

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(byte & 0x40)) || (n === -1 && byte & 0x40)) return [...out, byte];
    out.push(byte | 0x80);
  }
};
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const name = (s: string) => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

/** Local indices of a kernel's loop counter: byte offset, end of the whole vectors, end. */
interface Counter {
  off: number;
  end4: number;
  end: number;
}

/** END = n << 2 (bytes); END4 = END & ~15 (whole 4-lane vectors); OFF starts at 0. */
const bounds = (n: number, c: Counter) => [
  ...get(n), 0x41, ...sleb(2), 0x74, ...set(c.end),
  ...get(c.end), 0x41, ...sleb(-16), 0x71, ...set(c.end4),
]; // prettier-ignore

/** while (OFF < limit) { body; OFF += stride } */
function loop(c: Counter, limit: number, stride: number, body: number[]): number[] {
  return [
    0x02, 0x40, 0x03, 0x40,
    ...get(c.off), ...get(limit), 0x4f, 0x0d, 1, // br_if OFF >= limit -> out
    ...body,
    ...get(c.off), 0x41, ...sleb(stride), 0x6a, ...set(c.off),
    0x0c, 0, 0x0b, 0x0b,
  ]; // prettier-ignore
}

/** Vector (f32x4) or scalar (f32) flavour of the arithmetic, so one body serves the main loop and the tail. */
const ops = (vector: boolean) =>
  vector
    ? { load: V_LOAD, store: V_STORE, add: V_ADD, mul: V_MUL, div: V_DIV, sqrt: V_SQRT }
    : { load: F_LOAD, store: F_STORE, add: F_ADD, mul: F_MUL, div: F_DIV, sqrt: F_SQRT };

// adam(x, g, m, v, n, 8 constants). Locals: params 0-12; counter 13-15; splatted constants 16-23; vectors g, m,
// v 24-26; scalars g, m, v 27-29.
const ADAM_COUNTER: Counter = { off: 13, end4: 14, end: 15 };

function adamStep(vector: boolean): number[] {
  const { load, store, add, mul, div, sqrt } = ops(vector);
  const c = (k: number) => get(vector ? 16 + k : 5 + k);
  const [g, m, v] = vector ? [24, 25, 26] : [27, 28, 29];
  const at = (ptr: number) => [...get(ptr), ...get(ADAM_COUNTER.off), 0x6a];
  return [
    ...at(1), ...load, ...set(g),
    // m = m*b1 + g*(1-b1)
    ...at(2), ...at(2), ...load, ...c(0), ...mul, ...get(g), ...c(1), ...mul, ...add, 0x22, m, ...store,
    // v = v*b2 + (g*g)*(1-b2)
    ...at(3), ...at(3), ...load, ...c(2), ...mul, ...get(g), ...get(g), ...mul, ...c(3), ...mul, ...add,
    0x22, v, ...store,
    // x = ((m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)) * -lr + x
    ...at(0), ...get(m), ...c(4), ...div, ...get(v), ...c(5), ...div, ...sqrt, ...c(6), ...add, ...div,
    ...c(7), ...mul, ...at(0), ...load, ...add, ...store,
  ]; // prettier-ignore
}

function adamFunction(): number[] {
  const splats = Array.from({ length: 8 }, (_, k) => [...get(5 + k), ...SPLAT, ...set(16 + k)]).flat();
  const c = ADAM_COUNTER;
  return [
    ...vec([[3, I32], [11, V128], [3, F32]]),
    ...splats, ...bounds(4, c),
    ...loop(c, c.end4, 16, adamStep(true)),
    ...loop(c, c.end, 4, adamStep(false)),
    0x0b,
  ]; // prettier-ignore
}

// dot(a, b, n) -> f32. Locals: params 0-2; counter 3-5; vector accumulator 6; scalar accumulator 7.
function dotFunction(): number[] {
  const c: Counter = { off: 3, end4: 4, end: 5 };
  const term = (vector: boolean) => {
    const { load, add, mul } = ops(vector);
    const acc = vector ? 6 : 7;
    return [
      ...get(acc),
      ...get(0), ...get(c.off), 0x6a, ...load, ...get(1), ...get(c.off), 0x6a, ...load, ...mul,
      ...add, ...set(acc),
    ]; // prettier-ignore
  };
  const lane = (i: number) => [...get(6), ...simd(0x1f), i]; // f32x4.extract_lane
  return [
    ...vec([[3, I32], [1, V128], [1, F32]]),
    ...bounds(2, c),
    ...loop(c, c.end4, 16, term(true)),
    ...lane(0), ...lane(1), ...F_ADD, ...lane(2), ...F_ADD, ...lane(3), ...F_ADD, ...set(7),
    ...loop(c, c.end, 4, term(false)),
    ...get(7), 0x0b,
  ]; // prettier-ignore
}

// axpy(y, x, n, c): y += c*x. Locals: params 0-3; counter 4-6; splatted c 7.
function axpyFunction(): number[] {
  const c: Counter = { off: 4, end4: 5, end: 6 };
  const update = (vector: boolean) => {
    const { load, store, add, mul } = ops(vector);
    const at = (ptr: number) => [...get(ptr), ...get(c.off), 0x6a];
    return [...at(0), ...at(0), ...load, ...at(1), ...load, ...get(vector ? 7 : 3), ...mul, ...add, ...store];
  };
  return [
    ...vec([[3, I32], [1, V128]]),
    ...get(3), ...SPLAT, ...set(7), ...bounds(2, c),
    ...loop(c, c.end4, 16, update(true)),
    ...loop(c, c.end, 4, update(false)),
    0x0b,
  ]; // prettier-ignore
}

function moduleBytes(): Uint8Array {
  const functionType = (params: number[], results: number[]) => [
    0x60,
    ...vec(params.map((p) => [p])),
    ...vec(results.map((r) => [r])),
  ];
  const types = [
    functionType([I32, I32, I32, I32, I32, F32, F32, F32, F32, F32, F32, F32, F32], []),
    functionType([I32, I32, I32], [F32]),
    functionType([I32, I32, I32, F32], []),
  ];
  const bodies = [adamFunction(), dotFunction(), axpyFunction()];
  const exported = ["adam", "dot", "axpy"];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec(types)),
    ...section(2, vec([[...name("env"), ...name("memory"), 0x02, 0x00, 0x00]])),
    ...section(3, vec([[0], [1], [2]])),
    ...section(7, vec(exported.map((e, i) => [...name(e), 0x00, i]))),
    ...section(10, vec(bodies.map((b) => [...uleb(b.length), ...b]))),
  ]);
}

/** The parts of the WebAssembly global used here (tsconfig's lib has no WebAssembly types). */
interface WebAssemblyApi {
  Memory: abstract new (...args: never[]) => object;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const webAssembly = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

interface WasmBackendModule {
  wasm?: { asm?: { memory?: unknown } };
}

export interface SimdKernels {
  adam: AdamKernel;
  /** sum_e a[e] b[e] over n float32 elements at byte offsets a, b (float32 accumulation, 4 lanes). */
  dot: (a: number, b: number, n: number) => number;
  /** y[e] += c x[e] over n float32 elements at byte offsets y, x. */
  axpy: (y: number, x: number, n: number, c: number) => void;
}

const instances = new WeakMap<object, SimdKernels | null>();

/** The SIMD kernels bound to the active wasm backend's memory, or null (other backend, no SIMD). */
export function wasmSimdKernels(): SimdKernels | null {
  const backend = tf.engine().backend as object;
  if (instances.has(backend)) return instances.get(backend)!;
  let kernels: SimdKernels | null = null;
  const memory = (backend as WasmBackendModule).wasm?.asm?.memory;
  if (tf.getBackend() === "wasm" && memory instanceof webAssembly.Memory) {
    try {
      const instance = new webAssembly.Instance(new webAssembly.Module(moduleBytes()), { env: { memory } });
      kernels = instance.exports as unknown as SimdKernels;
    } catch {
      kernels = null; // no SIMD in this runtime: the JS loops are used
    }
  }
  instances.set(backend, kernels);
  return kernels;
}
