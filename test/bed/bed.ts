// Starts the test control plane on loopback: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// kwok with fake GPU nodes. Used by the vitest global setup and by `npm run testbed:up`.
import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { KEEP_LOG_RUNS, KWOK_NODE_ANNOTATION, KWOK_NODE_ANNOTATION_VALUE, LOGS_DIR } from "./config.ts";
import { get, type TlsOptions } from "./http.ts";
import { acquireBedLock, releaseDetachedLock, type BedLock } from "./lock.ts";
import { hostIp, NODE_DIR_PREFIX, startNode, stopNode, type NodeState } from "./node.ts";
import { generatePki, type Pki } from "./pki.ts";
import { startComponent, stopGroups, tail, untilReady, type Component } from "./processes.ts";

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const BINARIES = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubectl",
  "kwok",
  "helm",
  "kubelet",
  "kube-proxy",
  "kueue",
  "prometheus",
  "versitygw",
  "pause.tar",
];
const SERVICE_CIDR = "10.96.0.0/16";
const POD_CIDR = "10.244.0.1/16";

/** What a started bed is, as saved in the CLI state file. */
export interface BedState {
  kubeconfig: string;
  server: string;
  binDir: string;
  logDir: string;
  workDir: string;
  /** Process group ids, in start order (the real node's included). */
  pgids: number[];
  /** The real node (kubelet on containerd), unless started without one. */
  node?: NodeState;
  /** Pid of the detached flock(1) holding the bed lock (`testbed:up` only; a test run's dies with it). */
  lockPid?: number;
  /** Mine to release when stopped in this process. */
  lock?: BedLock;
}

export interface BedOptions {
  /** Where the work dir goes (PKI, etcd data, kubeconfig); default: a fresh dir in /dev/shm or the tmp dir. */
  workDir?: string;
  log?: (message: string) => void;
  /** Called with the process group ids every time one starts (for a watchdog). */
  onGroups?: (pgids: number[]) => void;
  /** Start the real node (kubelet, containerd, kube-proxy) as kwok-local-0; default true, MOKD_TESTBED_REAL_NODE=0 skips. */
  realNode?: boolean;
  /** Keep the bed lock after this process exits (`testbed:up`). */
  detachedLock?: boolean;
}

/**
 * Runs build-binaries.sh, which builds whatever is missing (cold: tens of minutes, logged to stderr) and returns at
 * once (~0.1 s) when everything is cached. It owns the versions, so it runs every time.
 */
export async function ensureBinaries(): Promise<string> {
  const script = join(HERE, "build-binaries.sh");
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = execFile("bash", [script], { maxBuffer: 1 << 20 }, (err, out) =>
      err ? reject(err) : resolve(out),
    );
    child.stderr?.pipe(process.stderr);
  });
  const binDir = stdout.trim().split("\n").pop() ?? "";
  const missing = BINARIES.filter((b) => !existsSync(join(binDir, b)));
  if (missing.length > 0)
    throw new Error(`build-binaries.sh did not produce ${missing.join(", ")} in ${binDir}`);
  return binDir;
}

async function freePorts(count: number): Promise<number[]> {
  // Hold all listeners open together so the ports are distinct; the kernel does not hand them out again at once.
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      const server = createServer();
      return new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve(server));
      });
    }),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function kubeconfigYaml(server: string, pki: Pki): string {
  const b64 = (file: string) => readFileSync(file).toString("base64");
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: mokd-testbed",
    "  cluster:",
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(pki.caCert)}`,
    "users:",
    "- name: mokd-admin",
    "  user:",
    `    client-certificate-data: ${b64(pki.adminCert)}`,
    `    client-key-data: ${b64(pki.adminKey)}`,
    "contexts:",
    "- name: mokd-testbed",
    "  context: {cluster: mokd-testbed, user: mokd-admin, namespace: default}",
    "current-context: mokd-testbed",
    "",
  ].join("\n");
}

function newLogDir(): string {
  mkdirSync(LOGS_DIR, { recursive: true });
  const old = readdirSync(LOGS_DIR).sort();
  for (const dir of old.slice(0, Math.max(0, old.length - KEEP_LOG_RUNS + 1))) {
    rmSync(join(LOGS_DIR, dir), { recursive: true, force: true });
  }
  const dir = join(LOGS_DIR, `${new Date().toISOString().replace(/[:.]/g, "-")}-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function newWorkDir(): string {
  const base = existsSync("/dev/shm") ? "/dev/shm" : tmpdir(); // etcd fsyncs are free on tmpfs
  return mkdtempSync(join(base, "mokd-testbed-"));
}

interface NodeJson {
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: { taints?: { key: string }[] };
  status?: { conditions?: { type: string; status: string }[] };
}

function schedulable(node: NodeJson): boolean {
  const ready = node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
  const notReadyTaint = node.spec?.taints?.some((t) => t.key.startsWith("node.kubernetes.io/")) ?? false;
  return ready && !notReadyTaint;
}

