// The bed's one real node: Debian's containerd + runc, a CNI bridge network, and the kubelet and kube-proxy built
// from the same Kubernetes module as the control plane, registered as kwok-local-0 (the node kwok leaves alone).
// Pods bound to it run as real containers; kube-proxy makes ClusterIP Services (kubernetes.default too) work from
// them. Everything it changes on the host is recorded first and undone by stopNode (host.ts).
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import { LOCAL_NODE } from "./config.ts";
import { get } from "./http.ts";
import {
  kubeChains,
  kubepodsCgroups,
  removeKubeChains,
  removeKubepodsCgroups,
  removeLink,
  restoreHost,
  snapshotHost,
  type HostSnapshot,
} from "./host.ts";
import {
  killAll,
  processesWhere,
  startComponent,
  stopGroups,
  untilReady,
  type Component,
} from "./processes.ts";

const run = promisify(execFile);

/** The sandbox image build-binaries.sh makes (PAUSE_IMAGE there). */
export const PAUSE_IMAGE = "localhost/mokd/pause:1";
export const CNI_BRIDGE = "mokd-cni0";
export const POD_SUBNET = "10.88.0.0/16";
const CNI_BIN_DIR = "/usr/lib/cni";
/** containerd's CRI namespace: images must be imported there for the kubelet to see them. */
export const CRI_NAMESPACE = "k8s.io";

export interface NodeState {
  name: string;
  nodeIp: string;
  workDir: string;
  containerdSocket: string;
  host: HostSnapshot;
  /** Process group ids of containerd, kubelet and kube-proxy, in start order. */
  pgids: number[];
}

export interface NodeOptions {
  binDir: string;
  logDir: string;
  /** On disk, not tmpfs: containerd unpacks images here (GBs). */
  workDir: string;
  kubeconfig: string;
  caCert: string;
  nodeIp: string;
  ports: { kubelet: number; kubeletHealthz: number; proxyHealthz: number; proxyMetrics: number };
  start: (component: Component) => void;
}

/** The address the kubelet reports as InternalIP: the machine's own (the kubelet refuses loopback). */
export async function hostIp(): Promise<string> {
  const { stdout } = await run("ip", ["-4", "-j", "route", "get", "1.1.1.1"]).catch(() => ({ stdout: "[]" }));
  const route = (JSON.parse(stdout) as { prefsrc?: string }[])[0];
  if (route?.prefsrc) return route.prefsrc;
  const { stdout: addrs } = await run("ip", ["-4", "-j", "addr", "show", "scope", "global"]);
  const ip = (JSON.parse(addrs) as { addr_info: { local: string }[] }[])[0]?.addr_info[0]?.local;
  if (!ip) throw new Error("no non-loopback IPv4 address for the real node");
  return ip;
}

function containerdConfig(dir: string, socket: string): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return [
    "version = 2",
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    `plugin_dir = "${dir}/plugins"`,
    // Snapshotters this machine has no use for; keeps the log to what matters.
    'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]',
    "[grpc]",
    `  address = "${socket}"`,
    "[ttrpc]",
    `  address = "${socket}.ttrpc"`,
    `[${cri}]`,
    `  sandbox_image = "${PAUSE_IMAGE}"`,
    // This VM refuses a negative oom_score_adj (runc then fails "can't get final child's PID from pipe").
    "  restrict_oom_score_adj = true",
    `[${cri}.containerd]`,
    '  snapshotter = "overlayfs"',
    '  default_runtime_name = "runc"',
    `[${cri}.containerd.runtimes.runc]`,
    '  runtime_type = "io.containerd.runc.v2"',
    `[${cri}.containerd.runtimes.runc.options]`,
    "  SystemdCgroup = false",
    `  Root = "${dir}/runc"`,
    `[${cri}.cni]`,
    `  bin_dir = "${CNI_BIN_DIR}"`,
    `  conf_dir = "${dir}/cni"`,
    `[plugins."io.containerd.internal.v1.opt"]`,
    `  path = "${dir}/opt"`,
    "",
  ].join("\n");
}

