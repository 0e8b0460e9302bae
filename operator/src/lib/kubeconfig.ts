// A light kubeconfig loader for the lib's KubeHttp (and so the informer, leader elector and event recorder).
//
// Why: importing @kubernetes/client-node at run time (even only its KubeConfig) loads the whole generated
// client and costs ~80 MiB of RSS (measured: bare Node 24 59 MiB -> 139 MiB), more than half of the
// operator's 150 MiB budget. This covers what an operator needs: $KUBECONFIG or ~/.kube/config (clusters with
// server, CA file/data, insecure-skip-tls-verify, tls-server-name; users with client cert/key file/data,
// token, tokenFile) and in-cluster config (the pod's ServiceAccount token, re-read so rotation works, as
// client-go's rest.InClusterConfig does). $KUBECONFIG may list several files: they merge as kubectl merges them
// (the first file that defines a cluster, user or context, or sets current-context, wins).
// Users with an `exec` plugin or an `auth-provider` (EKS, GKE, AKS, OIDC) are handed to client-node's
// KubeConfig (loadKubeConfig), which runs the plugin and refreshes its credentials: that costs its ~80 MiB,
// but only for those users. Not supported: proxies (client-node's clients handle cluster.proxy-url).

import { existsSync, readFileSync } from "node:fs";
import type * as https from "node:https";
import { homedir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import YAML from "yaml";
import { monotonicNow } from "./clock.ts";
import type { KubeConfigLike } from "./kube-http.ts";

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** How long a token, CA or cert read from a file is reused before it is read again (rotation). */
const TOKEN_FILE_TTL_MS = 60_000;

export interface LightCluster {
  name: string;
  server: string;
  skipTLSVerify: boolean;
  caData?: string;
  caFile?: string;
  tlsServerName?: string;
}

interface LightUser {
  certData?: string;
  certFile?: string;
  keyData?: string;
  keyFile?: string;
  token?: string;
  tokenFile?: string;
}

type Named<K extends string, V> = { name: string } & Record<K, V>;

export interface RawKubeconfig {
  apiVersion?: string;
  kind?: string;
  "current-context"?: string;
  contexts?: Named<"context", { cluster: string; user: string; namespace?: string }>[];
  clusters?: Named<"cluster", Record<string, string | boolean | undefined>>[];
  users?: Named<"user", Record<string, unknown> | null>[];
}

/** Keys of cluster and user entries that name files (relative ones are relative to their kubeconfig). */
const FILE_KEYS = ["certificate-authority", "client-certificate", "client-key", "tokenFile"];

function absolutePaths<T extends Record<string, unknown> | null>(entry: T, baseDir: string): T {
  if (!entry) return entry;
  const out: Record<string, unknown> = { ...entry };
  for (const key of FILE_KEYS) {
    const value = out[key];
    if (typeof value === "string" && value && !isAbsolute(value)) out[key] = join(baseDir, value);
  }
  return out as T;
}

/**
 * kubectl's merge of a $KUBECONFIG list (clientcmd's loading rules): entries are taken by name from the first
 * file that has them, current-context from the first file that sets it; file paths are made absolute against
 * the file that names them.
 */
export function mergeKubeconfigs(files: { text: string; dir: string }[]): RawKubeconfig {
  const merged: Required<Pick<RawKubeconfig, "clusters" | "users" | "contexts">> & RawKubeconfig = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [],
    users: [],
    contexts: [],
  };
  for (const { text, dir } of files) {
    const raw = (YAML.parse(text) ?? {}) as RawKubeconfig;
    merged["current-context"] ||= raw["current-context"];
    for (const c of raw.clusters ?? [])
      if (!merged.clusters.some((m) => m.name === c.name))
        merged.clusters.push({ ...c, cluster: absolutePaths(c.cluster, dir) });
    for (const u of raw.users ?? [])
      if (!merged.users.some((m) => m.name === u.name))
        merged.users.push({ ...u, user: absolutePaths(u.user, dir) });
    for (const c of raw.contexts ?? [])
      if (!merged.contexts.some((m) => m.name === c.name)) merged.contexts.push(c);
  }
  return merged;
}

