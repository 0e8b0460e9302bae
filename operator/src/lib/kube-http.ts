// A minimal JSON client for the Kubernetes API on top of node:https, shared by the informer, the leader
// elector and the event recorder.
//
// Why not the generated clients of @kubernetes/client-node 2.x: each of their requests builds a new undici
// Agent (a new TLS handshake per request), which at 1000 objects costs seconds of CPU; and a watch needs a raw
// streaming response anyway. Here one keep-alive agent per KubeConfig is reused (as client-go's transport
// does), while credentials still come from the KubeConfig on every request (so exec/file tokens refresh).
// Not supported: cluster.proxyUrl (use client-node's clients behind a proxy).
//
// Like client-go's rest client: a client-side token bucket (QPS/burst, every request including watch starts)
// keeps one operator from flooding the apiserver, and a 429 (or 5xx) carrying Retry-After is retried after that
// many seconds (at most MAX_RETRIES times, never past the request's signal); a stream's 429 is returned with
// its retryAfterSeconds for the informer to honour.

import type { KubeConfig } from "@kubernetes/client-node";
import * as http from "node:http";
import * as https from "node:https";
import { monotonicNow, wallNow } from "./clock.ts";
import { sleep } from "./sleep.ts";

/**
 * What the lib needs of a kubeconfig: client-node's KubeConfig fits, and so does the far lighter
 * LightKubeConfig of ./kubeconfig.ts (importing client-node at run time costs ~80 MiB of RSS).
 */
export type KubeConfigLike = Pick<KubeConfig, "getCurrentCluster" | "applyToHTTPSOptions">;

export type Query = Record<string, string | number | boolean | undefined>;

export interface KubeRequest {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  query?: Query;
  body?: unknown;
  /** Defaults to application/json; use application/apply-patch+yaml etc. for patches. */
  contentType?: string;
  signal?: AbortSignal;
  /** Whole-request timeout for non-streaming requests (default 30 s). */
  timeoutMs?: number;
}

/** A non-2xx answer of the apiserver, with its Status reason (NotFound, Conflict, Expired, ...). */
export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string | undefined;
  /** The server's Retry-After (seconds), on 429 Too Many Requests and some 5xx. */
  readonly retryAfterSeconds: number | undefined;

  constructor(status: number, message: string, reason?: string, retryAfterSeconds?: number) {
    super(message);
    this.name = "KubeApiError";
    this.status = status;
    this.reason = reason;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** The HTTP status under the name client-node's ApiException uses, so existing `code` checks keep working. */
  get code(): number {
    return this.status;
  }
}

export function isStatus(error: unknown, status: number): boolean {
  return error instanceof KubeApiError && error.status === status;
}

interface Connection {
  server: URL;
  agent: http.Agent;
  headers: Record<string, string>;
  auth?: string;
}

const clients = new WeakMap<KubeConfigLike, KubeHttp>();

export interface RateLimit {
  /** Requests per second on average (0: unlimited). */
  qps: number;
  /** Requests allowed at once above the average. */
  burst: number;
}

/** KubeRay's defaults (client-go's 5/10 are for kubectl-like tools; kube-controller-manager runs 20/30). */
export const DEFAULT_RATE_LIMIT: RateLimit = { qps: 100, burst: 200 };
/** client-go's maxRetries for Retry-After answers is 10; fewer here, each wait capped. */
const MAX_RETRIES = 5;
const MAX_RETRY_AFTER_S = 30;

/** A token bucket on the monotonic clock (golang.org/x/time/rate's Reserve): how long to wait for a token. */
export class TokenBucket {
  #limit: RateLimit;
  #tokens: number;
  #last: number;
  readonly #now: () => number;

  constructor(limit: RateLimit, now: () => number = monotonicNow) {
    this.#limit = limit;
    this.#tokens = limit.burst;
    this.#now = now;
    this.#last = now();
  }

  set(limit: RateLimit): void {
    this.#limit = limit;
    this.#tokens = Math.min(this.#tokens, limit.burst);
  }

  /** Takes a token (going into debt if there is none) and returns the milliseconds to wait for it. */
  reserve(): number {
    const { qps, burst } = this.#limit;
    if (qps <= 0) return 0;
    const now = this.#now();
    this.#tokens = Math.min(burst, this.#tokens + ((now - this.#last) / 1000) * qps);
    this.#last = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : (-this.#tokens / qps) * 1000;
  }
}

/** Retry-After as seconds (an HTTP date is turned into seconds from now); undefined when absent or invalid. */
export function retryAfterSeconds(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - wallNow().getTime()) / 1000));
}

const retryable = (status: number) => status === 429 || status >= 500;

export class KubeHttp {
  readonly #kc: KubeConfigLike;
  readonly #userAgent: string;
  #agent: http.Agent | undefined;
  readonly #bucket: TokenBucket;

  constructor(kc: KubeConfigLike, userAgent = "mokd-operator", limit: RateLimit = DEFAULT_RATE_LIMIT) {
    this.#kc = kc;
    this.#userAgent = userAgent;
    this.#bucket = new TokenBucket(limit);
  }

  /** Sets the client-side rate limit (the operator's --kube-api-qps and --kube-api-burst). */
  setRateLimit(limit: RateLimit): void {
    this.#bucket.set(limit);
  }