/** A bridge with host-local IPAM and no masquerade: pods talk to the node and each other, never leave it. */
function cniConfig(dir: string): string {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name: "mokd-bed",
    plugins: [
      {
        type: "bridge",
        bridge: CNI_BRIDGE,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: POD_SUBNET.replace("/16", "/24") }]],
          routes: [{ dst: "0.0.0.0/0" }],
          dataDir: join(dir, "ipam"),
        },
      },
      { type: "loopback" },
    ],
  });
}

function kubeletConfig(o: NodeOptions, dir: string, socket: string): string {
  return stringify({
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    // PID 1 is not systemd and the hierarchy is cgroup v1 (hybrid): 1.35+ refuses v1 unless told.
    cgroupDriver: "cgroupfs",
    failCgroupV1: false,
    failSwapOn: false,
    containerRuntimeEndpoint: `unix://${socket}`,
    address: o.nodeIp,
    port: o.ports.kubelet,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: o.ports.kubeletHealthz,
    // The apiserver authenticates with its kubelet client cert (the bed's CA); authorisation by SubjectAccessReview.
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: o.caCert },
    },
    authorization: { mode: "Webhook" },
    podLogsDir: join(dir, "pod-logs"),
    // The images are imported, never pulled: they must never be collected, nor pods evicted for a full disk.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: {
      "memory.available": "100Mi",
      "nodefs.available": "1%",
      "imagefs.available": "1%",
      "nodefs.inodesFree": "1%",
    },
    clusterDomain: "cluster.local",
    resolvConf: "/etc/resolv.conf",
    rotateCertificates: false,
    serializeImagePulls: false,
    registerNode: true,
    nodeStatusReportFrequency: "10s",
  });
}

function kubeProxyConfig(o: NodeOptions): string {
  return stringify({
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    clientConnection: { kubeconfig: o.kubeconfig },
    mode: "iptables",
    hostnameOverride: LOCAL_NODE,
    bindAddress: o.nodeIp,
    healthzBindAddress: `127.0.0.1:${o.ports.proxyHealthz}`,
    metricsBindAddress: `127.0.0.1:${o.ports.proxyMetrics}`,
    clusterCIDR: POD_SUBNET,
    // No route_localnet sysctl, no conntrack sysctls: less host state to restore.
    iptables: { localhostNodePorts: false },
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: "0s", tcpCloseWaitTimeout: "0s" },
  });
}

/** Where node work dirs go: on disk (containerd unpacks GBs of images), one per run. */
export const NODE_DIR_PREFIX = "/var/tmp/mokd-node-";

/**
 * Leftovers of a run that died without teardown (the caller holds the lock or is that run's watchdog, so nothing
 * of it is live): run before every start and by the watchdog (`node test/bed/cli.ts clean-node`).
 */
