// CPU time of processes on this machine from /proc, for the scale bench: how much of the (shared) machine the
// test bed's apiserver, etcd, controller-manager, scheduler and kwok used while the operator worked.
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on Linux). */
const TICKS = 100;

/**
 * The first process whose comm (up to 15 characters) equals each name and whose command line contains `marker`
 * (the bed's directory: another bed's processes, e.g. one left behind by a killed run, are not this bed's);
 * names not found are left out.
 */
export function findProcesses(comms: string[], marker = ""): Map<string, number> {
  const found = new Map<string, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, "utf8").trim();
      if (!comms.includes(comm) || found.has(comm)) continue;
      if (marker && !readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(marker)) continue;
      found.set(comm, Number(entry));
    } catch {
      // Exited while listing.
    }
  }
  return found;
}

/** utime + stime of each process, in seconds (NaN once it is gone). */
export function cpuSecondsOf(pids: Map<string, number>): Map<string, number> {
  return new Map(
    [...pids].map(([name, pid]) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return [name, (Number(fields[11]) + Number(fields[12])) / TICKS];
      } catch {
        return [name, NaN];
      }
    }),
  );
}