export class BedStartError extends Error {
  readonly logDir: string;
  constructor(message: string, logDir: string) {
    super(message);
    this.logDir = logDir;
  }
}

/** Starts the bed; on failure stops whatever started, prints each log's tail and throws. */
export async function startBed(options: BedOptions = {}): Promise<BedState> {
  const log = options.log ?? ((m: string) => console.error(`[testbed] ${m}`));
  const binDir = await ensureBinaries();
  const lock = await acquireBedLock(log, options.detachedLock);
  const logDir = newLogDir();
  const workDir = options.workDir ?? newWorkDir();
  mkdirSync(workDir, { recursive: true });
  const realNode = options.realNode ?? process.env.MOKD_TESTBED_REAL_NODE !== "0";
  const components: Component[] = [];
  let node: NodeState | undefined;
  try {
    const state = await launch({
      binDir,
      logDir,
      workDir,
      components,
      onGroups: options.onGroups ?? (() => {}),
      realNode,
      onNode: (n) => (node = n),
      log,
    });
    return { ...state, lock, lockPid: options.detachedLock ? lock.pid : undefined };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    for (const c of components) log(`--- tail of ${c.logFile} ---\n${tail(c.logFile)}`);
    if (node) await stopNode(node, binDir);
    await stopGroups(components.map((c) => c.pid).reverse());
    rmSync(workDir, { recursive: true, force: true });
    lock.release();
    throw new BedStartError(`test bed failed to start: ${message} (logs: ${logDir})`, logDir);
  }
}

interface Launch {
  binDir: string;
  logDir: string;
  workDir: string;
  components: Component[];
  onGroups: (pgids: number[]) => void;
  realNode: boolean;
  onNode: (node: NodeState) => void;
  log: (message: string) => void;
}

