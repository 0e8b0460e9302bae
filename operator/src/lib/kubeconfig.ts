// A light kubeconfig loader for the lib's KubeHttp (and so the informer, leader elector and event recorder).
//
// Why: importing @kubernetes/client-node at run time (even only its KubeConfig) loads the whole generated
// client and costs ~80 MiB of RSS (measured: bare Node 24 59 MiB -> 139 MiB), more than half of the
// operator's 150 MiB budget. This covers what an operator needs: $KUBECONFIG or ~/.kube/config (clusters with
// server, CA file/data, insecure-skip-tls-verify, tls-server-name; users with client cert/key file/data,
// token, tokenFile) and in-cluster config (the pod's ServiceAccount token, re-read so rotation works, as
// client-go's rest.InClusterConfig does). Not supported: exec and auth-provider plugins, proxies (use
// client-node's KubeConfig for those: it fits the same KubeConfigLike type).

import { existsSync, readFileSync } from "node:fs";
import type * as https from "node:https";
import { homedir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import YAML from "yaml";

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

interface RawKubeconfig {
  "current-context"?: string;
  contexts?: { name: string; context: { cluster: string; user: string; namespace?: string } }[];
  clusters?: { name: string; cluster: Record<string, string | boolean | undefined> }[];
  users?: { name: string; user: Record<string, string | undefined> | null }[];
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

  /** $KUBECONFIG (first existing file of the list), else ~/.kube/config, else in-cluster. */
  static fromDefault(env: NodeJS.ProcessEnv = process.env): LightKubeConfig {
    const candidates = (env.KUBECONFIG ?? "").split(":").filter(Boolean);
    const file = [...candidates, join(homedir(), ".kube", "config")].find((path) => existsSync(path));
    if (file) return LightKubeConfig.fromFile(file);
    if (env.KUBERNETES_SERVICE_HOST) return LightKubeConfig.inCluster(env);
    throw new Error("no kubeconfig: set KUBECONFIG, create ~/.kube/config or run in a pod");
  }

  static fromFile(path: string): LightKubeConfig {
    return LightKubeConfig.fromString(readFileSync(path, "utf8"), dirname(path));
  }

  /** Parses kubeconfig YAML; relative file paths in it are resolved against `baseDir`. */
  static fromString(text: string, baseDir = process.cwd()): LightKubeConfig {
    const raw = (YAML.parse(text) ?? {}) as RawKubeconfig;
    const contextName = raw["current-context"];
    const context = raw.contexts?.find((c) => c.name === contextName)?.context;
    if (!context) throw new Error(`kubeconfig: current context ${contextName ?? "(unset)"} not found`);
    const cluster = raw.clusters?.find((c) => c.name === context.cluster)?.cluster;
    if (!cluster || typeof cluster.server !== "string")
      throw new Error(`kubeconfig: cluster ${context.cluster}?`);
    const user = raw.users?.find((u) => u.name === context.user)?.user ?? {};
    const file = (value: unknown) =>
      typeof value === "string" ? (isAbsolute(value) ? value : join(baseDir, value)) : undefined;
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
    if (!this.#token || Date.now() - this.#token.readAt > TOKEN_FILE_TTL_MS) {
      this.#token = { value: readFileSync(tokenFile, "utf8").trim(), readAt: Date.now() };
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
  if (!cached || Date.now() - cached.readAt > TOKEN_FILE_TTL_MS) {
    cached = { content: readFileSync(file), readAt: Date.now() };
    fileCache.set(file, cached);
  }
  return cached.content;
}