export function cleanStale(log: (m: string) => void): void {
  // A run killed before its teardown (its bed CLI crashed) leaves its node's daemons running; a live kubelet of
  // another run removes the pods' cgroups it does not know, so every new pod's sandbox dies within seconds.
  const daemons = staleNodeDaemons();
  if (daemons.length > 0) {
    log(`killing the node daemons of an earlier run: ${daemons.map((d) => `${d.name} ${d.pid}`).join(", ")}`);
    killAll(daemons.map((d) => d.pid));
  }
  const chains = kubeChains();
  const cgroups = kubepodsCgroups();
  const bridge = existsSync(`/sys/class/net/${CNI_BRIDGE}`);
  const mounts = staleMounts();
  const runDirs = ["/run/netns", "/run/containerd"].filter(existsSync);
  if (chains.length + cgroups.length + mounts.length + runDirs.length === 0 && !bridge) return;
  log(
    `cleaning up after an earlier run: ${chains.length} KUBE-* chains, ${cgroups.length} kubepods cgroups, ` +
      `${mounts.length} mounts, bridge: ${bridge}`,
  );
  killKubepods();
  killShims(NODE_DIR_PREFIX);
  for (const m of mounts) spawnSync("umount", ["-l", m]);
  removeKubeChains();
  removeLink(CNI_BRIDGE);
  removeKubepodsCgroups();
  // The runtime's /run dirs, when nothing of theirs is left (their pre-run existence died with that run).
  for (const ns of existsSync("/run/netns") ? readdirSync("/run/netns") : [])
    if (ns.startsWith("cni-")) rmSync(join("/run/netns", ns), { force: true });
  // Shim sockets of dead shims: only when no containerd (a system one included) runs on this machine.
  if (existsSync("/run/containerd/s") && spawnSync("pgrep", ["containerd"]).status !== 0)
    rmSync("/run/containerd/s", { recursive: true, force: true });
  for (const dir of ["/run/netns", "/run/containerd"]) {
    if (existsSync(dir) && readdirSync(dir).length === 0) {
      spawnSync("umount", ["-l", dir]); // containerd bind-mounts /run/netns on itself
      rmSync(dir, { recursive: true, force: true });
    }
  }
  for (const dir of readdirSync("/var/tmp")) {
    const path = join("/var/tmp", dir);
    if (path.startsWith(NODE_DIR_PREFIX) && staleMounts().length === 0)
      rmSync(path, { recursive: true, force: true });
  }
}

function staleMounts(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(NODE_DIR_PREFIX) || m.startsWith("/run/netns/cni-"))
    .sort((a, b) => b.length - a.length);
}

export async function startNode(o: NodeOptions, log: (m: string) => void): Promise<NodeState> {
  cleanStale(log);
  const host = snapshotHost();
  const dir = o.workDir;
  const socket = join(dir, "containerd", "containerd.sock");
  const state: NodeState = {
    name: LOCAL_NODE,
    nodeIp: o.nodeIp,
    workDir: dir,
    containerdSocket: socket,
    host,
    pgids: [],
  };
  for (const sub of ["containerd/cni", "kubelet", "kube-proxy"])
    mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, "containerd", "config.toml"), containerdConfig(join(dir, "containerd"), socket));
  writeFileSync(join(dir, "containerd", "cni", "10-mokd-bed.conflist"), cniConfig(join(dir, "containerd")));
  writeFileSync(join(dir, "kubelet", "config.yaml"), kubeletConfig(o, dir, socket));
  writeFileSync(join(dir, "kube-proxy", "config.yaml"), kubeProxyConfig(o));
  const start = (name: string, command: string, args: string[]) => {
    const c = startComponent(name, command, args, o.logDir);
    state.pgids.push(c.pid);
    o.start(c);
    return c;
  };

  const containerd = start("containerd", "containerd", ["--config", join(dir, "containerd", "config.toml")]);
  await untilReady(
    "containerd socket",
    [containerd],
    async () => existsSync(socket) && (await ctrOk(socket)),
  );
  await importImage(socket, join(o.binDir, "pause.tar"));
  // prettier-ignore
  const kubelet = start("kubelet", join(o.binDir, "kubelet"), [
    `--config=${join(dir, "kubelet", "config.yaml")}`, `--kubeconfig=${o.kubeconfig}`,
    `--root-dir=${join(dir, "kubelet", "root")}`, `--cert-dir=${join(dir, "kubelet", "pki")}`,
    `--hostname-override=${LOCAL_NODE}`, `--node-ip=${o.nodeIp}`, "--v=1",
  ]);
  // prettier-ignore
  const proxy = start("kube-proxy", join(o.binDir, "kube-proxy"), [
    `--config=${join(dir, "kube-proxy", "config.yaml")}`, "--v=1",
  ]);
  const components = [containerd, kubelet, proxy];
  await untilReady(
    "kubelet /healthz",
    components,
    async () => (await get(`http://127.0.0.1:${o.ports.kubeletHealthz}/healthz`)).status === 200,
  );
  await untilReady(
    "kube-proxy /healthz",
    components,
    async () => (await get(`http://127.0.0.1:${o.ports.proxyHealthz}/healthz`)).status === 200,
  );
  return state;
}