/** The kubeconfig files in use: $KUBECONFIG's list (existing ones), else ~/.kube/config. */
export function kubeconfigFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const listed = (env.KUBECONFIG ?? "").split(":").filter(Boolean);
  if (listed.length > 0) return listed.filter((path) => existsSync(path));
  const home = join(homedir(), ".kube", "config");
  return existsSync(home) ? [home] : [];
}

/** The current context's user entry, if any. */
function currentUser(raw: RawKubeconfig): Record<string, unknown> | undefined {
  const context = raw.contexts?.find((c) => c.name === raw["current-context"])?.context;
  return raw.users?.find((u) => u.name === context?.user)?.user ?? undefined;
}

/** A user whose credentials come from a plugin (exec: EKS, AKS, GKE's gke-gcloud-auth-plugin; auth-provider: OIDC). */
export function needsPlugin(raw: RawKubeconfig): "exec" | "auth-provider" | undefined {
  const user = currentUser(raw);
  if (user?.exec) return "exec";
  if (user?.["auth-provider"]) return "auth-provider";
  return undefined;
}

/** What KubeHttp needs of a kubeconfig, plus the current context's namespace. */
export interface LoadedKubeConfig {
  kubeConfig: KubeConfigLike;
  namespace: string | undefined;
}

/**
 * $KUBECONFIG (merged), ~/.kube/config or the in-cluster config. An exec or auth-provider user goes through
 * client-node's KubeConfig (imported only then), which runs the plugin and refreshes what it returns.
 */
export async function loadKubeConfig(env: NodeJS.ProcessEnv = process.env): Promise<LoadedKubeConfig> {
  const files = kubeconfigFiles(env);
  if (files.length === 0) {
    const light = LightKubeConfig.fromDefault(env);
    return { kubeConfig: light, namespace: light.namespace };
  }
  const raw = mergeKubeconfigs(
    files.map((path) => ({ text: readFileSync(path, "utf8"), dir: dirname(path) })),
  );
  const plugin = needsPlugin(raw);
  if (!plugin) {
    const light = LightKubeConfig.fromRaw(raw);
    return { kubeConfig: light, namespace: light.namespace };
  }
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  try {
    kc.loadFromString(YAML.stringify(raw));
  } catch (error) {
    throw new Error(
      `kubeconfig: cannot load the ${plugin} user of context ${raw["current-context"]}: ${String(error)}`,
      { cause: error },
    );
  }
  return { kubeConfig: kc, namespace: kc.getContextObject(kc.getCurrentContext())?.namespace };
}

export class LightKubeConfig {
  readonly #cluster: LightCluster;
  readonly #user: LightUser;
  /** Namespace of the current context (or of the pod in a cluster). */
  readonly namespace: string | undefined;
  #token: { value: string; readAt: number } | undefined;

  constructor(cluster: LightCluster, user: LightUser, namespace?: string) {
    this.#cluster = cluster;
    this.#user = user;
    this.namespace = namespace;
  }

  /**
   * $KUBECONFIG (its files merged as kubectl does), else ~/.kube/config, else in-cluster. Refuses an exec or
   * auth-provider user (it would send no credentials): loadKubeConfig supports those.
   */
  static fromDefault(env: NodeJS.ProcessEnv = process.env): LightKubeConfig {
    const files = kubeconfigFiles(env);
    if (files.length > 0) {
      return LightKubeConfig.fromRaw(
        mergeKubeconfigs(files.map((path) => ({ text: readFileSync(path, "utf8"), dir: dirname(path) }))),
      );
    }
    if (env.KUBERNETES_SERVICE_HOST) return LightKubeConfig.inCluster(env);
    throw new Error("no kubeconfig: set KUBECONFIG, create ~/.kube/config or run in a pod");
  }

  static fromFile(path: string): LightKubeConfig {
    return LightKubeConfig.fromString(readFileSync(path, "utf8"), dirname(path));
  }

  /** Parses kubeconfig YAML; relative file paths in it are resolved against `baseDir`. */
  static fromString(text: string, baseDir = process.cwd()): LightKubeConfig {
    return LightKubeConfig.fromRaw(mergeKubeconfigs([{ text, dir: baseDir }]));
  }

