// Operator configuration from flags (--name=value or --name value) and MOKD_OPERATOR_* environment variables
// (flags win), validated with zod so a bad value stops the process with the offending setting named.
import { z } from "zod";
import { DEFAULT_TRAINER_IMAGE, isDns1123Subdomain, isQuantity } from "../../api/v1alpha1/index.ts";
import { DEFAULT_RESOURCES, type ResourceDefaults } from "./builders/job.ts";

/** A namespace name: a DNS-1123 label. */
const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const commaSeparated = (v: string) =>
  v
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);

const bool = z
  .union([z.boolean(), z.enum(["true", "false", "1", "0"])])
  .transform((v) => v === true || v === "true" || v === "1");
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/** A quantity, or "" for none. */
const quantity = (fallback: string | undefined) =>
  z
    .string()
    .refine((v) => v === "" || isQuantity(v), { message: "must be a quantity such as 500m or 2Gi, or empty" })
    .default(fallback ?? "");

export const OperatorConfig = z.object({
  /** Watch only this namespace (single-namespace mode); unset: all namespaces (unless --namespaces lists some). */
  namespace: z.string().min(1).optional(),
  /**
   * Watch only these namespaces (comma-separated; with --namespace, both), one watch each: the chart's
   * watchNamespaces, with a Role in each. Neither set: all namespaces.
   */
  namespaces: z
    .string()
    .default("")
    .transform(commaSeparated)
    .refine((names) => names.every((n) => NAMESPACE_NAME.test(n)), {
      message: "must be comma-separated namespace names (DNS labels)",
    }),
  /** Port of /healthz, /readyz and /metrics; 0 picks a free one. */
  port: int(0, 65535).default(8080),
  leaderElect: bool.default(true),
  leaseName: z.string().min(1).default("mokd-operator"),
  /** Namespace of the Lease; defaults to --namespace, then the pod's namespace, then `default`. */
  leaseNamespace: z.string().min(1).optional(),
  /** Identity in the Lease; defaults to the hostname plus the process id. */
  identity: z.string().min(1).optional(),
  /**
   * Lease timings in seconds, as kube-controller-manager's --leader-elect-* flags (defaults: client-go's and
   * controller-runtime's; lease duration > renew deadline > retry period). Raise them where the apiserver and
   * etcd can take more than a few seconds to write a Lease: on the 2 loaded cores of docs/benchmarks.md,
   * under 10,000 new jobs, two renewal attempts in a row took over 5 s each and the leader stepped down.
   */
  leaderElectLeaseDuration: int(2, 3600).default(15),
  leaderElectRenewDeadline: int(1, 3600).default(10),
  leaderElectRetryPeriod: int(1, 600).default(2),
  concurrency: int(1, 64).default(8),
  /**
   * Run the DistillationStudy controller (--no-study-controller turns it off, e.g. where the study CRD is not
   * installed: its informer would fail and keep the operator unready).
   */
  studyController: bool.default(true),
  logLevel: z.enum(["error", "warn", "info", "debug"]).default("info"),
  /** Replaces the schema's default trainer image (ghcr.io/mokd/trainer) for jobs that keep it. */
  trainerImage: z.string().min(1).default(DEFAULT_TRAINER_IMAGE),
  /** Seconds between progress scrapes of a running trainer (the issue allows 30 s staleness: 15 s at most). */
  progressInterval: int(1, 15).default(10),
  /**
   * Seconds an informer may fail to list or watch before /readyz fails (a few reconnects are normal), and
   * before /healthz fails, so the kubelet restarts an operator whose caches have gone stale.
   */
  /** Client-side rate limit of all API requests (0: unlimited), as client-go's QPS and Burst. */
  kubeApiQps: z.coerce.number().min(0).max(10_000).default(100),
  kubeApiBurst: int(1, 20_000).default(200),
  /**
   * tolerationSeconds of trainer pods for the node.kubernetes.io/not-ready and /unreachable NoExecute taints: how
   * long a pod stays bound to a node that stopped responding before Kubernetes evicts it and the Job replaces it
   * (and the GPU is free again). 0 leaves Kubernetes' default (300 s, DefaultTolerationSeconds).
   */
  nodeLossTolerationSeconds: int(0, 86_400).default(60),
  unreadyAfterSeconds: int(1, 3600).default(10),
  unhealthyAfterSeconds: int(10, 86_400).default(120),
  /** CPU/memory of trainer containers whose spec leaves them out ("" for none): quota'd namespaces need them. */
  trainerCpuRequest: quantity(DEFAULT_RESOURCES.requests.cpu),
  trainerMemoryRequest: quantity(DEFAULT_RESOURCES.requests.memory),
  trainerCpuLimit: quantity(DEFAULT_RESOURCES.limits.cpu),
  trainerMemoryLimit: quantity(DEFAULT_RESOURCES.limits.memory),
  /** Image pull secrets (names, comma-separated) of every trainer pod, merged with a job's runtime.imagePullSecrets. */
  trainerImagePullSecrets: z
    .string()
    .default("")
    .transform(commaSeparated)
    .refine((names) => names.every(isDns1123Subdomain), {
      message: "must be comma-separated Secret names (DNS subdomains)",
    }),
});
export type OperatorConfig = z.infer<typeof OperatorConfig>;

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const envName = (key: string) => `MOKD_OPERATOR_${kebab(key).replace(/-/g, "_").toUpperCase()}`;
const KEYS = Object.keys(OperatorConfig.shape) as (keyof OperatorConfig)[];

