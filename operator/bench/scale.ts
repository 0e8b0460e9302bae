// Scale benchmark of the operator (issue 4, point 8): N DistillationJobs applied at once on the test control
// plane -> time until every child batch/v1 Job exists, operator peak RSS, API requests the operator made, and
// requests while idle (must be watches only: no polling).
//
//   npm run bench:scale -- [--jobs 1000] [--gpus 1] [--idle-seconds 30] [--settle-timeout 120] [--no-write] [--profile DIR]
//                      [--operator-concurrency N] [--operator-root DIR] [--operator-node-options "FLAGS"] [--cold-start]
//                      [--as-service-account]
//
// Runs against the cluster of MOKD_TEST_KUBECONFIG (else KUBECONFIG) as admin; `npm run bench:scale` runs it
// under `node test/bed/cli.ts run`, which uses the bed from `npm run testbed:up` or starts (and stops) one, so
// the bench itself imports nothing of the test tree. The operator runs as `node operator/src/main.ts` with a
// kubeconfig pointing at a counting HTTP proxy in a process of its own (proxy-process.ts, api-proxy.ts; it
// forwards as admin, or as the chart's service account with --as-service-account), so every
// API request the operator makes is counted exactly, by verb and resource. Results go to docs/benchmarks.md
// "Operator scale".
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import YAML from "yaml";
import {
  API_VERSION,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
  type DistillationJobStatus,
} from "../../api/v1alpha1/index.ts";
import { watchResource } from "../src/lib/informer.ts";
import { KubeHttp, isStatus } from "../src/lib/kube-http.ts";
import { ConvergenceTracker, Stage, type ConvergenceSummary } from "./convergence.ts";
import { installOperatorAccount } from "./operator-account.ts";
import { startProxyProcess } from "./proxy-process.ts";
import { cpuSecondsOf, findProcesses } from "./proc.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const log = (message: string) => console.error(`[bench:scale] ${message}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} needs a number`);
  return value;
}
const JOBS = flag("jobs", 1000);
const GPUS = flag("gpus", 1);
const IDLE_SECONDS = flag("idle-seconds", 30);
/** --operator-root DIR: run operator/src/main.ts from another checkout (to compare a change). */
const OPERATOR_ROOT = process.argv.includes("--operator-root")
  ? process.argv[process.argv.indexOf("--operator-root") + 1]!
  : ROOT;
/** --operator-concurrency N: the operator's --concurrency (0: its default). */
const OPERATOR_CONCURRENCY = flag("operator-concurrency", 0);
/**
 * --operator-node-options "FLAGS": Node/V8 flags for the operator process. Default: the ones the chart's
 * Deployment sets in NODE_OPTIONS (charts/mokd-operator/templates/deployment.yaml), so the bench measures what
 * runs in a cluster; "" for none.
 */
const OPERATOR_NODE_OPTIONS = process.argv.includes("--operator-node-options")
  ? process.argv[process.argv.indexOf("--operator-node-options") + 1]!
  : chartNodeOptions();
const SETTLE_TIMEOUT_SECONDS = flag("settle-timeout", 120);
/** Issue 18's bound: every status current within this long after its child's change. */
const CONVERGENCE_BOUND_SECONDS = 30;
/**
 * Node's compile cache keeps the stripped TypeScript, so a warm start never loads the type stripper (~25 MiB
 * RSS). Default: warm (as a restarted container with the chart's NODE_COMPILE_CACHE, or an image with a built
 * cache); --cold-start: an empty cache, as a container's very first start.
 */
const COLD_START = process.argv.includes("--cold-start");
const WRITE = !process.argv.includes("--no-write");
/**
 * --as-service-account: the operator's requests go to the apiserver as the chart's service account (its RBAC,
 * and its APF FlowSchema for the Lease, applied from the chart), not as admin, whom APF exempts from queuing.
 */
const AS_SERVICE_ACCOUNT = process.argv.includes("--as-service-account");
/** --profile DIR: write a V8 CPU profile of the operator there (on its graceful exit). */
const PROFILE_DIR = process.argv.includes("--profile")
  ? process.argv[process.argv.indexOf("--profile") + 1]
  : undefined;

