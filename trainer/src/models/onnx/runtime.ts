// ONNX Runtime (onnxruntime-node) for a frozen teacher, called synchronously: on the CPU, or with the CUDA
// execution provider first on the GPU backend (its libraries are in the GPU image only: trainer/Dockerfile). The package's public
// InferenceSession.run is a Promise around its native binding's run, which is synchronous (the backend only
// defers it with setImmediate); the trainer's forwards are synchronous (tfjs layers, the student step), so the
// teacher calls that binding directly. Pinned: onnxruntime-node is an exact version in package.json, and
// test/unit/trainer/models/onnx/teacher.test.ts fails if an upgrade changes this surface.
import { createRequire } from "node:module";
import { Tensor } from "onnxruntime-node";

/** An input or output as the binding describes it (shape -1 = symbolic, named in symbolicDimensions). */
export interface RawValueMetadata {
  name: string;
  isTensor: boolean;
  /** ONNX TensorProto.DataType: 1 = float32. */
  type: number;
  shape: number[];
  symbolicDimensions: string[];
}

interface NativeSession {
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: object): void;
  readonly inputMetadata: RawValueMetadata[];
  readonly outputMetadata: RawValueMetadata[];
  run(
    feeds: Record<string, Tensor>,
    fetches: Record<string, null>,
    options: object,
  ): Record<string, { data: unknown; dims: readonly number[] }>;
  dispose(): void;
}

interface Binding {
  binding: { InferenceSession: new () => NativeSession };
  initOrt(): void;
}

export const FLOAT32 = 1;

/**
 * Session options of every ONNX Runtime session the trainer opens: intra-op threads that sleep when idle instead
 * of spinning. The trainer shares its cores with tfjs (and, on a shared node, with other pods); spinning threads
 * made a teacher pass 3-7x slower on 2 loaded cores (docs/benchmarks.md "Teacher paths").
 */
export const SESSION_OPTIONS = { extra: { session: { intra_op: { allow_spinning: "0" } } } } as const;

export type ExecutionProvider = "cuda" | "cpu";

/**
 * The execution providers a teacher session asks for: CUDA first when the trainer runs on the GPU backend
 * (tfjs-node-gpu), so the teacher's forward runs on the GPU too; the CPU everywhere else.
 */
export function teacherExecutionProviders(nativeBackend: string | undefined): ExecutionProvider[] {
  return nativeBackend === "tensorflow-gpu" ? ["cuda", "cpu"] : ["cpu"];
}

let native: Binding | undefined;

function bindingModule(): Binding {
  native ??= createRequire(import.meta.url)("onnxruntime-node/dist/binding.js") as Binding;
  native.initOrt();
  return native;
}

/** A synchronous ONNX Runtime session over a model held in memory. */
export class SyncOnnxSession {
  readonly inputs: RawValueMetadata[];
  readonly outputs: RawValueMetadata[];
  private session: NativeSession | undefined;

  /** The providers the session was made with (CUDA may have fallen back to the CPU). */
  readonly executionProviders: ExecutionProvider[];

  /**
   * Throws ONNX Runtime's own error when the bytes are not a model it can load. With CUDA asked for and not
   * available (no provider library, no driver, no device), warns naming ONNX Runtime's reason and uses the CPU.
   */
  constructor(
    model: Uint8Array,
    providers: ExecutionProvider[] = ["cpu"],
    warn: (message: string) => void = () => {},
  ) {
    const load = (executionProviders: ExecutionProvider[]) => {
      const session = new (bindingModule().binding.InferenceSession)();
      session.loadModel(model.buffer, model.byteOffset, model.byteLength, {
        ...SESSION_OPTIONS,
        executionProviders,
      });
      return session;
    };
    let session: NativeSession;
    try {
      session = load(providers);
      this.executionProviders = providers;
    } catch (error) {
      if (!providers.includes("cuda")) throw error;
      session = load(["cpu"]); // a model ONNX Runtime cannot load fails here too, with the CPU's error
      this.executionProviders = ["cpu"];
      warn(
        `ONNX Runtime: the CUDA execution provider is unavailable (${(error as Error).message}); the ONNX teacher runs on the CPU`,
      );
    }
    this.session = session;
    this.inputs = session.inputMetadata;
    this.outputs = session.outputMetadata;
  }

  /** Runs the graph on one float32 input; returns the requested outputs' data and dims. */
  run(
    input: string,
    data: Float32Array,
    dims: number[],
    fetch: string[],
  ): Map<string, { data: Float32Array; dims: number[] }> {
    if (!this.session) throw new Error("ONNX session used after release");
    const fetches = Object.fromEntries(fetch.map((name) => [name, null]));
    const results = this.session.run({ [input]: new Tensor("float32", data, dims) }, fetches, {});
    return new Map(
      fetch.map((name) => {
        const r = results[name]!;
        return [name, { data: r.data as Float32Array, dims: [...r.dims] }];
      }),
    );
  }

  release(): void {
    this.session?.dispose();
    this.session = undefined;
  }
}