export class OperatorConfigError extends Error {}

function parseFlags(argv: string[]): Record<string, string | boolean> {
  const byFlag = new Map(KEYS.map((k) => [kebab(k), k]));
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--(no-)?([a-z-]+)(?:=(.*))?$/.exec(arg);
    const key = m && byFlag.get(m[2]!);
    if (!m || !key)
      throw new OperatorConfigError(
        `unknown argument ${arg} (flags: ${[...byFlag.keys()].map((f) => `--${f}`).join(", ")})`,
      );
    if (m[1]) out[key] = false;
    else if (m[3] !== undefined) out[key] = m[3];
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) out[key] = argv[++i]!;
    else out[key] = true;
  }
  return out;
}

export function loadConfig(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): OperatorConfig {
  const fromEnv = Object.fromEntries(
    KEYS.flatMap((k) => (env[envName(k)] !== undefined ? [[k, env[envName(k)]]] : [])),
  );
  const result = OperatorConfig.safeParse({ ...fromEnv, ...parseFlags(argv) });
  if (!result.success) {
    const lines = result.error.issues.map(
      (i) => `  --${kebab(String(i.path[0] ?? ""))} (${envName(String(i.path[0] ?? ""))}): ${i.message}`,
    );
    throw new OperatorConfigError(`invalid operator configuration:\n${lines.join("\n")}`);
  }
  const config = result.data;
  return {
    ...config,
    leaseNamespace: config.leaseNamespace ?? config.namespace ?? env.POD_NAMESPACE ?? "default",
  };
}

/** The namespaces to watch: --namespace and --namespaces together; empty for all namespaces. */
export function watchedNamespaces(config: Pick<OperatorConfig, "namespace" | "namespaces">): string[] {
  return [...new Set([...(config.namespace ? [config.namespace] : []), ...config.namespaces])];
}

/** The trainer resource defaults of a configuration (empty flags: none). */
export function resourceDefaultsOf(config: OperatorConfig): ResourceDefaults {
  const q = (v: string) => (v === "" ? undefined : v);
  return {
    requests: { cpu: q(config.trainerCpuRequest), memory: q(config.trainerMemoryRequest) },
    limits: { cpu: q(config.trainerCpuLimit), memory: q(config.trainerMemoryLimit) },
  };
}
