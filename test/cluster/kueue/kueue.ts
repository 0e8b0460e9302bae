// Real Kueue (sigs.k8s.io/kueue, built by test/bed/build-binaries.sh) for the tests that need it: its CRDs and
// RBAC from its own module, the manager on loopback under its ServiceAccount, and its webhooks registered with the
// apiserver by loopback URL and a serving cert from the bed's CA (its in-cluster cert rotation is off: it assumes a
// Service). The job webhooks only see namespaces labelled mokd-kueue=true, so other tests never wait on Kueue.
import { execFile, spawn } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments, stringify } from "yaml";
import {
  binDir,
  kubeconfigPath,
  kubectl,
  serviceAccountKubeconfig,
  waitCrdEstablished,
  waitFor,
} from "../../bed/env.ts";
import { killAll, processesWhere, stopGroups, tail } from "../../bed/processes.ts";
import { freePort } from "../packaging/prometheus.ts";

const run = promisify(execFile);
export const KUEUE_NAMESPACE = "kueue-system";
const KUEUE_SA = "kueue-controller-manager";
/** Namespaces Kueue manages (its webhooks and its managedJobsNamespaceSelector). */
export const KUEUE_NAMESPACE_LABEL = { key: "mokd-kueue", value: "true" };
const WEBHOOK_NAME = "mokd-bed-kueue";
/**
 * Without its internal cert management Kueue reads its metrics serving cert from this fixed path (no flag):
 * created for the run (the webhook's cert) and removed by stop(), with /etc/kueue if it did not exist.
 */
const METRICS_CERT_DIR = "/etc/kueue/metrics/certs";
/**
 * One Kueue on the bed at a time (its namespace, webhooks and metrics cert path are host-wide): test files that
 * run one take this lock (a directory holding the owner's pid; a dead owner's lock is taken over) and wait.
 */
const LOCK_DIR = join(tmpdir(), "mokd-bed-kueue.lock");

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function tryLock(): boolean {
  try {
    mkdirSync(LOCK_DIR);
  } catch {
    const pidFile = join(LOCK_DIR, "pid");
    const owner = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : 0;
    // No pid yet: its owner is between mkdir and writing it.
    if (!owner || owner === process.pid || pidAlive(owner)) return false;
    rmSync(LOCK_DIR, { recursive: true, force: true });
    return false;
  }
  writeFileSync(join(LOCK_DIR, "pid"), String(process.pid));
  return true;
}

/** Waits (up to `ms`) until this process holds the bed's Kueue lock. */
async function lockKueue(ms: number): Promise<void> {
  await waitFor("the bed's Kueue (another test file is using it)", async () => tryLock(), ms, 1000);
}

/**
 * A run killed before stop() leaves its Kueue (a detached process, outside the bed's process groups) and the
 * metrics cert dir behind; holding the host-wide lock, any Kueue of the bed's binary and that dir are stale.
 */
function sweepStaleKueue(): void {
  const binary = join(binDir(), "kueue");
  killAll(processesWhere((cmdline) => cmdline[0] === binary).map((p) => p.pid));
  rmSync(METRICS_CERT_DIR, { recursive: true, force: true });
}

type Doc = Record<string, unknown> & { kind?: string; metadata?: Record<string, unknown> };

const manifests = () => join(binDir(), "kueue-manifests");

async function applyDocs(docs: object[], serverSide = false): Promise<void> {
  const args = ["apply", ...(serverSide ? ["--server-side", "--force-conflicts"] : []), "-f", "-"];
  const r = await kubectl(args, { input: docs.map((d) => `---\n${stringify(d)}`).join("") });
  if (r.code !== 0) throw new Error(`kubectl apply: ${r.stderr}`);
}

function readDocs(file: string): Doc[] {
  return parseAllDocuments(readFileSync(file, "utf8"))
    .map((d) => d.toJS() as Doc | null)
    .filter((d): d is Doc => d !== null);
}

/** A serving cert for 127.0.0.1 signed by the bed's CA (its PKI sits next to the admin kubeconfig). */
async function servingCert(dir: string): Promise<string> {
  const pki = join(dirname(kubeconfigPath()), "pki");
  const cnf = join(dir, "cert.cnf");
  writeFileSync(
    cnf,
    [
      "[req]",
      "distinguished_name = dn",
      "prompt = no",
      "[dn]",
      "CN = kueue-webhook",
      "[ext]",
      "basicConstraints = critical,CA:FALSE",
      "keyUsage = critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage = serverAuth",
      "subjectAltName = IP:127.0.0.1,DNS:localhost",
      "",
    ].join("\n"),
  );
  // prettier-ignore
  await run("openssl", [
    "req", "-x509", "-new", "-config", cnf, "-extensions", "ext", "-newkey", "ec", "-pkeyopt",
    "ec_paramgen_curve:prime256v1", "-nodes", "-CA", join(pki, "ca.crt"), "-CAkey", join(pki, "ca.key"),
    "-keyout", join(dir, "tls.key"), "-out", join(dir, "tls.crt"), "-days", "2",
  ]);
  return readFileSync(join(pki, "ca.crt")).toString("base64");
}

