// Host state the real node changes, recorded before it starts and undone on teardown: iptables chains named KUBE-*
// (kubelet and kube-proxy), the CNI bridge, mounts (pod volumes, netns, container rootfs), the kubepods cgroups in
// every v1 hierarchy, directories the runtime creates under /run and /var/lib, and the sysctls the kubelet and
// the CNI bridge plugin set. One bed runs per machine (lock.ts), so every KUBE-* chain and kubepods cgroup is ours.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Sysctls the kubelet (setupKernelTunables), the bridge plugin (ip_forward) or kube-proxy may write. */
const SYSCTLS = [
  "net/ipv4/ip_forward",
  "net/ipv4/conf/all/route_localnet",
  "vm/overcommit_memory",
  "vm/panic_on_oom",
  "kernel/panic",
  "kernel/panic_on_oops",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
];

/** Paths outside the node's work dir that containerd, runc or CNI create; removed only if absent before. */
const RUNTIME_PATHS = ["/run/containerd", "/run/netns", "/var/run/netns", "/run/runc", "/var/lib/cni"];

export interface HostSnapshot {
  sysctls: Record<string, string>;
  mounts: string[];
  absentPaths: string[];
}

function sh(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch {
    return "";
  }
}

function mountPoints(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split(" ")[4]!.replace(/\\040/g, " "));
}

export function snapshotHost(): HostSnapshot {
  const sysctls: Record<string, string> = {};
  for (const key of SYSCTLS) {
    const file = join("/proc/sys", key);
    if (existsSync(file)) sysctls[key] = readFileSync(file, "utf8").trim();
  }
  return { sysctls, mounts: mountPoints(), absentPaths: RUNTIME_PATHS.filter((p) => !existsSync(p)) };
}

const IPTABLES = ["iptables", "ip6tables"];
const TABLES = ["filter", "nat", "mangle", "raw"];

/** Every rule jumping to a KUBE-* chain is deleted, then the chains are flushed and deleted. */
export function removeKubeChains(): void {
  for (const bin of IPTABLES) {
    for (const table of TABLES) {
      const rules = sh(bin, ["-w", "-t", table, "-S"]).split("\n");
      const chains = rules.filter((r) => r.startsWith("-N KUBE-")).map((r) => r.slice(3).trim());
      for (const rule of rules) {
        const parts = rule.split(" ");
        // `-S` quotes comments as a shell would: let sh split the rule back into its arguments.
        if (parts[0] === "-A" && !parts[1]!.startsWith("KUBE-") && / -j KUBE-/.test(rule))
          sh("sh", ["-c", `${bin} -w -t ${table} -D ${rule.slice(3)}`]);
      }
      for (const chain of chains) sh(bin, ["-w", "-t", table, "-F", chain]);
      for (const chain of chains) sh(bin, ["-w", "-t", table, "-X", chain]);
    }
  }
}

/** KUBE-* chains left in any table: empty when the host is clean. */
export function kubeChains(): string[] {
  return IPTABLES.flatMap((bin) =>
    TABLES.flatMap((table) =>
      sh(bin, ["-w", "-t", table, "-S"])
        .split("\n")
        .filter((r) => r.startsWith("-N KUBE-"))
        .map((r) => `${bin}/${table}/${r.slice(3)}`),
    ),
  );
}

/** Mounts made since the snapshot under one of the prefixes, deepest first (stacked mounts repeat). */
export function newMounts(before: HostSnapshot, prefixes: string[]): string[] {
  const known = new Set(before.mounts);
  return mountPoints()
    .filter((m) => !known.has(m) && prefixes.some((p) => m === p || m.startsWith(`${p}/`)))
    .sort((a, b) => b.length - a.length);
}

/** Lazily unmounts every mount made since the snapshot under one of the prefixes; returns those left. */
export function unmountNew(before: HostSnapshot, prefixes: string[]): string[] {
  for (let round = 0; round < 5; round++) {
    const fresh = newMounts(before, prefixes);
    if (fresh.length === 0) return [];
    for (const m of fresh) {
      const r = spawnSync("umount", ["-l", m], { encoding: "utf8" });
      if (r.status !== 0 && !r.stderr.includes("not mounted"))
        process.stderr.write(`[testbed] umount -l ${m}: ${r.stderr.trim()}\n`);
    }
  }
  return newMounts(before, prefixes);
}

/** Removes a cgroup directory tree depth first (rmdir only: a cgroup with tasks stays, and is reported). */
function removeCgroupTree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const left: string[] = [];
  for (const entry of readdirSync(dir)) {
    const child = join(dir, entry);
    try {
      if (statSync(child).isDirectory()) left.push(...removeCgroupTree(child));
    } catch {
      // Raced with the kernel removing it.
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    left.push(dir);
  }
  return left;
}

function cgroupHierarchies(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((line) => / - cgroup2? /.test(line))
    .map((line) => line.split(" ")[4]!);
}

/** The kubelet's kubepods cgroups (cgroupfs driver) in every hierarchy; returns those it could not remove. */
export function removeKubepodsCgroups(): string[] {
  return cgroupHierarchies().flatMap((h) => removeCgroupTree(join(h, "kubepods")));
}

export function kubepodsCgroups(): string[] {
  return cgroupHierarchies()
    .map((h) => join(h, "kubepods"))
    .filter(existsSync);
}

export function removeLink(name: string): void {
  if (existsSync(`/sys/class/net/${name}`)) sh("ip", ["link", "delete", name]);
}

export const RUNTIME_MOUNT_PREFIXES = ["/run/netns", "/var/run/netns", "/run/containerd", "/var/lib/kubelet"];

/** Undoes what the node changed since the snapshot (idempotent); returns the mounts it could not remove. */
export function restoreHost(before: HostSnapshot, workDir: string, bridge: string): string[] {
  const mounts = unmountNew(before, [workDir, ...RUNTIME_MOUNT_PREFIXES]);
  removeKubeChains();
  removeLink(bridge);
  removeKubepodsCgroups();
  for (const [key, value] of Object.entries(before.sysctls)) {
    const file = join("/proc/sys", key);
    try {
      if (readFileSync(file, "utf8").trim() !== value) writeFileSync(file, value);
    } catch {
      // Not writable here: nothing to restore.
    }
  }
  for (const path of before.absentPaths) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch (err) {
      process.stderr.write(`[testbed] rm ${path}: ${String(err)}\n`);
    }
  }
  return mounts.map((m) => `mount ${m}`);
}
