// Each component runs in its own process group (detached), writing to its own log file, so that teardown can
// kill the whole group and nothing outlives the bed.
import { spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface Component {
  name: string;
  /** Also the process group id (detached: the child leads its own group). */
  pid: number;
  logFile: string;
  /** Set once the process has exited, with its code or signal. */
  exited: () => string | undefined;
}

export function startComponent(name: string, command: string, args: string[], logDir: string): Component {
  const logFile = join(logDir, `${name}.log`);
  const fd = openSync(logFile, "a");
  const child = spawn(command, args, { detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  let exit: string | undefined;
  child.on("error", (err) => (exit = `error: ${err.message}`));
  child.on("exit", (code, signal) => (exit = signal ? `signal ${signal}` : `code ${code}`));
  // The bed's lifetime is not tied to the Node event loop: the CLI exits while components keep running.
  child.unref();
  return { name, pid: child.pid, logFile, exited: () => exit };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

/** Synchronous: usable from an 'exit' handler. */
export function killGroupsSync(pgids: number[]): void {
  for (const pgid of pgids) signalGroup(pgid, "SIGKILL");
}

/** SIGTERM every group (in the given order), then SIGKILL whatever is left after the grace period. */
export async function stopGroups(pgids: number[], graceMs = 5000): Promise<void> {
  for (const pgid of pgids) signalGroup(pgid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && pgids.some(groupAlive)) await sleep(100);
  killGroupsSync(pgids.filter(groupAlive));
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

export function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until check returns true; fails early when one of the components has died. */
export async function untilReady(
  what: string,
  components: Component[],
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = components.find((c) => c.exited() !== undefined);
    if (dead) throw new Error(`${dead.name} exited (${dead.exited()}) while waiting for ${what}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

/** Processes whose command line (argv) matches (a /proc scan: the sweeps of stale daemons a killed run left). */
export function processesWhere(match: (cmdline: string[]) => boolean): { pid: number; cmdline: string[] }[] {
  const found: { pid: number; cmdline: string[] }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (match(cmdline)) found.push({ pid: Number(entry), cmdline });
    } catch {
      // Exited while listing.
    }
  }
  return found;
}

export function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}