/** Kueue's webhook configurations, for batch/v1 Jobs and Kueue's own kinds only, pointed at loopback. */
function webhookConfigurations(port: number, caBundle: string): Doc[] {
  const wanted = /\/(mutate|validate)-(batch-v1-job|kueue-x-k8s-io-)/;
  return readDocs(join(manifests(), "webhook", "manifests.yaml")).map((config) => {
    const hooks = (config.webhooks as Doc[]).filter((w) =>
      wanted.test((w.clientConfig as { service: { path: string } }).service.path),
    );
    return {
      ...config,
      metadata: { name: `${WEBHOOK_NAME}-${config.kind === "MutatingWebhookConfiguration" ? "m" : "v"}` },
      webhooks: hooks.map((w) => {
        const path = (w.clientConfig as { service: { path: string } }).service.path;
        const jobs = path.includes("batch-v1-job");
        return {
          ...w,
          clientConfig: { url: `https://127.0.0.1:${port}${path}`, caBundle },
          ...(jobs
            ? {
                namespaceSelector: {
                  matchLabels: { [KUEUE_NAMESPACE_LABEL.key]: KUEUE_NAMESPACE_LABEL.value },
                },
              }
            : {}),
        };
      }),
    };
  });
}

/** Kueue's ClusterRole (from its module) bound to its ServiceAccount. */
async function applyRbac(): Promise<void> {
  const role = readDocs(join(manifests(), "rbac", "role.yaml")).find((d) => d.kind === "ClusterRole")!;
  // It also watches Secrets in its own namespace (a Role in its manifests).
  const secrets = readDocs(join(manifests(), "rbac", "manager_secrets_role.yaml")).find(
    (d) => d.kind === "Role",
  )!;
  await applyDocs([
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: KUEUE_SA, namespace: KUEUE_NAMESPACE } },
    { ...role, metadata: { name: "mokd-bed-kueue-manager" } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "mokd-bed-kueue-manager" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "mokd-bed-kueue-manager" },
      subjects: [{ kind: "ServiceAccount", name: KUEUE_SA, namespace: KUEUE_NAMESPACE }],
    },
    { ...secrets, metadata: { name: "mokd-bed-kueue-secrets", namespace: KUEUE_NAMESPACE } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "mokd-bed-kueue-secrets", namespace: KUEUE_NAMESPACE },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "mokd-bed-kueue-secrets" },
      subjects: [{ kind: "ServiceAccount", name: KUEUE_SA, namespace: KUEUE_NAMESPACE }],
    },
  ]);
}

function configuration(
  webhookPort: number,
  healthPort: number,
  metricsPort: number,
  certDir: string,
): object {
  return {
    apiVersion: "config.kueue.x-k8s.io/v1beta2",
    kind: "Configuration",
    namespace: KUEUE_NAMESPACE,
    health: { healthProbeBindAddress: `127.0.0.1:${healthPort}` },
    metrics: { bindAddress: `127.0.0.1:${metricsPort}` },
    webhook: { port: webhookPort, host: "127.0.0.1", certDir },
    leaderElection: { leaderElect: false },
    internalCertManagement: { enable: false },
    manageJobsWithoutQueueName: false,
    managedJobsNamespaceSelector: {
      matchLabels: { [KUEUE_NAMESPACE_LABEL.key]: KUEUE_NAMESPACE_LABEL.value },
    },
    integrations: { frameworks: ["batch/job"] },
  };
}

export class Kueue {
  private readonly pid: number;
  private readonly dir: string;
  private readonly hostDir: string;
  readonly logFile: string;

  private constructor(pid: number, dir: string, logFile: string, hostDir: string) {
    this.pid = pid;
    this.dir = dir;
    this.logFile = logFile;
    this.hostDir = hostDir;
  }