async function ctrOk(socket: string): Promise<boolean> {
  try {
    await run("ctr", ["--address", socket, "version"], { timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** Imports a docker-archive or OCI tarball into the CRI namespace, where the kubelet finds it. */
export async function importImage(socket: string, tarball: string): Promise<void> {
  // prettier-ignore
  await run("ctr", ["--address", socket, "-n", CRI_NAMESPACE, "images", "import", tarball], {
    maxBuffer: 16 << 20,
  });
}

export async function listImages(socket: string): Promise<string[]> {
  const { stdout } = await run("ctr", ["--address", socket, "-n", CRI_NAMESPACE, "images", "ls", "-q"]);
  return stdout.split("\n").filter(Boolean);
}

/** kubelet, kube-proxy and containerd processes of any node work dir (the caller holds the bed lock: stale). */
function staleNodeDaemons(): { name: string; pid: number }[] {
  const daemons = new Set(["kubelet", "kube-proxy", "containerd"]);
  return processesWhere(
    (cmdline) =>
      daemons.has(basename(cmdline[0] ?? "")) && cmdline.some((arg) => arg.includes(NODE_DIR_PREFIX)),
  ).map(({ pid, cmdline }) => ({ name: basename(cmdline[0] ?? ""), pid }));
}

/** Pids in the kubepods cgroups: the containers and sandboxes, which outlive the kubelet. */
function kubepodsPids(): number[] {
  const pids = new Set<number>();
  const walk = (d: string) => {
    try {
      for (const line of readFileSync(join(d, "cgroup.procs"), "utf8").split("\n"))
        if (line) pids.add(Number(line));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      // Gone meanwhile.
    }
  };
  for (const root of kubepodsCgroups()) walk(root);
  return [...pids];
}

function killKubepods(): void {
  killAll(kubepodsPids());
}

/** containerd's shims run in sessions of their own (they outlive containerd by design): find them by socket. */
function killShims(socketOrPrefix: string): void {
  const shims = processesWhere(
    (cmdline) =>
      Boolean(cmdline[0]?.includes("containerd-shim")) &&
      cmdline.some((arg) => arg.startsWith(socketOrPrefix)),
  );
  killAll(shims.map((p) => p.pid));
}

/** Stops the node and undoes its host changes; returns what it could not undo (empty when clean). */
export async function stopNode(state: NodeState, binDir: string): Promise<string[]> {
  const [containerd, ...rest] = state.pgids;
  await stopGroups([...rest].reverse()); // kubelet and kube-proxy first: nothing restarts the containers
  killKubepods();
  killShims(state.containerdSocket);
  if (containerd !== undefined) await stopGroups([containerd]);
  await run(join(binDir, "kube-proxy"), ["--cleanup"]).catch(() => undefined);
  // Give the kernel a moment to reap the killed pids before removing their cgroups.
  for (let i = 0; i < 20 && kubepodsPids().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  const mounts = restoreHost(state.host, state.workDir, CNI_BRIDGE);
  if (mounts.length === 0) rmSync(state.workDir, { recursive: true, force: true });
  return [...mounts, ...leftovers()];
}

/** What a clean host has none of: checked after teardown (and by the bed's own test). */
export function leftovers(): string[] {
  const left = [...kubeChains(), ...kubepodsCgroups()];
  if (existsSync(`/sys/class/net/${CNI_BRIDGE}`)) left.push(`link ${CNI_BRIDGE}`);
  return left;
}
