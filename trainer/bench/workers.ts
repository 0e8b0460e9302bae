// Benchmark workers: one child process per tfjs backend (a process has one active backend, and native TensorFlow
// and wasm each want the cores to themselves), driven by the parent round by round so that the backends
// interleave in one run and drift on a shared machine hits them alike. Protocol: one JSON request line on stdin,
// one `mokd-bench <JSON>` answer line on stdout; other output (TensorFlow's logs) goes to stderr.
import { spawn } from "node:child_process";
import readline from "node:readline";
import type { BackendChoice, SelectedBackend } from "../src/backend/index.ts";
import { describe, selectBackend } from "../src/backend/index.ts";
import { argValue } from "./common.ts";

const PREFIX = "mokd-bench ";

export interface Worker<Req, Res> {
  backend: BackendChoice;
  /** TensorFlow's intra- and inter-op threads when limited (`tensorflow:1`), else undefined (its default: cores). */
  threads?: number;
  /** backend, or backend:threads */
  label: string;
  /** The worker's own description of its backend (describe() of the backend module). */
  info: string;
  ask(request: Req): Promise<Res>;
  close(): void;
}

export interface WorkerSpec {
  backend: BackendChoice;
  threads?: number;
  label: string;
}

/**
 * Backends to compare: --backends tensorflow,wasm (the default); `tensorflow:1` limits TensorFlow to one thread
 * (TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS), for a same-threads comparison with wasm and PyTorch 1t.
 */
export function backendsArg(): WorkerSpec[] {
  return argValue("backends", "tensorflow,wasm")
    .split(",")
    .map((label) => {
      const [backend, threads] = label.split(":");
      return { backend: backend as BackendChoice, threads: threads ? Number(threads) : undefined, label };
    });
}

export function isWorker(): boolean {
  return process.argv.includes("--worker");
}

/** Starts `script` as a worker on `backend` (it must call serveWorker when run with --worker). */
export async function startWorker<Req, Res>(
  script: string,
  spec: WorkerSpec,
  args: string[] = [],
): Promise<Worker<Req, Res>> {
  const { backend, threads } = spec;
  const env = threads
    ? { ...process.env, TF_NUM_INTRAOP_THREADS: String(threads), TF_NUM_INTEROP_THREADS: String(threads) }
    : process.env;
  const child = spawn(process.execPath, [script, "--worker", "--backend", backend, ...args], {
    stdio: ["pipe", "pipe", "inherit"],
    env,
  });
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<unknown> => {
    for (;;) {
      const r = await lines.next();
      if (r.done) throw new Error(`the ${backend} worker exited`);
      if (r.value.startsWith(PREFIX)) return JSON.parse(r.value.slice(PREFIX.length));
    }
  };
  const info = (await next()) as string;
  return {
    ...spec,
    info,
    ask: async (request) => {
      child.stdin.write(`${JSON.stringify(request)}\n`);
      return (await next()) as Res;
    },
    close: () => child.stdin.end(),
  };
}

/** The worker side: activates --backend (forced), announces it, then answers requests until stdin closes. */
export async function serveWorker<Req, Res>(
  handle: (request: Req, backend: SelectedBackend) => Res | Promise<Res>,
): Promise<void> {
  const backend = await selectBackend(argValue("backend", "wasm") as BackendChoice, () => {});
  const answer = (value: unknown) => process.stdout.write(`${PREFIX}${JSON.stringify(value)}\n`);
  answer(describe(backend));
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (line.trim()) answer(await handle(JSON.parse(line) as Req, backend));
  }
}