  /** From a parsed (merged) kubeconfig whose file paths are absolute. */
  static fromRaw(raw: RawKubeconfig): LightKubeConfig {
    const plugin = needsPlugin(raw);
    if (plugin) {
      throw new Error(
        `kubeconfig: the user of context ${raw["current-context"]} gets its credentials from an ${plugin} plugin, ` +
          "which this loader does not run (it would send no credentials): use loadKubeConfig",
      );
    }
    const contextName = raw["current-context"];
    const context = raw.contexts?.find((c) => c.name === contextName)?.context;
    if (!context) throw new Error(`kubeconfig: current context ${contextName ?? "(unset)"} not found`);
    const cluster = raw.clusters?.find((c) => c.name === context.cluster)?.cluster;
    if (!cluster || typeof cluster.server !== "string")
      throw new Error(`kubeconfig: cluster ${context.cluster}?`);
    const user = raw.users?.find((u) => u.name === context.user)?.user ?? {};
    const file = (value: unknown) => (typeof value === "string" && value ? value : undefined);
    const text_ = (value: unknown) => (typeof value === "string" ? value : undefined);
    return new LightKubeConfig(
      {
        name: context.cluster,
        server: cluster.server,
        skipTLSVerify: cluster["insecure-skip-tls-verify"] === true,
        caData: text_(cluster["certificate-authority-data"]),
        caFile: file(cluster["certificate-authority"]),
        tlsServerName: text_(cluster["tls-server-name"]),
      },
      {
        certData: text_(user["client-certificate-data"]),
        certFile: file(user["client-certificate"]),
        keyData: text_(user["client-key-data"]),
        keyFile: file(user["client-key"]),
        token: text_(user.token),
        tokenFile: file(user.tokenFile),
      },
      context.namespace,
    );
  }

  /** The pod's ServiceAccount, as client-go's rest.InClusterConfig. */
  static inCluster(env: NodeJS.ProcessEnv = process.env, saDir = SA_DIR): LightKubeConfig {
    const host = env.KUBERNETES_SERVICE_HOST ?? "";
    const port = env.KUBERNETES_SERVICE_PORT ?? "443";
    const namespaceFile = join(saDir, "namespace");
    return new LightKubeConfig(
      {
        name: "in-cluster",
        server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
        skipTLSVerify: false,
        caFile: join(saDir, "ca.crt"),
      },
      { tokenFile: join(saDir, "token") },
      existsSync(namespaceFile) ? readFileSync(namespaceFile, "utf8").trim() : undefined,
    );
  }

  getCurrentCluster(): LightCluster {
    return this.#cluster;
  }

  /** Fills TLS material and the Authorization header into request options (same contract as client-node). */
  async applyToHTTPSOptions(opts: https.RequestOptions): Promise<void> {
    const cluster = this.#cluster;
    const user = this.#user;
    const ca = material(cluster.caData, cluster.caFile);
    if (ca) opts.ca = ca;
    const cert = material(user.certData, user.certFile);
    if (cert) opts.cert = cert;
    const key = material(user.keyData, user.keyFile);
    if (key) opts.key = key;
    if (cluster.skipTLSVerify) opts.rejectUnauthorized = false;
    if (cluster.tlsServerName) opts.servername = cluster.tlsServerName;
    const token = this.#bearerToken();
    if (token) opts.headers = { ...opts.headers, Authorization: `Bearer ${token}` };
  }

  #bearerToken(): string | undefined {
    if (this.#user.token) return this.#user.token;
    const tokenFile = this.#user.tokenFile;
    if (!tokenFile) return undefined;
    if (!this.#token || monotonicNow() - this.#token.readAt > TOKEN_FILE_TTL_MS) {
      this.#token = { value: readFileSync(tokenFile, "utf8").trim(), readAt: monotonicNow() };
    }
    return this.#token.value;
  }
}

const fileCache = new Map<string, { content: Buffer; readAt: number }>();

/** PEM from inline base64 data or a file (re-read at most every TOKEN_FILE_TTL_MS). */
function material(data: string | undefined, file: string | undefined): Buffer | undefined {
  if (data) return Buffer.from(data, "base64");
  if (!file) return undefined;
  let cached = fileCache.get(file);
  if (!cached || monotonicNow() - cached.readAt > TOKEN_FILE_TTL_MS) {
    cached = { content: readFileSync(file), readAt: monotonicNow() };
    fileCache.set(file, cached);
  }
  return cached.content;
}
