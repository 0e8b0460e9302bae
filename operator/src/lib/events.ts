// Kubernetes Events (events.k8s.io/v1) for controllers, after client-go's tools/events EventBroadcaster and
// the spam filter of tools/record's EventCorrelator.
//
// - record() never throws and never waits: the write happens in the background through a small bounded
//   sender (events must not compete with reconciles for the apiserver; when the backlog is full new events
//   are dropped, as client-go drops on a full channel).
// - Identical events (same regarding object, type, reason, message, controller and instance) seen again
//   within the series window (6 min, client-go's finishTime) are not created again: the first repeat patches
//   `series: {count: 2, lastObservedTime}` onto the existing Event, later repeats are coalesced and flushed
//   at most every `seriesFlushMs` (client-go flushes series only every 30 min; we want counts to show sooner).
//   Deviation: client-go's key leaves the message out; we keep it in, so that a new message is never hidden
//   inside another message's series.
// - A token bucket per regarding object (burst 25, one token per 5 min, like tools/record's spam filter)
//   bounds how many distinct events one object can produce; repeats inside a series cost no token.

import { hostname } from "node:os";
import { KubeHttp, type KubeConfigLike } from "./kube-http.ts";
import { microTime } from "./leader-election.ts";
import { monotonicNow, wallNow } from "./clock.ts";

export interface EventSubject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; uid?: string };
}

export type EventType = "Normal" | "Warning";

/** The apiserver's limit on an Event's note, in bytes of UTF-8 (Go's len). */
const MAX_NOTE_BYTES = 1024;

/** The message cut to MAX_NOTE_BYTES on a code point boundary (well-formed: lone surrogates become U+FFFD). */
export function eventNote(message: string): string {
  const text = message.toWellFormed();
  if (Buffer.byteLength(text) <= MAX_NOTE_BYTES) return text;
  let note = "";
  let bytes = 3; // the "..." appended
  for (const char of text) {
    bytes += Buffer.byteLength(char);
    if (bytes > MAX_NOTE_BYTES) break;
    note += char;
  }
  return `${note}...`;
}

export interface EventRecorderOptions {
  kubeConfig: KubeConfigLike;
  /** reportingController, e.g. "mokd.io/operator". */
  component: string;
  /** reportingInstance; defaults to the host name (the pod name in a cluster). */
  instance?: string;
  correlator?: Partial<CorrelatorOptions>;
  /** How often at most a series' count is written (default 10 s). */
  seriesFlushMs?: number;
  /** Parallel writes (default 4) and the backlog beyond which events are dropped (default 1000). */
  concurrency?: number;
  maxPending?: number;
  onError?: (error: unknown) => void;
}

export interface CorrelatorOptions {
  seriesWindowMs: number;
  burst: number;
  refillIntervalMs: number;
  /** Series remembered at most (oldest forgotten first). */
  maxSeries: number;
}

const DEFAULT_CORRELATOR: CorrelatorOptions = {
  seriesWindowMs: 6 * 60_000,
  burst: 25,
  refillIntervalMs: 5 * 60_000,
  maxSeries: 4096,
};

export interface Series {
  /** Name of the Event object written for the first occurrence. */
  name: string;
  count: number;
  /** Monotonic ms of the last occurrence (the series window). */
  lastObserved: number;
  /** Wall-clock ms of the last occurrence (the Event's lastObservedTime). */
  lastObservedWall: number;
}

export type Decision =
  { action: "create"; series: Series } | { action: "repeat"; series: Series } | { action: "drop" };

/** Pure event correlation: decides, for an event key at time `now`, whether to create, count or drop it. */
export class EventCorrelator {
  readonly #opts: CorrelatorOptions;
  readonly #series = new Map<string, Series>();
  readonly #buckets = new Map<string, { tokens: number; last: number }>();

  constructor(opts: Partial<CorrelatorOptions> = {}) {
    this.#opts = { ...DEFAULT_CORRELATOR, ...opts };
  }

  observe(objectKey: string, eventKey: string, now: number, newName: () => string, wall = now): Decision {
    const existing = this.#series.get(eventKey);
    if (existing && now - existing.lastObserved <= this.#opts.seriesWindowMs) {
      existing.count++;
      existing.lastObserved = now;
      existing.lastObservedWall = wall;
      this.#series.delete(eventKey); // re-insert: Map order doubles as LRU order
      this.#series.set(eventKey, existing);
      return { action: "repeat", series: existing };
    }
    if (!this.#takeToken(objectKey, now)) return { action: "drop" };
    const series: Series = { name: newName(), count: 1, lastObserved: now, lastObservedWall: wall };
    this.#series.delete(eventKey);
    this.#series.set(eventKey, series);
    this.#evict();
    return { action: "create", series };
  }

  #takeToken(objectKey: string, now: number): boolean {
    const { burst, refillIntervalMs } = this.#opts;
    const bucket = this.#buckets.get(objectKey) ?? { tokens: burst, last: now };
    bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.last) / refillIntervalMs);
    bucket.last = now;
    this.#buckets.delete(objectKey);
    this.#buckets.set(objectKey, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  #evict(): void {
    for (const map of [this.#series, this.#buckets] as Map<string, unknown>[]) {
      while (map.size > this.#opts.maxSeries) map.delete(map.keys().next().value!);
    }
  }
}

interface PendingSeries {
  namespace: string;
  series: Series;
  timer: NodeJS.Timeout | undefined;
  /** The create of the first event, which a series patch must wait for. */
  created: Promise<boolean>;
}

