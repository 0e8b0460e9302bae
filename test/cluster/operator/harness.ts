// Runs the operator as a child process under its own ServiceAccount, bound to exactly
// charts/mokd-operator/files/rbac-rules.yaml (plus the chart's lease Role), in a namespace of its own.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BatchV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll } from "vitest";
import { parse as parseYaml } from "yaml";
import type { DistillationJobInput, DistillationJobStatus } from "../../../api/v1alpha1/index.ts";
import {
  adminKubeConfig,
  createTestNamespace,
  deleteNamespace,
  kubectl,
  serviceAccountKubeconfig,
  waitCrdEstablished,
  waitFor,
} from "../../bed/env.ts";

const ROOT = join(import.meta.dirname, "../../..");
const NODE = join(ROOT, "node_modules/.bin/node");
const CRD = join(ROOT, "crds/distillation.mokd.io_distillationjobs.yaml");
/** The operator's study controller (on by default) watches DistillationStudies: their CRD too. */
const STUDY_CRD = join(ROOT, "crds/distillation.mokd.io_distillationstudies.yaml");
export const RULES = parseYaml(
  readFileSync(join(ROOT, "charts/mokd-operator/files/rbac-rules.yaml"), "utf8"),
) as unknown[];

/** kubectl that throws, naming the command and its stderr, unless it exits 0; returns its stdout. */
export async function mustKubectl(args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

let crdApplied: Promise<void> | undefined;
/** The CRDs, applied once per worker as admin (idempotent). */
export function ensureCrd(): Promise<void> {
  crdApplied ??= (async () => {
    await mustKubectl(["apply", "--server-side", "--force-conflicts", "-f", CRD, "-f", STUDY_CRD]);
    await waitCrdEstablished("distillationjobs.distillation.mokd.io");
    await waitCrdEstablished("distillationstudies.distillation.mokd.io");
  })();
  return crdApplied;
}

/** ServiceAccount + ClusterRole (the rules file) bound in `namespace`, + the lease Role; returns its kubeconfig. */
export async function operatorIdentity(namespace: string): Promise<string> {
  const sa = "mokd-operator";
  const docs = [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: sa, namespace } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: `mokd-operator-${namespace}`, labels: { "mokd-test": "true" } },
      rules: RULES,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "mokd-operator", namespace },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        name: `mokd-operator-${namespace}`,
      },
      subjects: [{ kind: "ServiceAccount", name: sa, namespace }],
    },
    // What the chart's leader-election Role grants, in the lease namespace only.
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "mokd-operator-leader-election", namespace },
      rules: [
        {
          apiGroups: ["coordination.k8s.io"],
          resources: ["leases"],
          verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
        },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "mokd-operator-leader-election", namespace },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "mokd-operator-leader-election" },
      subjects: [{ kind: "ServiceAccount", name: sa, namespace }],
    },
  ];
  await mustKubectl(["apply", "-f", "-"], docs.map((d) => JSON.stringify(d)).join("\n"));
  return serviceAccountKubeconfig(namespace, sa);
}

export async function removeIdentity(namespace: string): Promise<void> {
  await kubectl(["delete", "clusterrole", `mokd-operator-${namespace}`, "--ignore-not-found"]);
}

