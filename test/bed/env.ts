// The API that cluster tests use to reach the test control plane started by global-setup.ts.
// Importing it also points child processes (kubectl, helm, an operator under test) at the bed: KUBECONFIG and
// MOKD_TEST_KUBECONFIG are set and the bed's bin dir goes first on PATH.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { inject } from "vitest";
import { ENV_BIN_DIR, ENV_KUBECONFIG } from "./config.ts";

const runFile = promisify(execFile);

function injected(key: "mokdKubeconfig" | "mokdBinDir"): string | undefined {
  try {
    return inject(key);
  } catch {
    return undefined; // Not inside a vitest worker (e.g. a script run against `npm run testbed:up`).
  }
}

export function kubeconfigPath(): string {
  const path = injected("mokdKubeconfig") ?? process.env[ENV_KUBECONFIG];
  if (!path) throw new Error(`no test bed: run under the vitest 'cluster' project or set ${ENV_KUBECONFIG}`);
  return path;
}

export function binDir(): string {
  const dir = injected("mokdBinDir") ?? process.env[ENV_BIN_DIR];
  if (!dir) throw new Error(`no test bed: run under the vitest 'cluster' project or set ${ENV_BIN_DIR}`);
  return dir;
}

export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath());
  return kc;
}

export function serverUrl(): string {
  const server = adminKubeConfig().getCurrentCluster()?.server;
  if (!server) throw new Error(`no server in ${kubeconfigPath()}`);
  return server;
}

function exportToChildren(): void {
  const kubeconfig = injected("mokdKubeconfig") ?? process.env[ENV_KUBECONFIG];
  const bin = injected("mokdBinDir") ?? process.env[ENV_BIN_DIR];
  if (kubeconfig) process.env[ENV_KUBECONFIG] = process.env.KUBECONFIG = kubeconfig;
  if (bin) {
    process.env[ENV_BIN_DIR] = bin;
    if (!process.env.PATH?.startsWith(`${bin}:`)) process.env.PATH = `${bin}:${process.env.PATH ?? ""}`;
  }
}
exportToChildren();

const suffix = () => randomBytes(3).toString("hex");

/** A fresh namespace named `<prefix>-<random>`, labelled mokd-test=true, with its default ServiceAccount. */
export async function createTestNamespace(prefix: string): Promise<string> {
  const base = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 50);
  const name = `${base || "test"}-${suffix()}`;
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name, labels: { "mokd-test": "true" } } } });
  // Pods are refused until the controller-manager has created the namespace's default ServiceAccount.
  await waitFor(`ServiceAccount ${name}/default`, () =>
    core.readNamespacedServiceAccount({ name: "default", namespace: name }),
  );
  return name;
}

/** Starts deleting a namespace (the namespace controller finishes in the background); absent is fine. */
export async function deleteNamespace(name: string): Promise<void> {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  try {
    await core.deleteNamespace({ name, propagationPolicy: "Background" });
  } catch (err) {
    if ((err as { code?: number }).code !== 404) throw err;
  }
}

/** Runs the bed's kubectl (admin unless another kubeconfig is given); never throws on a non-zero exit. */
export function kubectl(
  args: string[],
  opts: { input?: string; kubeconfig?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(
    join(binDir(), "kubectl"),
    [`--kubeconfig=${opts.kubeconfig ?? kubeconfigPath()}`, ...args],
    {
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  // kubectl may exit without reading its stdin (most commands never do): the write then fails with EPIPE, which
  // says nothing the exit code does not. Unhandled, it was an uncaught exception of the test run.
  child.stdin.on("error", () => undefined);
  if (opts.input === undefined) child.stdin.end();
  else child.stdin.end(opts.input);
  return new Promise((resolve) => {
    child.on("error", (err) => resolve({ code: -1, stdout, stderr: stderr + err.message }));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Path of a kubeconfig that authenticates as the ServiceAccount with a 1 h token from `kubectl create token`. */
export async function serviceAccountKubeconfig(namespace: string, serviceAccount: string): Promise<string> {
  // prettier-ignore
  const { stdout } = await runFile(join(binDir(), "kubectl"), [
    `--kubeconfig=${kubeconfigPath()}`, "create", "token", serviceAccount, "-n", namespace, "--duration=1h",
  ]);
  const cluster = adminKubeConfig().getCurrentCluster()!;
  const kc = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "mokd-testbed",
        cluster: { server: cluster.server, "certificate-authority-data": cluster.caData },
      },
    ],
    users: [{ name: `${namespace}-${serviceAccount}`, user: { token: stdout.trim() } }],
    contexts: [
      { name: "sa", context: { cluster: "mokd-testbed", user: `${namespace}-${serviceAccount}`, namespace } },
    ],
    "current-context": "sa",
  };
  // Next to the admin kubeconfig: inside the bed's work dir, which teardown removes.
  const dir = join(dirname(kubeconfigPath()), "sa-kubeconfigs");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${namespace}-${serviceAccount}-${suffix()}.json`);
  writeFileSync(path, JSON.stringify(kc, null, 2), { mode: 0o600 });
  return path;
}

/** Polls fn until it returns a value other than undefined/false; the last error is part of the timeout message. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? `: last error: ${lastError.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Waits until the CRD's Established condition is True. Not `kubectl wait --for=condition=Established`: right
 * after an apply the CRD may have no status.conditions yet, and kubectl wait then fails at once instead of
 * waiting ("status.conditions accessor error").
 */
export async function waitCrdEstablished(name: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    `CRD ${name} Established`,
    async () => {
      const path = '{.status.conditions[?(@.type=="Established")].status}';
      const r = await kubectl(["get", "crd", name, "-o", `jsonpath=${path}`]);
      return r.code === 0 && r.stdout.trim() === "True";
    },
    timeoutMs,
  );
}
