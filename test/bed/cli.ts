// `npm run testbed:up` starts the control plane detached and prints the shell lines to use it;
// `npm run testbed:down` stops it. State lives in ~/.cache/mokd-testbed/run/.
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

const command = process.argv[2];
try {
  if (command === "up") await up();
  else if (command === "down") await down();
  else if (command === "clean-node") cleanStale((m) => console.error(`[testbed] ${m}`));
  else {
    console.error("usage: node test/bed/cli.ts up|down|clean-node");
    process.exitCode = 2;
  }
} catch (err) {
  console.error(err instanceof BedStartError ? err.message : err);
  process.exitCode = 1;
}