async function launch(l: Launch): Promise<BedState> {
  const { binDir, logDir, workDir, components, onGroups } = l;
  const bin = (name: string) => join(binDir, name);
  const started = (c: Component) => {
    components.push(c);
    onGroups(components.map((x) => x.pid));
  };
  const start = (name: string, args: string[]) => started(startComponent(name, bin(name), args, logDir));
  const pkiDir = join(workDir, "pki");
  mkdirSync(pkiDir);
  const [pki, [etcdPort, peerPort, apiPort, kcmPort, schedPort, ...nodePorts], nodeIp] = await Promise.all([
    generatePki(pkiDir),
    freePorts(9),
    l.realNode ? hostIp() : Promise.resolve(undefined),
  ]);
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const server = `https://127.0.0.1:${apiPort}`;
  const kubeconfig = join(workDir, "kubeconfig");
  writeFileSync(kubeconfig, kubeconfigYaml(server, pki), { mode: 0o600 });
  const admin: TlsOptions = {
    ca: readFileSync(pki.caCert, "utf8"),
    cert: readFileSync(pki.adminCert, "utf8"),
    key: readFileSync(pki.adminKey, "utf8"),
  };

  // prettier-ignore
  start("etcd", [
    "--name=bed", `--data-dir=${join(workDir, "etcd")}`,
    `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
    `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`, `--initial-cluster=bed=${peerUrl}`,
    "--logger=zap", "--log-outputs=stderr", "--unsafe-no-fsync", // a throwaway test store

  ]);
  await untilReady("etcd /health", components, async () =>
    (await get(`${etcdUrl}/health`)).body.includes('"true"'),
  );

  // With a real node, pods reach the apiserver through the kubernetes Service (kube-proxy DNATs 10.96.0.1 to the
  // advertised address, which the apiserver's lease reconciler writes): it must listen on the node's address too.
  // prettier-ignore
  const nodeArgs = nodeIp ? [
    "--bind-address=0.0.0.0", `--advertise-address=${nodeIp}`, "--endpoint-reconciler-type=lease",
    // kubectl logs/exec/port-forward reach the kubelet at its InternalIP, with the bed's client cert.
    "--kubelet-preferred-address-types=InternalIP,Hostname",
    `--kubelet-client-certificate=${pki.adminCert}`, `--kubelet-client-key=${pki.adminKey}`,
    // A namespace's annotations can pin its pods to the real node (node selector and toleration), so tests run
    // users' manifests unchanged there.
    "--enable-admission-plugins=PodNodeSelector,PodTolerationRestriction",
  ] : [
    "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
  ];
  // prettier-ignore
  start("kube-apiserver", [
    `--etcd-servers=${etcdUrl}`,
    ...nodeArgs, `--secure-port=${apiPort}`,
    `--cert-dir=${join(workDir, "apiserver")}`,
    `--tls-cert-file=${pki.servingCert}`, `--tls-private-key-file=${pki.servingKey}`, `--client-ca-file=${pki.caCert}`,
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    `--service-account-key-file=${pki.saPublicKey}`, `--service-account-signing-key-file=${pki.saPrivateKey}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    "--authorization-mode=RBAC", "--allow-privileged=true", "--profiling=false",
  ]);
  await untilReady(
    "kube-apiserver /readyz",
    components,
    async () => (await get(`${server}/readyz`, admin)).status === 200,
  );

  const delegated = [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
  ];
  // prettier-ignore
  start("kube-controller-manager", [
    ...delegated, "--bind-address=127.0.0.1", `--secure-port=${kcmPort}`, `--cert-dir=${join(workDir, "kcm")}`,
    "--leader-elect=false", "--use-service-account-credentials=false",
    `--service-account-private-key-file=${pki.saPrivateKey}`, `--root-ca-file=${pki.caCert}`,
    `--cluster-signing-cert-file=${pki.caCert}`, `--cluster-signing-key-file=${pki.caKey}`,
    "--profiling=false",
    // The Job controller's pod creations share the client's default 20 QPS with its events and status
    // updates (~7 pods/s): at 10,000 jobs the bed, not the operator, would set the pace for a quarter of an
    // hour. Kubernetes' own kubemark scale jobs raise the control plane components' limits the same way
    // (test-infra: KUBEMARK_MASTER_COMPONENTS_QPS_LIMITS="--kube-api-qps=100 --kube-api-burst=100").
    "--kube-api-qps=100", "--kube-api-burst=100",
  ]);
  // prettier-ignore
  start("kube-scheduler", [
    ...delegated, "--bind-address=127.0.0.1", `--secure-port=${schedPort}`, `--cert-dir=${join(workDir, "scheduler")}`,
    "--leader-elect=false",
  ]);
  // prettier-ignore
  start("kwok", [
    `--kubeconfig=${kubeconfig}`, `--config=${join(HERE, "kwok", "stages.yaml")}`,
    `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=${KWOK_NODE_ANNOTATION_VALUE}`,
    `--cidr=${POD_CIDR}`, "--node-ip=10.0.0.1", "--node-lease-duration-seconds=40",
  ]);
  await run(bin("kubectl"), [`--kubeconfig=${kubeconfig}`, "apply", "-f", join(HERE, "kwok", "nodes.yaml")]);
  let node: NodeState | undefined;
  if (nodeIp) {
    const [kubelet, kubeletHealthz, proxyHealthz, proxyMetrics] = nodePorts as [
      number,
      number,
      number,
      number,
    ];
    node = await startNode(
      {
        binDir,
        logDir,
        workDir: mkdtempSync(NODE_DIR_PREFIX),
        kubeconfig,
        caCert: pki.caCert,
        nodeIp,
        ports: { kubelet, kubeletHealthz, proxyHealthz, proxyMetrics },
        start: started,
      },
      l.log,
    );
    l.onNode(node);
  }

  const insecure = { insecure: true };
  await untilReady(
    "kube-controller-manager /healthz",
    components,
    async () => (await get(`https://127.0.0.1:${kcmPort}/healthz`, insecure)).status === 200,
  );
  await untilReady(
    "kube-scheduler /healthz",
    components,
    async () => (await get(`https://127.0.0.1:${schedPort}/healthz`, insecure)).status === 200,
  );
  await untilReady("kwok nodes Ready without not-ready taints", components, async () => {
    const { status, body } = await get(`${server}/api/v1/nodes`, admin);
    if (status !== 200) return false;
    const nodes = (JSON.parse(body) as { items: NodeJson[] }).items;
    const fake = nodes.filter(
      (n) => n.metadata.annotations?.[KWOK_NODE_ANNOTATION] === KWOK_NODE_ANNOTATION_VALUE,
    );
    return fake.length > 0 && fake.every(schedulable);
  });
  if (node) {
    await untilReady(`real node ${node.name} Ready`, components, async () => {
      const { status, body } = await get(`${server}/api/v1/nodes/${node.name}`, admin);
      return status === 200 && schedulable(JSON.parse(body) as NodeJson);
    });
  }
  await untilReady("ServiceAccount default/default", components, async () => {
    return (await get(`${server}/api/v1/namespaces/default/serviceaccounts/default`, admin)).status === 200;
  });
  const pgids = components.map((c) => c.pid).filter((p) => !node?.pgids.includes(p));
  return { kubeconfig, server, binDir, logDir, workDir, pgids, node };
}

/**
 * Stops the real node (undoing its host changes) and every component (reverse start order), removes the work
 * dir and releases the lock; logs stay. Returns the host state it could not undo (empty when clean).
 */
export async function stopBed(state: BedState): Promise<string[]> {
  const left = state.node ? await stopNode(state.node, state.binDir) : [];
  await stopGroups([...state.pgids].reverse());
  rmSync(state.workDir, { recursive: true, force: true });
  if (state.lock) state.lock.release();
  else if (state.lockPid !== undefined) releaseDetachedLock(state.lockPid);
  return left;
}
