// vitest global setup of the `cluster` project: one control plane per run, always torn down.
import { spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import { ENV_BIN_DIR, ENV_KUBECONFIG } from "./config.ts";
import { newWorkDir, startBed, stopBed } from "./bed.ts";
import { killGroupsSync } from "./processes.ts";

declare module "vitest" {
  export interface ProvidedContext {
    mokdKubeconfig: string;
    mokdServer: string;
    mokdBinDir: string;
    /** The real node's containerd socket (for `ctr images import`); absent without a real node. */
    mokdContainerdSocket: string;
    mokdNodeIp: string;
    /** The real node's work dir (kubelet root dir: <dir>/kubelet/root). */
    mokdNodeDir: string;
  }
}

const log = (message: string) => console.error(`[testbed] ${message}`);
const HERE = dirname(fileURLToPath(import.meta.url));

/**
 * If vitest itself is killed (SIGKILL, OOM), no handler runs: a detached shell watches this process and kills the
 * bed's process groups (listed in a file it re-reads) once it is gone.
 */
function startWatchdog(pgidFile: string, workDir: string): number {
  const script = [
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done`,
    `for g in $(cat "${pgidFile}" 2>/dev/null); do kill -KILL -- "-$g" 2>/dev/null; done`,
    // The real node's host state (iptables chains, bridge, mounts, cgroups, shims) outlives its processes.
    `"${process.execPath}" "${join(HERE, "cli.ts")}" clean-node`,
    `rm -rf "${workDir}"`,
  ].join("\n");
  const child = spawn("bash", ["-c", script], { detached: true, stdio: "ignore" });
  child.unref();
  return child.pid!;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const startedAt = Date.now();
  const workDir = newWorkDir();
  const pgidFile = join(workDir, "pgids");
  let pgids: number[] = [];
  const watchdog = startWatchdog(pgidFile, workDir);

  // Synchronous last resort for exit and signals; the async teardown below is the normal path.
  const killNow = () => {
    killGroupsSync([...pgids, watchdog]);
    rmSync(workDir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    killNow();
    // Without other listeners our handler suppressed the default action: re-raise it.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  process.on("exit", killNow);
  for (const signal of signals) process.once(signal, onSignal);
  const detach = () => {
    process.off("exit", killNow);
    for (const signal of signals) process.off(signal, onSignal);
  };

  const onGroups = (groups: number[]) => {
    pgids = groups;
    writeFileSync(pgidFile, groups.join("\n"));
  };
  const state = await startBed({ log, workDir, onGroups }).catch((err: unknown) => {
    killGroupsSync([watchdog]);
    detach();
    throw err;
  });
  log(
    `control plane ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s at ${state.server} (logs: ${state.logDir})`,
  );

  project.provide("mokdKubeconfig", state.kubeconfig);
  project.provide("mokdServer", state.server);
  project.provide("mokdBinDir", state.binDir);
  process.env[ENV_KUBECONFIG] = state.kubeconfig;
  process.env[ENV_BIN_DIR] = state.binDir;

  if (state.node) {
    project.provide("mokdContainerdSocket", state.node.containerdSocket);
    project.provide("mokdNodeIp", state.node.nodeIp);
    project.provide("mokdNodeDir", state.node.workDir);
  }

  return async () => {
    const left = await stopBed(state);
    if (left.length > 0) log(`host state left behind by the real node: ${left.join(", ")}`);
    killGroupsSync([watchdog]);
    detach();
    if (project.vitest.state.getCountOfFailedTests() > 0)
      log(`tests failed; component logs: ${state.logDir}`);
  };
}