  /** The shared client of a KubeConfig (one connection pool per KubeConfig). */
  static for(kc: KubeConfigLike): KubeHttp {
    let client = clients.get(kc);
    if (!client) {
      client = new KubeHttp(kc);
      clients.set(kc, client);
    }
    return client;
  }

  /** Sends a request; parses a JSON answer (else returns the text); throws KubeApiError on a non-2xx status. */
  async request<T>(path: string, req: KubeRequest = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const res = await this.#send(path, req, false);
      const text = await readBody(res);
      const status = res.statusCode ?? 0;
      if (status < 300) {
        const json = res.headers["content-type"]?.includes("json") ?? false;
        return (json && text ? JSON.parse(text) : text || undefined) as T;
      }
      const error = apiError(status, text, retryAfterSeconds(res.headers["retry-after"]));
      const wait = error.retryAfterSeconds;
      if (!retryable(status) || wait === undefined || attempt >= MAX_RETRIES) throw error;
      await sleep(Math.min(wait, MAX_RETRY_AFTER_S) * 1000, req.signal);
    }
  }

  /** Opens a streaming GET (a watch); the caller reads the body. Throws KubeApiError on a non-2xx status. */
  async stream(path: string, req: KubeRequest = {}): Promise<http.IncomingMessage> {
    const res = await this.#send(path, { ...req, method: "GET" }, true);
    const status = res.statusCode ?? 0;
    if (status >= 300)
      throw apiError(status, await readBody(res), retryAfterSeconds(res.headers["retry-after"]));
    return res;
  }

  /** Server-side apply of `body` at the object path (e.g. /apis/batch/v1/namespaces/ns/jobs/name[/status]). */
  apply<T>(path: string, body: unknown, fieldManager: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>(path, {
      method: "PATCH",
      body,
      contentType: "application/apply-patch+yaml", // JSON is valid YAML
      query: { fieldManager, force: true },
      signal,
    });
  }

  /** Deletes an object; with `uid`, only that incarnation of it (a precondition). Absent is fine. */
  async delete(path: string, opts: { uid?: string; propagationPolicy?: string } = {}): Promise<void> {
    const body = {
      kind: "DeleteOptions",
      apiVersion: "v1",
      propagationPolicy: opts.propagationPolicy ?? "Background",
      ...(opts.uid ? { preconditions: { uid: opts.uid } } : {}),
    };
    try {
      await this.request(path, { method: "DELETE", body });
    } catch (error) {
      if (!isStatus(error, 404)) throw error;
    }
  }

  /** Closes idle pooled connections (the process can then exit). */
  close(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  async #connection(): Promise<Connection> {
    const cluster = this.#kc.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    const opts: https.RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(opts);
    const server = new URL(cluster.server);
    this.#agent ??= makeAgent(server, opts);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(opts.headers ?? {})) headers[name] = String(value);
    return {
      server,
      agent: this.#agent,
      headers,
      auth: typeof opts.auth === "string" ? opts.auth : undefined,
    };
  }

  async #send(path: string, req: KubeRequest, streaming: boolean): Promise<http.IncomingMessage> {
    const wait = this.#bucket.reserve();
    if (wait > 0) await sleep(wait, req.signal);
    const conn = await this.#connection();
    const url = new URL(conn.server.pathname.replace(/\/$/, "") + path, conn.server);
    for (const [key, value] of Object.entries(req.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const payload = req.body === undefined ? undefined : serialise(req.body);
    const headers: Record<string, string> = {
      ...conn.headers,
      Accept: "application/json",
      "User-Agent": this.#userAgent,
    };
    if (payload !== undefined) {
      headers["Content-Type"] = req.contentType ?? "application/json";
      headers["Content-Length"] = String(Buffer.byteLength(payload));
    }
    const transport = url.protocol === "http:" ? http : https;
    return new Promise((resolve, reject) => {
      const request = transport.request(url, {
        method: req.method ?? "GET",
        agent: conn.agent,
        headers,
        auth: conn.auth,
        signal: req.signal,
      });
      if (!streaming) {
        request.setTimeout(req.timeoutMs ?? 30_000, () =>
          request.destroy(new Error(`timeout: ${url.pathname}`)),
        );
      }
      request.once("response", resolve);
      request.once("error", reject);
      request.end(payload);
    });
  }
}

function makeAgent(server: URL, tls: https.RequestOptions): http.Agent {
  const common = { keepAlive: true, keepAliveMsecs: 30_000, maxSockets: 64, maxFreeSockets: 16 };
  if (server.protocol === "http:") return new http.Agent(common);
  return new https.Agent({
    ...common,
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    pfx: tls.pfx,
    passphrase: tls.passphrase,
    servername: tls.servername,
    ...(tls.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: tls.rejectUnauthorized }),
  });
}

function serialise(body: unknown): string {
  return typeof body === "string" ? body : JSON.stringify(body);
}

function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (chunk: Buffer) => chunks.push(chunk));
    res.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    res.once("error", reject);
  });
}

function apiError(status: number, text: string, retryAfter?: number): KubeApiError {
  try {
    const parsed = JSON.parse(text) as {
      message?: string;
      reason?: string;
      details?: { retryAfterSeconds?: number };
    };
    const after = retryAfter ?? parsed.details?.retryAfterSeconds;
    return new KubeApiError(status, parsed.message ?? `HTTP ${status}`, parsed.reason, after);
  } catch {
    return new KubeApiError(status, `HTTP ${status}: ${text.slice(0, 200)}`, undefined, retryAfter);
  }
}