  /** `lockWaitMs`: how long to wait for another test file's Kueue to stop first. */
  static async start(lockWaitMs = 1_200_000): Promise<Kueue> {
    await lockKueue(lockWaitMs);
    const dir = mkdtempSync(join(tmpdir(), "mokd-kueue-"));
    const crds = join(manifests(), "crd", "bases");
    const crdDocs = readdirSync(crds).flatMap((f) => readDocs(join(crds, f)));
    await applyDocs(crdDocs, true); // too big for client-side apply's last-applied annotation
    // Kueue sets up its indexes at start and exits if a kind is not served yet.
    for (const doc of crdDocs) await waitCrdEstablished(doc.metadata!.name as string);
    await kubectl(["create", "namespace", KUEUE_NAMESPACE]);
    await applyRbac();
    const [webhookPort, healthPort, metricsPort, visibilityPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const caBundle = await servingCert(dir);
    sweepStaleKueue();
    const createdEtc = !existsSync("/etc/kueue");
    mkdirSync(METRICS_CERT_DIR, { recursive: true });
    for (const f of ["tls.crt", "tls.key"]) copyFileSync(join(dir, f), join(METRICS_CERT_DIR, f));
    writeFileSync(
      join(dir, "config.yaml"),
      stringify(configuration(webhookPort, healthPort, metricsPort, dir)),
    );
    const kubeconfig = await serviceAccountKubeconfig(KUEUE_NAMESPACE, KUEUE_SA);
    const logFile = join(dir, "kueue.log");
    const fd = openSync(logFile, "a");
    const child = spawn(
      join(binDir(), "kueue"),
      // prettier-ignore
      [
        `--config=${join(dir, "config.yaml")}`, `--kubeconfig=${kubeconfig}`, "--zap-log-level=2",
        `--visibility-server-port=${visibilityPort}`, "--feature-gates=VisibilityOnDemand=false",
      ],
      { detached: true, stdio: ["ignore", fd, fd] },
    );
    closeSync(fd);
    child.unref();
    const kueue = new Kueue(child.pid!, dir, logFile, createdEtc ? "/etc/kueue" : METRICS_CERT_DIR);
    try {
      const ready = await waitFor(
        "Kueue /readyz",
        async () => {
          if (child.exitCode !== null) return `kueue exited ${child.exitCode}`;
          return (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).ok && "ready";
        },
        90_000,
        500,
      );
      if (ready !== "ready") throw new Error(ready);
      await applyDocs(webhookConfigurations(webhookPort, caBundle));
    } catch (err) {
      const log = kueue.log();
      await kueue.stop();
      throw new Error(`${(err as Error).message}\n${log}`, { cause: err });
    }
    return kueue;
  }

  log(lines = 60): string {
    return tail(this.logFile, lines);
  }

  /** Webhooks first: with Kueue gone, a registered webhook would refuse every Job of its namespaces. */
  async stop(): Promise<void> {
    await kubectl(["delete", "mutatingwebhookconfiguration", `${WEBHOOK_NAME}-m`, "--ignore-not-found"]);
    await kubectl(["delete", "validatingwebhookconfiguration", `${WEBHOOK_NAME}-v`, "--ignore-not-found"]);
    await stopGroups([this.pid]);
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.hostDir, { recursive: true, force: true });
    rmSync(LOCK_DIR, { recursive: true, force: true });
  }
}

/** A test namespace's Kueue queues: its LocalQueue and the quota of its ClusterQueue. */
export interface TestQueues {
  /** The LocalQueue (in the namespace) its jobs name. */
  localQueue: string;
  cpu: string;
  memory: string;
  gpus: number;
  /** preemption.withinClusterQueue: LowerPriority (a higher-priority workload evicts a running lower one). */
  preemptLowerPriority?: boolean;
}

/** The ClusterQueue of a test namespace (cluster-scoped: the test deletes it with deleteTestQueues). */
export const testClusterQueue = (namespace: string) => `gpus-${namespace}`;

/**
 * Kueue's objects for one test namespace: one flavor, a ClusterQueue admitting only that namespace's workloads
 * against the quota, and the LocalQueue.
 */
export async function applyTestQueues(namespace: string, q: TestQueues): Promise<void> {
  const docs = [
    { apiVersion: "kueue.x-k8s.io/v1beta2", kind: "ResourceFlavor", metadata: { name: "default-flavor" } },
    {
      apiVersion: "kueue.x-k8s.io/v1beta2",
      kind: "ClusterQueue",
      metadata: { name: testClusterQueue(namespace) },
      spec: {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } },
        ...(q.preemptLowerPriority ? { preemption: { withinClusterQueue: "LowerPriority" } } : {}),
        resourceGroups: [
          {
            coveredResources: ["cpu", "memory", "nvidia.com/gpu"],
            flavors: [
              {
                name: "default-flavor",
                resources: [
                  { name: "cpu", nominalQuota: q.cpu },
                  { name: "memory", nominalQuota: q.memory },
                  { name: "nvidia.com/gpu", nominalQuota: String(q.gpus) },
                ],
              },
            ],
          },
        ],
      },
    },
    {
      apiVersion: "kueue.x-k8s.io/v1beta2",
      kind: "LocalQueue",
      metadata: { name: q.localQueue, namespace },
      spec: { clusterQueue: testClusterQueue(namespace) },
    },
  ];
  await applyDocs(docs);
}

export async function deleteTestQueues(namespace: string): Promise<void> {
  await kubectl(["delete", "clusterqueue", testClusterQueue(namespace), "--wait=false"]);
}

/** The PriorityClasses of the preemption tests (cluster-scoped, shared by the files that use them). */
export const TEST_PRIORITY = { low: "mokd-test-low", high: "mokd-test-high" } as const;

export async function applyTestPriorityClasses(): Promise<void> {
  await applyDocs(
    [
      [TEST_PRIORITY.low, 100],
      [TEST_PRIORITY.high, 1000],
    ].map(([name, value]) => ({
      apiVersion: "scheduling.k8s.io/v1",
      kind: "PriorityClass",
      metadata: { name },
      value,
      // Kueue preempts by these values (it suspends the lower workload); the scheduler must not: on the shared
      // real node it would evict other files' pods (priority 0) to place ours, restarting their runs.
      preemptionPolicy: "Never",
    })),
  );
}
