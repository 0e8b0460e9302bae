// `trainer gpu-check`: one command that tells a user whether the trainer trains on their GPU. It prints the
// backend and TensorFlow version the trainer's own selection activates, the devices TensorFlow itself says it
// placed the ops of one training step on (its placement log, TF_CPP_VMODULE=execute=1, read from a child
// process so the timed run is not slowed by logging), and the samples/s of that training step (the ResNet-style
// probe of probe.ts, batch 128) over a few seconds.
//   node trainer/src/cli.ts gpu-check [--backend auto|tensorflow-gpu|tensorflow|wasm|cpu] [--seconds 10]
//     [--batch 128] [--require-gpu]
// Exit codes: 0 done; 1 --require-gpu and TensorFlow placed no op on a GPU (or the backend did not load).
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import * as tf from "@tensorflow/tfjs";
import {
  backendPreferences,
  selectBackend,
  type BackendPreference,
  type SelectedBackend,
} from "../backend/index.ts";
import { buildResNetProbe, probeBatch, probeTrainer, PROBE_INPUT } from "./probe.ts";

const OPTIONS = {
  backend: { type: "string", default: "auto" },
  seconds: { type: "string", default: "10" },
  batch: { type: "string", default: "128" },
  "require-gpu": { type: "boolean", default: false },
  /** Internal: the child that runs one step with TensorFlow's placement log on. */
  "placement-probe": { type: "boolean", default: false },
} as const;

/** "Executing op <name> in device <device>" lines of TensorFlow's eager executor: op count per device. */
export function placementCounts(log: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [, device] of log.matchAll(/Executing op \S+ in device (\S+)/g))
    counts.set(device!, (counts.get(device!) ?? 0) + 1);
  return counts;
}

async function placement(backend: BackendPreference, batch: number): Promise<Map<string, number>> {
  const env = { ...process.env, TF_CPP_VMODULE: "execute=1", TF_CPP_MIN_LOG_LEVEL: "0" };
  const args = [
    fileURLToPath(import.meta.url),
    "--placement-probe",
    "--backend",
    backend,
    "--batch",
    String(batch),
  ];
  const { stderr } = await promisify(execFile)(process.execPath, args, { env, maxBuffer: 256 << 20 });
  return placementCounts(stderr);
}

function describeBackend(s: SelectedBackend): string {
  if (!s.tensorflowVersion) return `${s.choice} (no TensorFlow: ops run in this process's JavaScript/wasm)`;
  return `${s.choice} (TensorFlow ${s.tensorflowVersion}; GPU device found by TensorFlow: ${s.device === "gpu" ? "yes" : "no"})`;
}

function timeSteps(step: () => number, seconds: number): { steps: number; elapsed: number } {
  for (let i = 0; i < 2; i++) step(); // warm-up: kernel selection, autotuning, allocation
  const started = performance.now();
  let steps = 0;
  while (steps < 3 || performance.now() - started < seconds * 1000) {
    step();
    steps++;
  }
  return { steps, elapsed: (performance.now() - started) / 1000 };
}

async function probeChild(backend: BackendPreference, batchSize: number): Promise<number> {
  await selectBackend(backend, () => {});
  const step = probeTrainer(buildResNetProbe(), probeBatch(batchSize));
  step();
  return 0;
}

export async function gpuCheck(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false });
  const backend = values.backend as BackendPreference;
  if (!(backendPreferences as readonly string[]).includes(backend))
    throw new Error(`--backend: expected one of ${backendPreferences.join(", ")}`);
  const batchSize = Number(values.batch);
  if (values["placement-probe"]) return probeChild(backend, batchSize);
  const selected = await selectBackend(backend, () => {});
  process.stdout.write(`backend: ${describeBackend(selected)}\n`);
  const devices = selected.tensorflowVersion ? await placement(selected.choice, batchSize) : new Map();
  const placed = [...devices].map(([device, n]) => `${n} on ${device}`).join(", ");
  if (selected.tensorflowVersion)
    process.stdout.write(`ops of one training step, as TensorFlow placed them: ${placed || "none logged"}\n`);
  const model = buildResNetProbe();
  const { steps, elapsed } = timeSteps(probeTrainer(model, probeBatch(batchSize)), Number(values.seconds));
  process.stdout.write(
    `training: ResNet-style CNN ${PROBE_INPUT.join("x")} (${model.countParams()} parameters), batch ${batchSize}, ` +
      `Adam: ${((steps * batchSize) / elapsed).toFixed(1)} samples/s (${steps} steps in ${elapsed.toFixed(1)} s)\n`,
  );
  const onGpu = [...devices.keys()].some((d) => /device:GPU:/.test(d));
  process.stdout.write(`result: ${onGpu ? "training on the GPU" : "training on the CPU"}\n`);
  tf.disposeVariables();
  return values["require-gpu"] && !onGpu ? 1 : 0;
}

if (import.meta.main) {
  gpuCheck(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`gpu-check: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
