// `npm run testbed:up` starts the control plane detached and prints the shell lines to use it;
// `npm run testbed:down` stops it. State lives in ~/.cache/mokd-testbed/run/.
// `node test/bed/cli.ts run -- CMD ARGS...` runs CMD against the bed from `up` when one runs, else against a
// bed it starts and stops around CMD (how `npm run bench:scale` gets a cluster without importing the test tree).
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BedStartError, newWorkDir, startBed, stopBed, type BedState } from "./bed.ts";
import { CLI_RUN_DIR, ENV_BIN_DIR, ENV_KUBECONFIG } from "./config.ts";
import { cleanStale } from "./node.ts";
import { isAlive } from "./processes.ts";

const STATE_FILE = join(CLI_RUN_DIR, "state.json");
const KUBECONFIG = join(CLI_RUN_DIR, "kubeconfig");

function readState(): BedState | undefined {
  if (!existsSync(STATE_FILE)) return undefined;
  return JSON.parse(readFileSync(STATE_FILE, "utf8")) as BedState;
}

function printExports(state: BedState): void {
  console.log(
    `export KUBECONFIG=${KUBECONFIG} ${ENV_KUBECONFIG}=${KUBECONFIG} ${ENV_BIN_DIR}=${state.binDir}`,
  );
  console.log(`export PATH=${state.binDir}:$PATH`);
}

async function up(): Promise<void> {
  const running = readState();
  if (running && [...running.pgids, ...(running.node?.pgids ?? [])].every(isAlive)) {
    console.error(`[testbed] already up at ${running.server} (logs: ${running.logDir})`);
    printExports(running);
    return;
  }
  if (running) await down(); // A half-dead bed from an earlier run.
  const started = Date.now();
  const state = await startBed({ workDir: newWorkDir(), detachedLock: true });
  mkdirSync(CLI_RUN_DIR, { recursive: true });
  writeFileSync(STATE_FILE, JSON.stringify({ ...state, lock: undefined }, null, 2));
  copyFileSync(state.kubeconfig, KUBECONFIG);
  console.error(`[testbed] up in ${((Date.now() - started) / 1000).toFixed(1)} s at ${state.server}`);
  console.error(`[testbed] logs: ${state.logDir}; stop with: npm run testbed:down`);
  printExports(state);
}

async function down(): Promise<void> {
  const state = readState();
  if (!state) {
    console.error("[testbed] not running");
    return;
  }
  const left = await stopBed(state);
  rmSync(STATE_FILE, { force: true });
  rmSync(KUBECONFIG, { force: true });
  console.error(`[testbed] stopped (logs kept in ${state.logDir})`);
  if (left.length > 0) {
    console.error(`[testbed] host state left behind: ${left.join(", ")}`);
    process.exitCode = 1;
  }
}

/** Runs `argv` with the bed's kubeconfig in its environment; resolves to its exit code. */
function runWith(state: Pick<BedState, "kubeconfig" | "binDir">, argv: string[]): Promise<number> {
  const env = {
    ...process.env,
    KUBECONFIG: state.kubeconfig,
    [ENV_KUBECONFIG]: state.kubeconfig,
    [ENV_BIN_DIR]: state.binDir,
    PATH: `${state.binDir}:${process.env.PATH ?? ""}`,
  };
  const child = spawn(argv[0]!, argv.slice(1), { stdio: "inherit", env });
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0))));
}

async function run(argv: string[]): Promise<number> {
  if (argv.length === 0) throw new Error("usage: node test/bed/cli.ts run -- CMD [ARGS...]");
  const running = readState();
  if (running && [...running.pgids, ...(running.node?.pgids ?? [])].every(isAlive)) {
    console.error(`[testbed] using the bed up at ${running.server}`);
    return runWith({ kubeconfig: KUBECONFIG, binDir: running.binDir }, argv);
  }
  const state = await startBed({ workDir: newWorkDir(), log: (m) => console.error(`[testbed] ${m}`) });
  try {
    return await runWith(state, argv);
  } finally {
    await stopBed(state);
  }
}

const command = process.argv[2];
try {
  if (command === "up") await up();
  else if (command === "down") await down();
  else if (command === "clean-node") cleanStale((m) => console.error(`[testbed] ${m}`));
  else if (command === "run") {
    const args = process.argv.slice(3);
    process.exitCode = await run(args[0] === "--" ? args.slice(1) : args);
  } else {
    console.error("usage: node test/bed/cli.ts up|down|clean-node|run -- CMD [ARGS...]");
    process.exitCode = 2;
  }
} catch (err) {
  console.error(err instanceof BedStartError ? err.message : err);
  process.exitCode = 1;
}
