// A list-then-watch cache of one resource, after client-go's Reflector + DeltaFIFO + Indexer, reduced to what
// a controller needs.
//
// Why not @kubernetes/client-node's makeInformer/ListWatch: in 2.0.1 its doneHandler stops for good after any
// error that is neither 410 nor a client timeout (it calls the error callbacks and returns, leaving the cache
// silently stale), and a failing relist likewise ends the loop.
//
// Here: list (paged) -> watch from the list's resourceVersion with allowWatchBookmarks; a server-side watch
// timeout reconnects at once from the last resourceVersion; 410 Gone (HTTP or an ERROR event) relists; ANY
// other error restarts after an exponential backoff (0.5 s doubling, cap 4 s, reset by progress: client-go
// caps at 30 s, but a cache should catch up within seconds of the apiserver's return, and a refused connect
// costs the apiserver nothing). A restarted apiserver answers a watch from an older resourceVersion than its
// new watch cache with HTTP 200 and one ERROR 410 event: that relists at once like any 410. After each
// relist the new list is diffed against the cache and replayed as ADDED/MODIFIED/DELETED, so handlers see
// what happened while disconnected (client-go's Replace + DeletedFinalStateUnknown). Objects are stored as
// parsed from the wire, never copied (only metadata.managedFields is dropped, and whatever `transform` drops,
// like controller-runtime's cache TransformFunc): handlers must treat them as read-only.

import type { KubernetesObject } from "@kubernetes/client-node";
import type { IncomingMessage } from "node:http";
import { KubeApiError, KubeHttp, type KubeConfigLike } from "./kube-http.ts";
import { monotonicNow } from "./clock.ts";
import { sleepUnlessAborted } from "./sleep.ts";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface WatchResourceOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfigLike;
  /** Collection path, e.g. /apis/batch/v1/jobs or /apis/batch/v1/namespaces/ns/jobs. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  onEvent(type: WatchEventType, obj: T): void;
  /** Called for every error the informer recovers from (for logs and metrics). */
  onError?(error: unknown): void;
  /** Server-side watch timeout; client-go picks 5-10 min at random. */
  watchTimeoutSeconds?: number;
  /** Items per list page. */
  pageSize?: number;
  /**
   * Drop metadata.managedFields from cached objects (default true), like controller-runtime's
   * TransformStripManagedFields: they are often half an object's size and a controller never reads them.
   */
  stripManagedFields?: boolean;
  /**
   * Trims each object before it is cached and handed to onEvent (after managedFields are dropped), e.g. to
   * keep only the fields a controller reads: the caches are most of an operator's memory. Must keep
   * metadata.namespace, name and resourceVersion.
   */
  transform?(obj: T): T;
  /** A secondary index (client-go's Indexer with one index function): objects by this value, see byIndex. */
  indexBy?(obj: T): string | undefined;
  /** Backoff bounds after errors. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface ResourceWatch<T extends KubernetesObject> {
  /** Starts the loop; resolves once the first list is in the cache (retrying until then) or stop(). */
  start(): Promise<void>;
  stop(): void;
  list(): T[];
  get(namespace: string | undefined, name: string): T | undefined;
  /** Cached objects whose indexBy value is `value` (empty without indexBy). */
  byIndex(value: string): T[];
  hasSynced(): boolean;
  /**
   * For how long (ms, monotonic) the informer has been failing to list or watch without making progress
   * since; 0 while it works. Readiness and liveness checks read this: a synced cache can still go stale.
   */
  failingForMs(): number;
  /** The last error since it started failing (undefined while it works). */
  lastError(): unknown;
}

interface WatchLine {
  type: WatchEventType | "BOOKMARK" | "ERROR";
  object: KubernetesObject & { code?: number; message?: string; reason?: string };
}

interface ObjectList<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

/** Thrown inside the loop when the resourceVersion is too old: relist without backoff. */
class Gone extends Error {}

/** The apiserver sends a BOOKMARK about every minute on an idle watch that allows them (cacher). */
const BOOKMARK_SILENCE_LIMIT_S = 150;

/** How long a watch must stay open without an error to count as working (for failingForMs). */
const WATCH_WORKING_MS = 2000;

export function cacheKey(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

function keyOf(obj: KubernetesObject): string {
  return cacheKey(obj.metadata?.namespace, obj.metadata?.name ?? "");
}

export function watchResource<T extends KubernetesObject>(opts: WatchResourceOptions<T>): ResourceWatch<T> {
  return new Informer(opts);
}

/**
 * The events that turn cache `before` into list `after`: ADDED for new keys, MODIFIED where the
 * resourceVersion differs, DELETED (with the last known object) for keys that are gone.
 */
export function diffEvents<T extends KubernetesObject>(
  before: ReadonlyMap<string, T>,
  after: ReadonlyMap<string, T>,
): [WatchEventType, T][] {
  const events: [WatchEventType, T][] = [];
  for (const [key, obj] of after) {
    const old = before.get(key);
    if (!old) events.push(["ADDED", obj]);
    else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) events.push(["MODIFIED", obj]);
  }
  for (const [key, old] of before) if (!after.has(key)) events.push(["DELETED", old]);
  return events;
}