/**
 * An env value of the chart Deployment's operator container (undefined when it sets none), with its
 * `{{ .Values.x }}` references filled from the chart's default values (e.g. heapLimitMiB in NODE_OPTIONS).
 */
function chartEnv(name: string): string | undefined {
  const text = readFileSync(join(ROOT, "charts/mokd-operator/templates/deployment.yaml"), "utf8");
  const match = new RegExp(`- name: ${name}\\s*\\n\\s*value:\\s*"?([^"\\n]*)"?`).exec(text);
  const values = YAML.parse(readFileSync(join(ROOT, "charts/mokd-operator/values.yaml"), "utf8")) as Record<
    string,
    unknown
  >;
  return match?.[1]?.trim().replace(/\{\{\s*\.Values\.(\w+)\s*\}\}/g, (_, key: string) => {
    const value = values[key];
    if (typeof value !== "string" && typeof value !== "number") throw new Error(`values.yaml has no ${key}`);
    return String(value);
  });
}

function chartNodeOptions(): string {
  return chartEnv("NODE_OPTIONS") ?? "";
}

/** The process environment settings of the chart (besides NODE_OPTIONS), also applied to the bench's operator. */
const CHART_RUNTIME_ENV = ["MALLOC_ARENA_MAX"] as const;

interface Bed {
  kubeconfig: string;
}

/** The cluster to measure on: the test bed's (test/bed/cli.ts run sets it), or KUBECONFIG's. */
function bed(): Bed {
  const kubeconfig = process.env.MOKD_TEST_KUBECONFIG || process.env.KUBECONFIG;
  if (!kubeconfig) {
    throw new Error(
      "no cluster: run `npm run bench:scale` (it starts a test bed) or set MOKD_TEST_KUBECONFIG",
    );
  }
  log(`using the cluster of ${kubeconfig}`);
  return { kubeconfig };
}