export interface OperatorProcess {
  child: ChildProcess;
  logs(): string;
  /** Resolves with the exit code (or signal) once the process ends. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

export function startOperator(
  kubeconfig: string,
  namespace: string,
  extraArgs: string[] = [],
): OperatorProcess {
  const args = [
    "operator/src/main.ts",
    `--namespace=${namespace}`,
    "--port=0",
    "--lease-name=mokd-operator",
    `--lease-namespace=${namespace}`,
    "--progress-interval=2",
    ...extraArgs,
  ];
  const child = spawn(NODE, args, {
    cwd: ROOT,
    env: { ...process.env, KUBECONFIG: kubeconfig },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (output += c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (output += c));
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return {
    child,
    logs: () => output,
    exited,
    kill: (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export const GROUP_VERSION = {
  group: "distillation.mokd.io",
  version: "v1alpha1",
  plural: "distillationjobs",
};

export interface DjObject {
  metadata: { name: string; namespace: string; uid: string; generation: number };
  spec: Record<string, unknown>;
  status?: DistillationJobStatus;
}

export class Jobs {
  readonly api: CustomObjectsApi;
  readonly kc: KubeConfig;
  readonly namespace: string;
  constructor(namespace: string) {
    this.namespace = namespace;
    this.kc = adminKubeConfig();
    this.api = this.kc.makeApiClient(CustomObjectsApi);
  }

  /** A small fast job; kwok plays the pod according to `pod` annotations (test/bed/kwok/stages.yaml). */
  async create(
    name: string,
    spec: DistillationJobInput["spec"] = {},
    pod: Record<string, string> = {},
  ): Promise<DjObject> {
    const runtime = {
      ...(spec?.runtime ?? {}),
      podAnnotations: { ...(spec?.runtime?.podAnnotations ?? {}), ...pod },
    };
    const body = {
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationJob",
      metadata: { name },
      spec: { ...spec, runtime },
    };
    return (await this.api.createNamespacedCustomObject({
      ...GROUP_VERSION,
      namespace: this.namespace,
      body,
    })) as DjObject;
  }

  async get(name: string): Promise<DjObject | undefined> {
    try {
      return (await this.api.getNamespacedCustomObject({
        ...GROUP_VERSION,
        namespace: this.namespace,
        name,
      })) as DjObject;
    } catch (error) {
      if ((error as { code?: number }).code === 404) return undefined;
      throw error;
    }
  }

  /** Waits until `check` holds for the job's status; returns the object. */
  waitStatus(
    name: string,
    what: string,
    check: (s: DistillationJobStatus) => boolean,
    timeoutMs = 60_000,
  ): Promise<DjObject> {
    return waitFor(
      `${this.namespace}/${name}: ${what}`,
      async () => {
        const dj = await this.get(name);
        return dj?.status && check(dj.status) ? dj : undefined;
      },
      timeoutMs,
      250,
    );
  }

  waitPhase(name: string, phase: string, timeoutMs = 60_000): Promise<DjObject> {
    return this.waitStatus(name, `phase ${phase}`, (s) => s.phase === phase, timeoutMs);
  }

  async patchSpec(name: string, patch: Record<string, unknown>): Promise<{ code: number; stderr: string }> {
    return kubectl([
      "-n",
      this.namespace,
      "patch",
      "distillationjob",
      name,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: patch }),
    ]);
  }
}

export const condition = (s: DistillationJobStatus | undefined, type: string) =>
  s?.conditions?.find((c) => c.type === type);

/** What `operatorForFile` starts: the file's namespace, its operator and clients for it. */
export interface OperatorFile {
  ns: string;
  jobs: Jobs;
  operator: OperatorProcess;
  batch: BatchV1Api;
  core: CoreV1Api;
}

/**
 * One operator (no leader election) in a test namespace of its own for the whole test file, handed to `ready`
 * once it runs; stopped and the namespace deleted after the file, its log printed when a test failed.
 */
export function operatorForFile(
  prefix: string,
  ready: (file: OperatorFile) => void,
  /** How the namespace is made (e.g. realNodeNamespace: every pod on the real node). */
  createNamespace: (prefix: string) => Promise<string> = createTestNamespace,
): void {
  let file: OperatorFile | undefined;
  let failed = false;
  beforeAll(async () => {
    const ns = await createNamespace(prefix);
    await ensureCrd();
    const operator = startOperator(await operatorIdentity(ns), ns, ["--no-leader-elect"]);
    const jobs = new Jobs(ns);
    file = {
      ns,
      jobs,
      operator,
      batch: jobs.kc.makeApiClient(BatchV1Api),
      core: jobs.kc.makeApiClient(CoreV1Api),
    };
    ready(file);
  });
  afterEach(({ task }) => {
    if (task.result?.state === "fail") failed = true;
  });
  afterAll(async () => {
    if (!file) return;
    await file.operator.kill("SIGTERM");
    if (failed) console.log(file.operator.logs());
    await deleteNamespace(file.ns);
    await removeIdentity(file.ns);
  });
}
