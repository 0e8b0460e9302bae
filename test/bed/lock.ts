// One test bed per machine: the bed holds an exclusive flock(1) on /tmp/mokd-bed.lock while it runs, so a
// second run waits (up to MOKD_BED_LOCK_WAIT seconds, then fails naming the lock) instead of fighting over the
// kubelet's host state. Compatible with wrapping a command in `flock /tmp/mokd-bed.lock <command>`: a lock held
// by one of this process's ancestors (read from /proc/locks) is taken on our behalf, for our whole life.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, statSync } from "node:fs";

export const BED_LOCK = process.env.MOKD_BED_LOCK ?? "/tmp/mokd-bed.lock";
const WAIT_SECONDS = Number(process.env.MOKD_BED_LOCK_WAIT ?? "900");

export interface BedLock {
  /** Pid of the process holding the lock (a flock(1) child); kill it to release. */
  pid: number;
  release: () => void;
}

/** Pids holding (not waiting for) a flock on the lock file, from /proc/locks. */
function lockHolders(): number[] {
  closeSync(openSync(BED_LOCK, "a"));
  const inode = statSync(BED_LOCK).ino;
  return readFileSync("/proc/locks", "utf8")
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1] === "FLOCK" && f[3] === "WRITE" && Number(f[5]?.split(":")[2]) === inode)
    .map((f) => Number(f[4]));
}

function ancestors(): Set<number> {
  const pids = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !pids.has(pid)) {
    pids.add(pid);
    try {
      // The command may contain spaces and parentheses: the ppid is the second field after the last ')'.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      pid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      break;
    }
  }
  return pids;
}

/** True when `flock /tmp/mokd-bed.lock <this command>` (or any ancestor) holds the lock for us. */
export function heldByAncestor(): boolean {
  const mine = ancestors();
  return lockHolders().some((pid) => mine.has(pid));
}

/**
 * Takes the lock through a flock(1) child that holds it until released. `detached` keeps it after this process
 * exits (`testbed:up`); otherwise it reads its stdin and lets go when this process dies, however it dies.
 * When an ancestor holds it, nothing is taken (a detached bed then queues a holder for when the ancestor ends).
 */
export async function acquireBedLock(log: (message: string) => void, detached = false): Promise<BedLock> {
  const byAncestor = heldByAncestor();
  if (byAncestor && !detached) return { pid: 0, release: () => {} };
  const hold = detached ? "echo locked; exec sleep infinity" : "echo locked; exec cat >/dev/null";
  // prettier-ignore
  const child: ChildProcess = spawn("flock", [
    "--exclusive", "--timeout", String(WAIT_SECONDS), "--conflict-exit-code", "75", BED_LOCK, "sh", "-c", hold,
  ], {
    // Queued behind our ancestor: nobody reads its output, and a closed pipe would kill it (SIGPIPE).
    stdio: byAncestor ? "ignore" : [detached ? "ignore" : "pipe", "pipe", "pipe"],
    detached,
  });
  if (byAncestor) {
    // Our `flock ... testbed:up` wrapper holds it until we exit; the bed lives on, so queue for it.
    child.unref();
    return { pid: child.pid!, release: () => releaseDetachedLock(child.pid!) };
  }
  const waiting = setTimeout(
    () => log(`waiting for ${BED_LOCK}: another test bed runs on this machine (up to ${WAIT_SECONDS} s)`),
    1000,
  );
  try {
    await lockTaken(child);
  } finally {
    clearTimeout(waiting);
  }
  child.stdout!.destroy();
  child.stderr!.destroy();
  child.unref();
  // A pipe keeps the event loop alive; the holder must not.
  (child.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null)?.unref?.();
  const pid = child.pid!;
  return {
    pid,
    // flock(1) passes the lock to its command: ending the command (cat on our stdin, or the detached group)
    // is what releases it.
    release: () => (detached ? releaseDetachedLock(pid) : child.stdin?.end()),
  };
}

function lockTaken(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout!.once("data", () => resolve());
    child.once("error", reject);
    child.once("exit", (code) =>
      reject(
        new Error(
          code === 75
            ? `another test bed held ${BED_LOCK} for ${WAIT_SECONDS} s; is one still running? (pgrep -af kubelet)`
            : `flock ${BED_LOCK} exited ${code}: ${stderr.trim()}`,
        ),
      ),
    );
  });
}

/** Releases a lock held by a detached holder started by an earlier process (`testbed:down`). */
export function releaseDetachedLock(pid: number): void {
  try {
    process.kill(-pid, "SIGTERM");
  } catch {
    // Already released.
  }
}
