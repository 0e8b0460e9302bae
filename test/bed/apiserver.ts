// A second kube-apiserver of the bed, for tests that kill and restart "the" apiserver of one client.
//
// Why a second one instead of restarting the bed's own: the cluster tests run concurrently (two workers), and
// every other test file, kube-controller-manager, the scheduler and kwok talk to the bed's apiserver. This one
// is started with exactly the bed apiserver's flags (read from /proc), on another port and cert dir, over the
// same etcd — an HA control plane — so a client pointed at it sees a real apiserver die (SIGKILL) and a fresh
// one start (empty watch caches, RBAC and CRD handlers syncing), while the rest of the bed keeps running.
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
  appendFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { get, type TlsOptions } from "./http.ts";
import { sleep, tail } from "./processes.ts";

interface Started {
  pid: number;
  exited: () => string | undefined;
}

/** The command line of the kube-apiserver serving on `port` (the bed's, found in /proc). */
function apiserverCommand(port: string): string[] {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").filter(Boolean);
    } catch {
      continue; // gone meanwhile
    }
    if (argv[0]?.endsWith("kube-apiserver") && argv.includes(`--secure-port=${port}`)) return argv;
  }
  throw new Error(`no kube-apiserver serving on port ${port} found in /proc`);
}

const flag = (argv: string[], name: string) =>
  argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? "";

function withFlag(argv: string[], name: string, value: string): string[] {
  return [...argv.filter((a) => !a.startsWith(`--${name}=`)), `--${name}=${value}`];
}

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * kubernetes/kubernetes#130377: a starting apiserver's ClusterIP repair finds a Service whose IPAddress another
 * apiserver is creating at that moment (the bed's other test files create Services all the time), gets "already
 * exists", treats it as not retryable and the post-start hook fails fatally. A supervised apiserver is simply
 * started again; so is this one.
 */
const ipRepairRace = /PostStartHook "start-service-ip-repair-controllers" failed/;

export class ExtraApiserver {
  readonly server: string;
  readonly logFile: string;
  readonly #argv: string[];
  readonly #workDir: string;
  readonly #admin: TlsOptions;
  #process: Started | undefined;

  private constructor(argv: string[], port: number, workDir: string, admin: TlsOptions, logFile: string) {
    this.#argv = argv;
    this.#workDir = workDir;
    this.#admin = admin;
    this.server = `https://127.0.0.1:${port}`;
    this.logFile = logFile;
  }

  /** Starts a second apiserver of the bed whose admin kubeconfig is `kubeconfig`; resolves once it is ready. */
  static async start(kubeconfig: string): Promise<ExtraApiserver> {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const bedPort = new URL(kc.getCurrentCluster()!.server).port;
    const bed = apiserverCommand(bedPort);
    const workDir = dirname(flag(bed, "cert-dir"));
    const port = await freePort();
    // Not an endpoint of the `kubernetes` Service: with the bed's lease reconciler it wrote its own port into that
    // Service's endpoints (same address, other port), so pods on the real node reached it through 10.96.0.1 and
    // got ECONNREFUSED while a resilience test had it stopped (an in-pod operator of another file lost the API).
    const argv = withFlag(
      withFlag(withFlag(bed, "secure-port", String(port)), "cert-dir", join(workDir, `apiserver-${port}`)),
      "endpoint-reconciler-type",
      "none",
    );
    const user = kc.getCurrentUser();
    const admin = {
      ca: readFileSync(flag(bed, "client-ca-file"), "utf8"),
      cert: Buffer.from(user?.certData ?? "", "base64").toString("utf8"),
      key: Buffer.from(user?.keyData ?? "", "base64").toString("utf8"),
    };
    const apiserver = new ExtraApiserver(argv, port, workDir, admin, join(workDir, `apiserver-${port}.log`));
    await apiserver.restart();
    return apiserver;
  }

  /** A copy of `kubeconfig` (e.g. an operator's) that talks to this apiserver instead of the bed's. */
  kubeconfigFor(kubeconfig: string): string {
    const text = readFileSync(kubeconfig, "utf8").replace(/https:\/\/127\.0\.0\.1:\d+/g, this.server);
    const path = `${kubeconfig}.via-${new URL(this.server).port}`;
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  }

  /** SIGKILLs it (no graceful shutdown: connections just drop) and waits until it is gone. */
  async kill(): Promise<void> {
    const started = this.#process;
    if (!started) return;
    try {
      process.kill(-started.pid, "SIGKILL");
    } catch {
      // already gone
    }
    while (started.exited() === undefined) await sleep(20);
    this.#process = undefined;
  }

  /**
   * Starts it (again) with the same flags and port; resolves once /readyz answers 200. Started again, as its
   * kubelet or systemd would, only when it died of the upstream start-up race below; any other exit fails.
   */
  async restart(timeoutMs = 120_000): Promise<void> {
    if (this.#process) throw new Error("the extra apiserver is running");
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const logStart = existsSync(this.logFile) ? statSync(this.logFile).size : 0;
      this.#process = this.#spawn();
      const exit = await this.#untilReadyOrExit(deadline, timeoutMs);
      if (exit === undefined) return;
      this.#process = undefined;
      const log = readFileSync(this.logFile).subarray(logStart).toString("utf8");
      if (attempt < 3 && ipRepairRace.test(log)) continue;
      throw new Error(`extra apiserver exited (${exit}):\n${tail(this.logFile)}`);
    }
  }

  async #untilReadyOrExit(deadline: number, timeoutMs: number): Promise<string | undefined> {
    for (;;) {
      const exit = this.#process?.exited();
      if (exit !== undefined) return exit;
      if ((await get(`${this.server}/readyz`, this.#admin)).status === 200) return undefined;
      if (Date.now() > deadline) throw new Error(`extra apiserver not ready after ${timeoutMs} ms`);
      await sleep(200);
    }
  }

  stop(): Promise<void> {
    return this.kill();
  }

  #spawn(): Started {
    const fd = openSync(this.logFile, "a");
    const [command, ...args] = this.#argv;
    const child = spawn(command!, args, { detached: true, stdio: ["ignore", fd, fd] });
    closeSync(fd);
    if (child.pid === undefined) throw new Error("could not start the extra apiserver");
    let exit: string | undefined;
    child.on("exit", (code, signal) => (exit = signal ? `signal ${signal}` : `code ${code}`));
    child.unref();
    // The bed's watchdog kills the groups listed here if vitest itself dies.
    const pgids = join(this.#workDir, "pgids");
    if (existsSync(pgids)) appendFileSync(pgids, `\n${child.pid}`);
    return { pid: child.pid, exited: () => exit };
  }
}
