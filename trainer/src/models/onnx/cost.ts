// What running an ONNX model costs: multiply-adds per sample (from the graph, with the shapes of one real forward)
// and latency/throughput in ONNX Runtime (the public async API, as a deployment calls it).
import { InferenceSession, Tensor } from "onnxruntime-node";
import { SESSION_OPTIONS } from "./runtime.ts";
import { elementCount, onnx, type OnnxTypes } from "./proto.ts";

const MAC_OPS = new Set(["Conv", "Gemm", "MatMul"]);
const dimsOf = (t: OnnxTypes.ITensorProto) => (t.dims ?? []).map((d) => Number(d));

/** Multiply-adds per sample of Conv, Gemm and MatMul nodes (weights as initializers), for input `dims`. */
export async function onnxMacsPerSample(bytes: Uint8Array, input: string, dims: number[]): Promise<number> {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const weights = new Map((graph.initializer ?? []).map((t) => [t.name!, dimsOf(t)]));
  const nodes = (graph.node ?? []).filter((n) => MAC_OPS.has(n.opType!) && weights.has(n.input?.[1] ?? ""));
  graph.output ??= [];
  const outputs = graph.output;
  for (const node of nodes)
    if (!outputs.some((o) => o.name === node.output![0]))
      outputs.push({ name: node.output![0], type: { tensorType: { elemType: 1 } } });
  if (nodes.length === 0) return 0;
  const session = await InferenceSession.create(onnx.ModelProto.encode(model).finish(), SESSION_OPTIONS);
  try {
    const feed = new Tensor("float32", new Float32Array(elementCount(dims)), dims);
    const out = await session.run(
      { [input]: feed },
      nodes.map((n) => n.output![0]!),
    );
    let macs = 0;
    for (const node of nodes) {
      const produced = out[node.output![0]!]!.dims.slice(1);
      const w = weights.get(node.input![1]!)!;
      const transB = node.attribute?.find((a) => a.name === "transB")?.i;
      const k =
        node.opType === "Conv"
          ? elementCount(w.slice(1))
          : node.opType === "Gemm" && Number(transB)
            ? w[1]!
            : w[0]!;
      macs += elementCount(produced) * k;
    }
    return macs / dims[0]!;
  } finally {
    await session.release();
  }
}

export interface Timing {
  /** Milliseconds per batch-1 forward. */
  p50Ms: number;
  p95Ms: number;
  runs: number;
  /** Samples per second at `batch`. */
  samplesPerSecond: number;
  batch: number;
}

export interface TimingRuns {
  warmup: number;
  latencyRuns: number;
  throughputBatch: number;
  throughputRuns: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[at]!;
}

/** Times `forward(batch)` (it must finish its work before resolving): batch-1 latency, then throughput. */
export async function timeForward(
  forward: (batch: number) => Promise<void> | void,
  runs: TimingRuns,
): Promise<Timing> {
  for (let i = 0; i < runs.warmup; i++) await forward(1);
  const times: number[] = [];
  for (let i = 0; i < runs.latencyRuns; i++) {
    const t0 = performance.now();
    await forward(1);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  await forward(runs.throughputBatch);
  const t0 = performance.now();
  for (let i = 0; i < runs.throughputRuns; i++) await forward(runs.throughputBatch);
  const seconds = (performance.now() - t0) / 1000;
  return {
    p50Ms: percentile(times, 50),
    p95Ms: percentile(times, 95),
    runs: runs.latencyRuns,
    samplesPerSecond: (runs.throughputBatch * runs.throughputRuns) / seconds,
    batch: runs.throughputBatch,
  };
}

/** ONNX Runtime timing of a model whose input `input` has `dims` after the batch (fixedBatch: the graph's). */
export async function timeOnnx(
  bytes: Uint8Array,
  input: string,
  dims: number[],
  runs: TimingRuns,
  fixedBatch?: number,
): Promise<Timing> {
  const session = await InferenceSession.create(bytes, SESSION_OPTIONS);
  const feeds = new Map<number, Tensor>();
  const feed = (n: number) => {
    let t = feeds.get(n);
    if (!t) {
      t = new Tensor("float32", new Float32Array(n * elementCount(dims)), [n, ...dims]);
      feeds.set(n, t);
    }
    return t;
  };
  try {
    const b = fixedBatch;
    return await timeForward(
      async (n) => {
        // A fixed-batch graph runs ceil(n / b) batches of b (the last padded), as the trainer feeds it.
        for (let done = 0; done < n; done += b ?? n) await session.run({ [input]: feed(b ?? n) });
      },
      b ? { ...runs, throughputBatch: Math.ceil(runs.throughputBatch / b) * b } : runs,
    );
  } finally {
    await session.release();
  }
}