/** Server-side applies every CRD in crds/ and waits until each is Established. */
async function installCrds(api: KubeHttp): Promise<void> {
  const dir = join(ROOT, "crds");
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".yaml"))) {
    const crd = YAML.parse(readFileSync(join(dir, file), "utf8")) as { metadata: { name: string } };
    const path = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`;
    try {
      await api.request(path, {
        method: "PATCH",
        body: crd,
        contentType: "application/apply-patch+yaml",
        query: { fieldManager: "mokd-bench", force: true },
      });
    } catch (error) {
      // A CRD installed beforehand (e.g. by the chart) is fine; otherwise the wait below fails.
      log(`could not apply ${file}: ${String(error)}; using the installed CRD if there is one`);
    }
    await waitUntil(
      `CRD ${crd.metadata.name} Established`,
      async () => {
        const current = await api.request<{ status?: { conditions?: { type: string; status: string }[] } }>(
          path,
        );
        return (
          current.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") ?? false
        );
      },
      30_000,
    );
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function proxyKubeconfig(server: string): string {
  const file = join(mkdtempSync(join(tmpdir(), "mokd-bench-")), "kubeconfig.yaml");
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "proxy", cluster: { server, "insecure-skip-tls-verify": true } }],
    users: [{ name: "proxy", user: {} }],
    contexts: [{ name: "proxy", context: { cluster: "proxy", user: "proxy" } }],
    "current-context": "proxy",
  };
  writeFileSync(file, YAML.stringify(config));
  return file;
}

/** A compile cache for the operator: filled by a start that loads every module and exits on a bad flag. */
const tempDirs: string[] = [];

function compileCache(): string {
  const dir = mkdtempSync(join(tmpdir(), "mokd-bench-compile-cache-"));
  tempDirs.push(dir);
  if (COLD_START) return dir;
  const warm = spawnSync(process.execPath, ["operator/src/main.ts", "--port=warm-up"], {
    cwd: OPERATOR_ROOT,
    env: { ...process.env, NODE_COMPILE_CACHE: dir },
  });
  if (warm.status !== 2) throw new Error(`compile cache warm-up: ${warm.stderr.toString()}`);
  return dir;
}

/** Set when the operator logs that it lost its leader Lease (it exits then, as controller-runtime's do). */
let leaseLost = false;
/** Lease requests that failed or timed out (the operator logs each; it retries until the renew deadline). */
let leaseErrors = 0;

function startOperator(kubeconfig: string, port: number, leaseNamespace: string): ChildProcess {
  const profile = PROFILE_DIR ? ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`] : [];
  const args = [
    ...profile,
    "operator/src/main.ts",
    `--port=${port}`,
    `--lease-namespace=${leaseNamespace}`,
    "--log-level=" + (process.env.BENCH_OPERATOR_LOG_LEVEL ?? "warn"),
    ...(OPERATOR_CONCURRENCY ? [`--concurrency=${OPERATOR_CONCURRENCY}`] : []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: OPERATOR_ROOT,
    env: {
      ...process.env,
      ...Object.fromEntries(
        CHART_RUNTIME_ENV.flatMap((name) => (chartEnv(name) ? [[name, chartEnv(name)]] : [])),
      ),
      KUBECONFIG: kubeconfig,
      NODE_OPTIONS: OPERATOR_NODE_OPTIONS,
      NODE_COMPILE_CACHE: compileCache(),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.setEncoding("utf8").on("data", (text: string) => {
      if (text.includes("lost the leader lease")) leaseLost = true;
      leaseErrors += text.split("leader election error").length - 1;
      process.stderr.write(text);
    });
  }
  child.on("exit", (code, signal) => log(`operator exited (${code ?? signal})`));
  return child;
}

/** The operator's longest event-loop delay seen (its Lease renewals wait behind it too), seconds. */
let maxEventLoopLagS = 0;

/** Set when the operator exits mid-run (it lost its Lease, or crashed): every wait stops at once. */
let operatorGone: string | undefined;

function abortWaits(): boolean {
  if (operatorGone) {
    const lag = `its longest event-loop delay: ${maxEventLoopLagS.toFixed(2)} s`;
    throw new Error(`the operator exited (${operatorGone}); lease lost: ${leaseLost}; ${lag}`);
  }
  return false;
}

async function waitUntil(
  what: string,
  fn: () => Promise<boolean> | boolean,
  timeoutMs: number,
  everyMs = 100,
) {
  const deadline = Date.now() + timeoutMs;
  while (
    !abortWaits() &&
    !(await Promise.resolve()
      .then(fn)
      .catch(() => false))
  ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

function procStatus(pid: number, field: "VmHWM" | "VmRSS"): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : NaN;
}

/** Memory of the operator at one moment: RSS from /proc, the V8 heap split from its /metrics (prom-client). */
interface MemorySample {
  rssMiB: number;
  heapTotalMiB: number;
  heapUsedMiB: number;
  newSpaceMiB: number;
  oldSpaceMiB: number;
  externalMiB: number;
  /** The longest event-loop delay since the previous scrape (prom-client resets it on each), seconds. */
  eventLoopLagMaxS: number;
}

async function sampleMemory(pid: number, port: number): Promise<MemorySample> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? NaN) / 2 ** 20;
  return {
    rssMiB: procStatus(pid, "VmRSS"),
    heapTotalMiB: value(/^nodejs_heap_size_total_bytes (\S+)/m),
    heapUsedMiB: value(/^nodejs_heap_size_used_bytes (\S+)/m),
    newSpaceMiB: value(/^nodejs_heap_space_size_total_bytes\{space="new"\} (\S+)/m),
    oldSpaceMiB: value(/^nodejs_heap_space_size_total_bytes\{space="old"\} (\S+)/m),
    externalMiB: value(/^nodejs_external_memory_bytes (\S+)/m),
    eventLoopLagMaxS: Number(/^nodejs_eventloop_lag_max_seconds (\S+)/m.exec(text)?.[1] ?? NaN),
  };
}