class Informer<T extends KubernetesObject> implements ResourceWatch<T> {
  readonly #opts: WatchResourceOptions<T>;
  readonly #http: KubeHttp;
  #cache = new Map<string, T>();
  readonly #index = new Map<string, Set<string>>();
  #resourceVersion = "";
  #synced = false;
  #running = false;
  #abort = new AbortController();
  #syncWaiters: (() => void)[] = [];
  #backoffMs = 0;
  /** Monotonic time of the first error since the last progress (undefined: working). */
  #failingSince: number | undefined;
  #lastError: unknown;

  constructor(opts: WatchResourceOptions<T>) {
    this.#opts = opts;
    this.#http = KubeHttp.for(opts.kubeConfig);
  }

  start(): Promise<void> {
    if (!this.#running) {
      this.#running = true;
      this.#abort = new AbortController();
      void this.#loop();
    }
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  stop(): void {
    this.#running = false;
    this.#abort.abort();
    this.#syncWaiters.splice(0).forEach((resolve) => resolve());
  }

  list(): T[] {
    return Array.from(this.#cache.values());
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.#cache.get(cacheKey(namespace, name));
  }

  byIndex(value: string): T[] {
    const keys = this.#index.get(value);
    if (!keys) return [];
    return Array.from(keys, (key) => this.#cache.get(key)).filter((obj): obj is T => obj !== undefined);
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  failingForMs(): number {
    return this.#failingSince === undefined ? 0 : monotonicNow() - this.#failingSince;
  }

  lastError(): unknown {
    return this.#failingSince === undefined ? undefined : this.#lastError;
  }

  /** The cache is current again (a list, or a watch delivering). */
  #progressed(): void {
    this.#failingSince = undefined;
    this.#lastError = undefined;
  }

  #failed(error: unknown): void {
    this.#failingSince ??= monotonicNow();
    this.#lastError = error;
  }

  #indexAdd(key: string, obj: T): void {
    const value = this.#opts.indexBy?.(obj);
    if (value === undefined) return;
    let keys = this.#index.get(value);
    if (!keys) this.#index.set(value, (keys = new Set()));
    keys.add(key);
  }

  #indexRemove(key: string, obj: T | undefined): void {
    const value = obj && this.#opts.indexBy?.(obj);
    if (value === undefined) return;
    const keys = this.#index.get(value);
    keys?.delete(key);
    if (keys?.size === 0) this.#index.delete(value);
  }