export class EventRecorder {
  readonly #opts: EventRecorderOptions;
  readonly #instance: string;
  readonly #http: KubeHttp;
  readonly #correlator: EventCorrelator;
  readonly #pending = new Map<string, PendingSeries>();
  readonly #backlog: (() => Promise<unknown>)[] = [];
  #active = 0;
  readonly #idle: (() => void)[] = [];

  constructor(opts: EventRecorderOptions) {
    this.#opts = opts;
    this.#instance = opts.instance ?? hostname();
    this.#http = KubeHttp.for(opts.kubeConfig);
    this.#correlator = new EventCorrelator(opts.correlator);
  }

  record(obj: EventSubject, type: EventType, reason: string, message: string): void {
    try {
      this.#record(obj, type, reason, message);
    } catch (error) {
      this.#report(error);
    }
  }

  /** Writes pending series counts now and waits until nothing is in flight (tests, shutdown). */
  async flush(): Promise<void> {
    for (const pending of this.#pending.values()) {
      if (pending.timer) this.#flushSeries(pending);
    }
    if (this.#active === 0 && this.#backlog.length === 0) return;
    await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  #record(obj: EventSubject, type: EventType, reason: string, message: string): void {
    const { name = "", namespace = "default", uid = "" } = obj.metadata;
    const objectKey = `${obj.kind}/${namespace}/${name}/${uid}`;
    const note = eventNote(message);
    const eventKey = JSON.stringify([objectKey, type, reason, note]);
    const now = monotonicNow();
    const wall = wallNow().getTime();
    const decision = this.#correlator.observe(
      objectKey,
      eventKey,
      now,
      () => `${name}.${eventSuffix(wall)}`,
      wall,
    );
    if (decision.action === "drop") return;
    if (decision.action === "create") {
      const body = {
        apiVersion: "events.k8s.io/v1",
        kind: "Event",
        metadata: { name: decision.series.name, namespace },
        eventTime: microTime(new Date(wall)),
        reportingController: this.#opts.component,
        reportingInstance: this.#instance,
        action: reason,
        reason,
        note,
        type,
        regarding: { apiVersion: obj.apiVersion, kind: obj.kind, name, namespace, uid },
      };
      const created = this.#send(`/apis/events.k8s.io/v1/namespaces/${namespace}/events`, "POST", body);
      const old = this.#pending.get(eventKey);
      if (old?.timer) clearTimeout(old.timer);
      this.#pending.delete(eventKey);
      this.#pending.set(eventKey, { namespace, series: decision.series, timer: undefined, created });
      this.#forgetOldSeries();
      return;
    }
    const pending = this.#pending.get(eventKey);
    if (!pending || pending.series !== decision.series || pending.timer) return; // a flush is already due
    // The first repeat is written at once (count 2 shows up quickly); later ones are coalesced.
    const delay = decision.series.count === 2 ? 0 : (this.#opts.seriesFlushMs ?? 10_000);
    pending.timer = setTimeout(() => this.#flushSeries(pending), delay);
  }

  /** Bounds memory: keeps as many series as the correlator remembers (oldest created first out). */
  #forgetOldSeries(): void {
    const max = this.#opts.correlator?.maxSeries ?? DEFAULT_CORRELATOR.maxSeries;
    for (const [key, pending] of this.#pending) {
      if (this.#pending.size <= max) break;
      if (pending.timer) this.#flushSeries(pending);
      this.#pending.delete(key);
    }
  }

  #flushSeries(pending: PendingSeries): void {
    clearTimeout(pending.timer);
    pending.timer = undefined;
    const { namespace, series } = pending;
    void pending.created.then((ok) => {
      if (!ok) return;
      const patch = {
        series: { count: series.count, lastObservedTime: microTime(new Date(series.lastObservedWall)) },
      };
      const path = `/apis/events.k8s.io/v1/namespaces/${namespace}/events/${series.name}`;
      return this.#send(path, "PATCH", patch, "application/merge-patch+json");
    });
  }

  /** Queues one write; resolves true when it succeeded. Never rejects. */
  #send(path: string, method: "POST" | "PATCH", body: unknown, contentType?: string): Promise<boolean> {
    const maxPending = this.#opts.maxPending ?? 1000;
    if (this.#backlog.length >= maxPending) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.#backlog.push(() =>
        this.#http.request(path, { method, body, contentType, timeoutMs: 10_000 }).then(
          () => resolve(true),
          (error: unknown) => {
            this.#report(error);
            resolve(false);
          },
        ),
      );
      this.#pump();
    });
  }

  #pump(): void {
    const concurrency = this.#opts.concurrency ?? 4;
    while (this.#active < concurrency && this.#backlog.length > 0) {
      const job = this.#backlog.shift()!;
      this.#active++;
      void job().finally(() => {
        this.#active--;
        this.#pump();
        if (this.#active === 0 && this.#backlog.length === 0)
          this.#idle.splice(0).forEach((resolve) => resolve());
      });
    }
  }

  #report(error: unknown): void {
    try {
      this.#opts.onError?.(error);
    } catch {
      // nothing more to do: recording events is best effort
    }
  }
}

/** Unique-enough suffix like client-go's "%x" of UnixNano, plus a counter for events in the same ms. */
let sequence = 0;
function eventSuffix(now: number): string {
  sequence = (sequence + 1) % 0x10000;
  return (BigInt(now) * 1_000_000n + BigInt(sequence)).toString(16);
}