/** Samples the operator's memory every `everyMs` until stopped; keeps the sample with the highest RSS. */
function memoryPeakSampler(pid: number, port: number, everyMs = 500) {
  let peak: MemorySample | undefined;
  let running = true;
  const loop = (async () => {
    while (running) {
      const sample = await sampleMemory(pid, port).catch(() => undefined);
      if (sample && (!peak || sample.rssMiB > peak.rssMiB)) peak = sample;
      if (sample && sample.eventLoopLagMaxS > maxEventLoopLagS) maxEventLoopLagS = sample.eventLoopLagMaxS;
      await sleep(everyMs);
    }
  })();
  return {
    async stop(): Promise<MemorySample | undefined> {
      running = false;
      await loop;
      return peak;
    },
  };
}

function distillationJob(namespace: string, i: number): object {
  const example = YAML.parse(readFileSync(join(ROOT, "examples/fashion-mnist.yaml"), "utf8")) as {
    spec: { runtime?: Record<string, unknown>; runPolicy?: Record<string, unknown> };
  };
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: `scale-${String(i).padStart(5, "0")}`, namespace },
    spec: {
      ...example.spec,
      runtime: { ...example.spec.runtime, gpus: GPUS },
      // Thousands of jobs wait for 60 GPUs longer than the default 600 s pending deadline; the bench measures
      // the burst and its statuses, not a deadline failing them all at once (0: wait forever).
      runPolicy: { ...example.spec.runPolicy, pendingDeadlineSeconds: 0 },
    },
  };
}

/**
 * The operator watches every namespace: a previous run's namespace that is still being deleted (1000 jobs take
 * minutes to collect) would make it work on those too, and keep the control plane busy. Wait until it is gone.
 */
async function waitForLeftovers(api: KubeHttp): Promise<void> {
  const leftovers = async () =>
    (await api.request<{ items: { metadata: { name: string } }[] }>("/api/v1/namespaces")).items
      .map((n) => n.metadata.name)
      .filter((name) => name.startsWith("bench-scale-"));
  const found = await leftovers();
  if (found.length === 0) return;
  log(`waiting for the namespaces of earlier runs to be deleted: ${found.join(", ")}`);
  for (const name of found) {
    await api.request(`/api/v1/namespaces/${name}`, { method: "DELETE" }).catch(() => undefined);
  }
  await waitUntil(
    "earlier bench namespaces to be deleted",
    async () => (await leftovers()).length === 0,
    900_000,
    2000,
  );
}

type Watched = KubernetesObject & {
  status?: {
    phase?: string;
    conditions?: { type: string; status: string; reason?: string }[];
  };
};

/**
 * The bench's own watches of the namespace: child Jobs (counted), their pods, and the DistillationJobs, feeding
 * every child change and every status to the convergence tracker with the time the bench saw it.
 */
function watchChildren(kubeConfig: KubeConfig, namespace: string, tracker: ConvergenceTracker) {
  const ownerOfJob = new Map<string, string>();
  const condition = (o: Watched, type: string) => o.status?.conditions?.find((c) => c.type === type);
  const children = watchResource<Watched>({
    kubeConfig,
    path: `/apis/batch/v1/namespaces/${namespace}/jobs`,
    onEvent: (type, job) => {
      const owner = job.metadata?.ownerReferences?.find((r) => r.controller)?.name;
      if (!owner || type === "DELETED") return;
      ownerOfJob.set(job.metadata!.name!, owner);
      const now = performance.now();
      tracker.child(owner, Stage.JobCreated, now);
      const finished = ["Complete", "Failed"].some((t) => condition(job, t)?.status === "True");
      if (finished) tracker.child(owner, Stage.JobFinished, now);
    },
  });
  const pods = watchResource<Watched>({
    kubeConfig,
    path: `/api/v1/namespaces/${namespace}/pods`,
    onEvent: (type, pod) => {
      const jobName = pod.metadata?.labels?.["batch.kubernetes.io/job-name"];
      const owner = jobName ? (ownerOfJob.get(jobName) ?? jobName) : undefined;
      if (!owner || type === "DELETED") return;
      const now = performance.now();
      tracker.child(owner, Stage.PodCreated, now);
      const scheduled = condition(pod, "PodScheduled");
      if (scheduled?.status === "False" && scheduled.reason === "Unschedulable")
        tracker.child(owner, Stage.PodUnschedulable, now);
      if (pod.status?.phase === "Running") tracker.child(owner, Stage.PodRunning, now);
    },
  });
  const statuses = watchResource<Watched>({
    kubeConfig,
    path: `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`,
    onEvent: (type, dj) => {
      if (type !== "DELETED")
        tracker.status(dj.metadata!.name!, dj.status as DistillationJobStatus, performance.now());
    },
  });
  return { children, watches: [children, pods, statuses] };
}