  async #loop(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        if (!this.#resourceVersion) await this.#relist(signal);
        await this.#watch(signal);
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof Gone) {
          this.#resourceVersion = "";
          continue;
        }
        this.#failed(error);
        this.#report(error);
        // A 429 says when to come back (Retry-After): never sooner than that.
        const retryAfterMs = error instanceof KubeApiError ? (error.retryAfterSeconds ?? 0) * 1000 : 0;
        await this.#sleepBackoff(signal, retryAfterMs);
      }
    }
  }

  async #relist(signal: AbortSignal): Promise<void> {
    const fresh = new Map<string, T>();
    let resourceVersion: string;
    let continueToken: string | undefined;
    do {
      const page = await this.#http.request<ObjectList<T>>(this.#opts.path, {
        query: {
          labelSelector: this.#opts.labelSelector,
          fieldSelector: this.#opts.fieldSelector,
          limit: this.#opts.pageSize ?? 500,
          continue: continueToken,
        },
        signal,
        timeoutMs: 60_000,
      });
      for (const item of page.items ?? []) fresh.set(keyOf(item), this.#trim(item));
      resourceVersion = page.metadata?.resourceVersion ?? "";
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken);
    const events = diffEvents(this.#cache, fresh);
    this.#cache = fresh;
    this.#index.clear();
    for (const [key, obj] of fresh) this.#indexAdd(key, obj);
    this.#resourceVersion = resourceVersion;
    this.#backoffMs = 0;
    this.#progressed();
    this.#markSynced();
    for (const [type, obj] of events) this.#emit(type, obj);
  }

  /** One watch connection; returns when the server ends it normally, throws on errors. */
  async #watch(signal: AbortSignal): Promise<void> {
    const timeoutSeconds = this.#opts.watchTimeoutSeconds ?? Math.round(300 + Math.random() * 300);
    const connection = new AbortController();
    const onStop = () => connection.abort();
    signal.addEventListener("abort", onStop, { once: true });
    const opened = monotonicNow();
    let progressed = false;
    let working: NodeJS.Timeout | undefined;
    try {
      const res = await this.#http.stream(this.#opts.path, {
        query: {
          watch: 1,
          resourceVersion: this.#resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
          labelSelector: this.#opts.labelSelector,
          fieldSelector: this.#opts.fieldSelector,
        },
        signal: connection.signal,
      });
      // A dead TCP peer may never close the stream: give up when even the server's timeout has passed, or
      // when no bookmark came for far longer than the apiserver's one-a-minute.
      const idleMs = Math.min(timeoutSeconds + 30, BOOKMARK_SILENCE_LIMIT_S) * 1000;
      // An idle watch delivers nothing: one that stays open a moment without an error is working (one that
      // opens and fails at once, again and again, is not).
      working = setTimeout(() => this.#progressed(), WATCH_WORKING_MS);
      await this.#readLines(res, idleMs, connection, (line) => {
        this.#handle(JSON.parse(line) as WatchLine);
        progressed = true;
        this.#progressed();
      });
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 410) throw new Gone(error.message);
      throw error;
    } finally {
      clearTimeout(working);
      signal.removeEventListener("abort", onStop);
      connection.abort();
    }
    if (progressed) this.#backoffMs = 0;
    // A stream that ends at once without events (e.g. a proxy dropping it) must not become a hot loop.
    if (!progressed && monotonicNow() - opened < 1000) throw new Error("watch closed immediately");
    this.#progressed(); // ended by the server's timeout: the watch worked
  }

  #readLines(
    res: IncomingMessage,
    idleMs: number,
    connection: AbortController,
    onLine: (line: string) => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      let buffered = "";
      let settled = false;
      let idle = setTimeout(() => connection.abort(), idleMs);
      // Settle first, then destroy: destroying the response can emit 'aborted' synchronously, and that must not
      // replace the real outcome (a 410 ERROR event became "watch connection aborted", so after an apiserver
      // restart the informer retried the same too-old resourceVersion forever instead of relisting).
      const settle = (error?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        if (error === undefined) resolve();
        else reject(error);
        res.destroy();
      };
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (settled) return;
        clearTimeout(idle);
        idle = setTimeout(() => connection.abort(), idleMs);
        buffered += chunk;
        // Scan with an offset and cut the buffer once per chunk (slicing per line is quadratic in big chunks).
        let start = 0;
        for (let newline = buffered.indexOf("\n"); newline >= 0; newline = buffered.indexOf("\n", start)) {
          const line = buffered.slice(start, newline);
          start = newline + 1;
          try {
            if (line.trim()) onLine(line);
          } catch (error) {
            return settle(error);
          }
        }
        buffered = buffered.slice(start);
      });
      res.once("end", () => settle());
      res.once("error", (error) => settle(error));
      res.once("aborted", () => settle(new Error("watch connection aborted")));
      connection.signal.addEventListener("abort", () => settle(new Error("watch aborted")), { once: true });
    });
  }

  #handle(event: WatchLine): void {
    const obj = event.object;
    if (event.type === "ERROR") {
      if (obj.code === 410) throw new Gone(obj.message ?? "resourceVersion too old");
      throw new KubeApiError(obj.code ?? 500, obj.message ?? "watch error", obj.reason);
    }
    const resourceVersion = obj.metadata?.resourceVersion;
    if (resourceVersion) this.#resourceVersion = resourceVersion;
    if (event.type === "BOOKMARK") return;
    const trimmed = this.#trim(obj as T);
    const key = keyOf(trimmed);
    this.#indexRemove(key, this.#cache.get(key));
    if (event.type === "DELETED") this.#cache.delete(key);
    else {
      this.#cache.set(key, trimmed);
      this.#indexAdd(key, trimmed);
    }
    this.#emit(event.type, trimmed);
  }

  /** In place where possible (no copy): the object was just parsed and is ours. */
  #trim(obj: T): T {
    if (this.#opts.stripManagedFields !== false && obj.metadata) delete obj.metadata.managedFields;
    return this.#opts.transform ? this.#opts.transform(obj) : obj;
  }

  #emit(type: WatchEventType, obj: T): void {
    try {
      this.#opts.onEvent(type, obj);
    } catch (error) {
      this.#report(error); // a failing handler must not stop the informer
    }
  }

  #report(error: unknown): void {
    try {
      this.#opts.onError?.(error);
    } catch {
      // the error reporter itself failed: nothing left to tell
    }
  }

  #markSynced(): void {
    if (this.#synced) return;
    this.#synced = true;
    this.#syncWaiters.splice(0).forEach((resolve) => resolve());
  }

  async #sleepBackoff(signal: AbortSignal, atLeastMs = 0): Promise<void> {
    const min = this.#opts.minBackoffMs ?? 500;
    const max = this.#opts.maxBackoffMs ?? 4000;
    this.#backoffMs = Math.min(max, this.#backoffMs ? this.#backoffMs * 2 : min);
    const jittered = this.#backoffMs * (0.8 + Math.random() * 0.4);
    await sleepUnlessAborted(Math.max(jittered, Math.min(atLeastMs, 30_000)), signal);
  }
}