/** Runs fn over items with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

/** "VERB resource" of a proxied request line such as "GET /apis/batch/v1/namespaces/x/jobs?watch=1". */
export function classify(line: string): string {
  const [method = "", url = ""] = line.split(" ");
  const [path = "", query = ""] = url.split("?");
  const parts = path.split("/").filter(Boolean);
  const core = parts[0] === "api" ? parts.slice(2) : parts.slice(3);
  const rest = core[0] === "namespaces" && core.length > 2 ? core.slice(2) : core;
  const resource = rest[0] ?? "namespaces";
  const subresource = rest[2] ? `/${rest[2]}` : "";
  const isCollection = rest.length === 1;
  let verb = { POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" }[method] ?? "get";
  if (method === "GET" && /(^|&)watch=(1|true)/.test(query)) verb = "watch";
  else if (method === "GET" && isCollection) verb = "list";
  return `${verb} ${resource}${subresource}`;
}

/** Requests expected at any time: watches, and the Lease renewals of leader election (every retry period). */
function isBackground(kind: string): boolean {
  return kind.startsWith("watch ") || kind.endsWith(" leases");
}

function countBy(lines: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of lines) counts.set(classify(line), (counts.get(classify(line)) ?? 0) + 1);
  return new Map([...counts].sort((a, b) => b[1] - a[1]));
}

interface Result {
  jobs: number;
  convergence: ConvergenceSummary;
  leaseLost: boolean;
  eventLoopLagMaxS: number;
  operatorExited: string | undefined;
  /** CPU seconds each process of the bed (and the operator) used from the burst until settled. */
  cpuSeconds: Map<string, number>;
  burstSeconds: number;
  applySeconds: number;
  allChildrenSeconds: number;
  rssReadyMiB: number;
  peakRssMiB: number;
  rssAfterMiB: number;
  /** Load average (1, 5, 15 min) when the burst started: the machine is shared. */
  load: number[];
  atPeak: MemorySample | undefined;
  idle: MemorySample | undefined;
  burstRequests: Map<string, number>;
  settleSeconds: number;
  idleRequests: Map<string, number>;
  idleSeconds: number;
}

async function measure(b: Bed): Promise<Result> {
  const admin = new KubeConfig();
  admin.loadFromFile(b.kubeconfig);
  const api = new KubeHttp(admin, "mokd-bench");
  log("installing the CRD");
  await installCrds(api);
  await waitForLeftovers(api);
  const namespace = `bench-scale-${Date.now().toString(36)}`;
  await api.request("/api/v1/namespaces", { method: "POST", body: { metadata: { name: namespace } } });

  const account = AS_SERVICE_ACCOUNT ? installOperatorAccount(ROOT, namespace) : undefined;
  log(`the operator's requests go to the apiserver as ${account ?? "admin (system:masters)"}`);
  const proxy = await startProxyProcess(b.kubeconfig, account);
  const port = await freePort();
  const operator = startOperator(proxyKubeconfig(proxy.server), port, namespace);
  const tracker = new ConvergenceTracker();
  const { children, watches } = watchChildren(admin, namespace, tracker);
  let operatorExited: string | undefined;
  let started: number | undefined;
  let stopping = false;
  let progress: NodeJS.Timeout | undefined;
  operator.on("exit", (code, signal) => {
    operatorExited = String(code ?? signal);
    const at =
      started === undefined
        ? "before the burst"
        : `${((performance.now() - started) / 1000).toFixed(1)} s into the burst`;
    if (!stopping) operatorGone = `${operatorExited}, ${at}`;
  });
  try {
    await Promise.all(watches.map((w) => w.start()));
    log(`waiting for the operator (pid ${operator.pid}) to become ready`);
    await waitUntil(
      "operator /readyz",
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok,
      60_000,
    );
    const pid = operator.pid!;
    const rssReadyMiB = procStatus(pid, "VmRSS");
    const before = proxy.requests.length;
    const sampler = memoryPeakSampler(pid, port);

    const load = loadavg();
    const bedProcesses = findProcesses(
      ["kube-apiserver", "etcd", "kube-controller", "kube-scheduler", "kwok"],
      dirname(b.kubeconfig),
    );
    bedProcesses.set("operator", pid);
    const cpuBefore = cpuSecondsOf(bedProcesses);
    log(`applying ${JOBS} DistillationJobs`);
    started = performance.now();
    const items = Array.from({ length: JOBS }, (_, i) => distillationJob(namespace, i));
    await pool(items, 64, (body) =>
      api.request(`/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`, { method: "POST", body }),
    );
    const applySeconds = (performance.now() - started) / 1000;
    // Every 30 s, how far it got (a run stopped early still leaves its figures in the log).
    progress = setInterval(() => {
      const c = tracker.summary(CONVERGENCE_BOUND_SECONDS * 1000);
      const at = ((performance.now() - started!) / 1000).toFixed(0);
      log(
        `${at} s: ${children.list().length} child Jobs; convergence so far p50/p95/max ${fmt(c.p50)}/` +
          `${fmt(c.p95)}/${fmt(c.max)} s, ${c.overBound} of ${c.jobs} over ${CONVERGENCE_BOUND_SECONDS} s ` +
          `(${c.neverShown} not shown yet); ${proxy.requests.length - before} requests; ` +
          `RSS peak ${procStatus(pid, "VmHWM").toFixed(0)} MiB; event-loop delay max ${maxEventLoopLagS.toFixed(2)} s; ` +
          `lease lost: ${leaseLost}; load ${loadavg()[0]!.toFixed(1)}`,
      );
    }, 30_000);
    await waitUntil(
      `${JOBS} child Jobs`,
      () => children.list().length >= JOBS,
      Math.max(600_000, JOBS * 120),
      50,
    );
    const allChildrenSeconds = (performance.now() - started) / 1000;
    log(
      `all ${JOBS} child Jobs exist after ${allChildrenSeconds.toFixed(1)} s; waiting for the operator to settle`,
    );

    // Settled: every child change shown on its job's status, and nothing but watches and Lease renewals for 5 s
    // in a row (status updates and events of the burst are done).
    const settleStart = performance.now();
    let quietSince = performance.now();
    let seen = proxy.requests.length;
    const settled = await waitUntil(
      "the operator to settle",
      () => {
        const fresh = proxy.requests.slice(seen).filter((r) => !isBackground(classify(r)));
        seen = proxy.requests.length;
        if (fresh.length > 0) quietSince = performance.now();
        return performance.now() - quietSince > 5000 && tracker.converged();
      },
      SETTLE_TIMEOUT_SECONDS * 1000,
      250,
    ).then(
      () => true,
      () => false,
    );
    const settleSeconds = settled ? (performance.now() - settleStart) / 1000 - 5 : NaN;
    if (!settled)
      log(`the operator did not settle within ${SETTLE_TIMEOUT_SECONDS} s (measuring idle anyway)`);
    clearInterval(progress);
    const burstRequests = countBy(proxy.requests.slice(before));
    const burstSeconds = (performance.now() - started) / 1000;
    const cpuAfter = cpuSecondsOf(bedProcesses);
    const cpuSeconds = new Map([...cpuAfter].map(([name, s]) => [name, s - (cpuBefore.get(name) ?? 0)]));
    const convergence = tracker.summary(CONVERGENCE_BOUND_SECONDS * 1000);
    log(`the slowest jobs (stage@seconds since the first create; stages: ${JSON.stringify(Stage)}):`);
    for (const line of tracker.worst(5, started)) log(`  ${line}`);
    const atPeak = await sampler.stop();

    log(`counting requests over ${IDLE_SECONDS} s of idleness`);
    const idleFrom = proxy.requests.length;
    await sleep(IDLE_SECONDS * 1000);
    const idleRequests = countBy(proxy.requests.slice(idleFrom));
    const idle = await sampleMemory(pid, port).catch(() => undefined);
    return {
      jobs: JOBS,
      convergence,
      leaseLost,
      eventLoopLagMaxS: maxEventLoopLagS,
      operatorExited,
      cpuSeconds,
      burstSeconds,
      applySeconds,
      allChildrenSeconds,
      rssReadyMiB,
      peakRssMiB: procStatus(pid, "VmHWM"),
      rssAfterMiB: procStatus(pid, "VmRSS"),
      load,
      atPeak,
      idle,
      burstRequests,
      settleSeconds,
      idleRequests,
      idleSeconds: IDLE_SECONDS,
    };
  } finally {
    clearInterval(progress);
    stopping = true;
    watches.forEach((w) => w.stop());
    operator.kill("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 2000));
    if (operator.exitCode === null) operator.kill("SIGKILL");
    await proxy.close();
    // Deleting the jobs first (a deletecollection) is much faster than leaving them to the namespace controller.
    await api
      .request(`/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`, { method: "DELETE" })
      .catch((e: unknown) => log(`DistillationJob cleanup: ${String(e)}`));
    await api
      .request(`/api/v1/namespaces/${namespace}`, { method: "DELETE" })
      .catch((e: unknown) => (isStatus(e, 404) ? undefined : log(`namespace cleanup: ${String(e)}`)));
    api.close();
    for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

function total(counts: Map<string, number>): number {
  return [...counts.values()].reduce((a, b) => a + b, 0);
}

/** Requests that change something (create, update, patch, delete), Lease renewals left out. */
function writes(counts: Map<string, number>): number {
  return [...counts]
    .filter(([k]) => /^(create|update|patch|delete) /.test(k) && !k.endsWith(" leases"))
    .reduce((a, [, v]) => a + v, 0);
}

const fmt = (n: number) => (Number.isNaN(n) ? "-" : n.toFixed(1));

function formatCounts(counts: Map<string, number>): string {
  return counts.size === 0 ? "none" : [...counts].map(([k, v]) => `${k}: ${v}`).join(", ");
}

function report(r: Result): string {
  const rows: [string, string, string][] = [
    ["DistillationJobs applied (64 parallel creates)", `${r.jobs} in ${r.applySeconds.toFixed(1)} s`, ""],
    ["Time until every child batch/v1 Job exists", `${r.allChildrenSeconds.toFixed(1)} s`, "<= 30 s"],
    ["Operator RSS when ready, before the burst", `${r.rssReadyMiB.toFixed(0)} MiB`, ""],
    ["Operator peak RSS (VmHWM)", `${r.peakRssMiB.toFixed(0)} MiB`, "<= 256 MiB"],
    ["Operator RSS after the burst", `${r.rssAfterMiB.toFixed(0)} MiB`, ""],
    ["API requests by the operator, burst until settled", `${total(r.burstRequests)}`, ""],
    [
      "Settling after the last child Job (5 s with only watches and Lease renewals)",
      Number.isNaN(r.settleSeconds)
        ? `not within ${SETTLE_TIMEOUT_SECONDS} s`
        : `${r.settleSeconds.toFixed(1)} s`,
      "",
    ],
    [
      "Status convergence per job: its child's change -> its status shows it (p50 / p95 / max)",
      `${fmt(r.convergence.p50)} / ${fmt(r.convergence.p95)} / ${fmt(r.convergence.max)} s`,
      "",
    ],
    [
      `Jobs whose status lagged a child change by more than ${CONVERGENCE_BOUND_SECONDS} s (never shown)`,
      `${r.convergence.overBound} of ${r.convergence.jobs} (${r.convergence.neverShown})`,
      "0",
    ],
    [
      "API requests per job, burst until settled (writes: create/update/patch/delete)",
      `${(total(r.burstRequests) / r.jobs).toFixed(2)} (${(writes(r.burstRequests) / r.jobs).toFixed(2)})`,
      "constant in N",
    ],
    [
      "Leader Lease lost (operator exited)",
      `${r.leaseLost ? "yes" : "no"} (${r.operatorExited === undefined ? "no" : `exited ${r.operatorExited}`})`,
      "no",
    ],
    ["Lease requests that failed or timed out (retried within the renew deadline)", `${leaseErrors}`, ""],
    [
      "The operator's requests reach the apiserver as",
      AS_SERVICE_ACCOUNT ? "its service account (APF applies)" : "admin (APF exempt)",
      "",
    ],
    [
      "Operator's longest event-loop delay (sampled every 0.5 s; Lease renewals wait behind it)",
      `${r.eventLoopLagMaxS.toFixed(2)} s`,
      "< 10 s (renew deadline)",
    ],
    [
      `CPU seconds over the burst (${r.burstSeconds.toFixed(0)} s wall, 2 cores)`,
      [...r.cpuSeconds].map(([name, s]) => `${name} ${s.toFixed(0)}`).join(", "),
      "",
    ],
    [
      `API requests while idle (${r.idleSeconds} s), besides watches and Lease renewals`,
      `${total(new Map([...r.idleRequests].filter(([k]) => !isBackground(k))))}`,
      "0 (no polling)",
    ],
  ];
  const table = [
    "| Measure | Result | Target |",
    "| --- | --- | --- |",
    ...rows.map(([a, b, c]) => `| ${a} | ${b} | ${c} |`),
  ];
  const mib = (n: number) => `${n.toFixed(0)} MiB`;
  const split = (m: MemorySample | undefined) =>
    m
      ? `RSS ${mib(m.rssMiB)} = V8 heap ${mib(m.heapTotalMiB)} (${mib(m.heapUsedMiB)} used; new space ` +
        `${mib(m.newSpaceMiB)}, old space ${mib(m.oldSpaceMiB)}) + external ${mib(m.externalMiB)} + the rest ` +
        `(code, wasm, native)`
      : "not sampled";
  return [
    ...table,
    "",
    `Operator Node options: ${OPERATOR_NODE_OPTIONS ? `\`${OPERATOR_NODE_OPTIONS}\`` : "none"}; ` +
      `malloc: ${CHART_RUNTIME_ENV.map((n) => `${n}=${chartEnv(n) ?? "unset"}`).join(", ")}; ` +
      `compile cache: ${COLD_START ? "empty (first start)" : "warm"}.`,
    `Memory at the highest sampled RSS (every 0.5 s, heap from the operator's /metrics): ${split(r.atPeak)}.`,
    `Memory after the idle period: ${split(r.idle)}.`,
    "",
    `Burst requests by verb and resource: ${formatCounts(r.burstRequests)}.`,
    "",
    `Burst requests per job: ${formatCounts(new Map([...r.burstRequests].map(([k, v]) => [k, Number((v / r.jobs).toFixed(3))])))}.`,
    "",
    `Idle requests by verb and resource: ${formatCounts(r.idleRequests)}.`,
  ].join("\n");
}

function writeDocs(body: string, r: Result): void {
  const file = join(ROOT, "docs/benchmarks.md");
  const command = `npm run bench:scale -- ${process.argv.slice(2).join(" ")}`.trim();
  const cpu = cpus();
  const machine = `${cpu.length} x ${cpu[0]?.model ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}`;
  const section = [
    "## Operator scale",
    "",
    `Command: \`${command}\` — ${new Date().toISOString().slice(0, 10)}, ${machine}, load average ` +
      `${r.load.map((l) => l.toFixed(1)).join(" / ")} at the start of the burst; the test bed's`,
    "kube-apiserver, controller-manager, scheduler and kwok ran on the same machine. API requests are counted at a",
    "proxy in front of the operator (operator/bench/scale.ts), so they are exactly the operator's own.",
    "",
    body,
    "",
  ].join("\n");
  const existing = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n";
  // Replaces the generated part only: up to the next section or the hand-written analysis below it.
  const pattern = /## Operator scale\n[\s\S]*?(?=\n## |\n### Operator scale: analysis|$)/;
  const next = pattern.test(existing)
    ? existing.replace(pattern, section.trimEnd() + "\n")
    : `${existing.trimEnd()}\n\n${section}`;
  writeFileSync(file, next);
  log(`wrote ${file}`);
}

const result = await measure(bed());
const body = report(result);
console.log(body);
if (WRITE) writeDocs(body, result);
