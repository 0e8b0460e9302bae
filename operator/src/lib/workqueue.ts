// A keyed, rate-limited, delaying work queue for controllers, after client-go's util/workqueue
// (Type + delaying_queue + rate_limiting_queue) and DefaultControllerRateLimiter.
//
// Semantics (same as client-go):
// - A key is queued at most once: adding a key that is already waiting is a no-op ("dirty" set).
// - A key is never handed to two workers at once: adding a key while it is being processed marks it dirty,
//   and it is queued again only when the worker calls done(key).
// - addAfter(key, ms) parks the key in a min-heap until its time; a key parked twice keeps the earlier time.
// - addRateLimited(key) = addAfter(key, max(per-key exponential backoff, overall token bucket)); the per-key
//   backoff is base * 2^failures (5 ms .. 1000 s) and is reset by forget(key); the token bucket (10 qps,
//   burst 100) bounds the overall retry rate, as client-go's BucketRateLimiter does.
// - Priorities, after controller-runtime's priority queue: add(key, "low") waits behind every "normal" key (a
//   key added again at "normal" is promoted). The operator adds a DistillationJob's own events (a new job whose
//   children are to be created: bulk work, several writes each; our status writes echoing back) at "low", and
//   its children's changes at "normal", so a status someone waits on is not queued behind a burst of creations.
//   Starvation is bounded: when both wait, every LOW_SHARE-th key handed out is a low one.
// Deviation: after shutDown() get() returns undefined at once instead of draining waiting keys: a replica
// that stops leading should hand over quickly, and the next leader relists everything anyway.

import { monotonicNow } from "./clock.ts";

export type Priority = "normal" | "low";

/** One in this many keys handed out is a low-priority one when both kinds wait (bulk work never stops). */
export const LOW_SHARE = 8;

export interface WorkQueueHooks {
  /** A key was added (called also for adds that dedupe). */
  onAdd?(key: string): void;
  /** The number of keys ready to be processed changed. */
  onDepth?(depth: number): void;
  /** A key waited this long between becoming ready and being handed to a worker. */
  onQueueLatency?(key: string, seconds: number): void;
  /** A key was re-added through addRateLimited (a retry). */
  onRetry?(key: string): void;
}

export interface RateLimiterOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  /** Overall retries per second (token bucket refill rate). */
  qps: number;
  burst: number;
}

export const DEFAULT_RATE_LIMITER: RateLimiterOptions = {
  baseDelayMs: 5,
  maxDelayMs: 1_000_000,
  qps: 10,
  burst: 100,
};

export interface WorkQueueOptions {
  rateLimiter?: Partial<RateLimiterOptions>;
  hooks?: WorkQueueHooks;
}

/** Per-key exponential backoff combined with an overall token bucket (client-go's MaxOfRateLimiter). */
export class RateLimiter {
  readonly #opts: RateLimiterOptions;
  readonly #failures = new Map<string, number>();
  #tokens: number;
  #lastRefill = monotonicNow();

  constructor(opts: Partial<RateLimiterOptions> = {}) {
    this.#opts = { ...DEFAULT_RATE_LIMITER, ...opts };
    this.#tokens = this.#opts.burst;
  }

  /** Delay before the next retry of key; counts one more failure. */
  when(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const backoff = Math.min(this.#opts.baseDelayMs * 2 ** failures, this.#opts.maxDelayMs);
    return Math.max(backoff, this.#reserveToken());
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Takes one token (possibly going into debt, like rate.Limiter.Reserve) and returns the wait for it. */
  #reserveToken(): number {
    const now = monotonicNow();
    this.#tokens = Math.min(
      this.#opts.burst,
      this.#tokens + ((now - this.#lastRefill) / 1000) * this.#opts.qps,
    );
    this.#lastRefill = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : (-this.#tokens / this.#opts.qps) * 1000;
  }
}

/** FIFO of keys with O(1) amortised push and shift. */
class Fifo {
  #items: string[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(key: string): void {
    this.#items.push(key);
  }

  shift(): string | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const key = this.#items[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return key;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

interface Parked {
  readyAt: number;
  key: string;
}

/** Binary min-heap of parked keys ordered by readyAt. */
class ParkedHeap {
  readonly #heap: Parked[] = [];

  get length(): number {
    return this.#heap.length;
  }

  peek(): Parked | undefined {
    return this.#heap[0];
  }

  push(item: Parked): void {
    const heap = this.#heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.readyAt <= item.readyAt) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = item;
  }

  pop(): Parked | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.readyAt < heap[left]!.readyAt ? right : left;
      if (heap[child]!.readyAt >= last.readyAt) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

export class WorkQueue {
  readonly #queues: Record<Priority, Fifo> = { normal: new Fifo(), low: new Fifo() };
  /** The priority of each key waiting in #queues (an entry of another priority there is stale). */
  readonly #queued = new Map<string, Priority>();
  readonly #waiting: Record<Priority, number> = { normal: 0, low: 0 };
  /** Normal keys handed out in a row while low ones waited. */
  #normalStreak = 0;
  /** Keys that need processing (waiting in #queues, or re-added while being processed), with their priority. */
  readonly #dirty = new Map<string, Priority>();
  readonly #processing = new Set<string>();
  /** When each dirty key became ready, for the queue-latency hook. */
  readonly #readySince = new Map<string, number>();
  readonly #parked = new ParkedHeap();
  /** Earliest readyAt per parked key; heap entries with another time are stale and skipped. */
  readonly #parkedAt = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  readonly #waiters: ((key: string | undefined) => void)[] = [];
  readonly #drained: (() => void)[] = [];
  #shuttingDown = false;
  readonly #limiter: RateLimiter;
  readonly #hooks: WorkQueueHooks;

  constructor(opts: WorkQueueOptions = {}) {
    this.#limiter = new RateLimiter(opts.rateLimiter);
    this.#hooks = opts.hooks ?? {};
  }

  add(key: string, priority: Priority = "normal"): void {
    if (this.#shuttingDown) return;
    this.#hooks.onAdd?.(key);
    const dirty = this.#dirty.get(key);
    if (dirty !== undefined) {
      if (dirty === "low" && priority === "normal") {
        this.#dirty.set(key, "normal");
        if (this.#queued.get(key) === "low") this.#push(key, "normal"); // promoted: the low entry goes stale
      }
      return;
    }
    this.#dirty.set(key, priority);
    this.#readySince.set(key, monotonicNow());
    if (this.#processing.has(key)) return; // queued again by done()
    this.#enqueue(key, priority);
  }

  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const readyAt = monotonicNow() + ms;
    const current = this.#parkedAt.get(key);
    if (current !== undefined && current <= readyAt) return;
    this.#parkedAt.set(key, readyAt);
    this.#parked.push({ readyAt, key });
    this.#armTimer();
  }

  addRateLimited(key: string): void {
    if (this.#shuttingDown) return;
    this.#hooks.onRetry?.(key);
    this.addAfter(key, this.#limiter.when(key));
  }

  forget(key: string): void {
    this.#limiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.#limiter.numRequeues(key);
  }

  /** Next key to process; waits while the queue is empty; undefined once shut down. */
  get(): Promise<string | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    const key = this.#take();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Marks key as processed; if it was re-added meanwhile it is queued again now. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#shuttingDown) {
      if (this.#processing.size === 0) this.#drained.splice(0).forEach((resolve) => resolve());
      return;
    }
    const priority = this.#dirty.get(key);
    if (priority !== undefined) this.#enqueue(key, priority);
  }

  /** Keys ready to be processed (not counting parked or in-flight keys). */
  len(): number {
    return this.#queued.size;
  }

  /** Keys currently handed to workers. */
  inFlight(): number {
    return this.#processing.size;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Stops intake: adds are ignored, waiting workers get undefined, parked keys are dropped. */
  shutDown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queues.normal.clear();
    this.#queues.low.clear();
    this.#queued.clear();
    this.#waiting.normal = this.#waiting.low = 0;
    this.#dirty.clear();
    this.#readySince.clear();
    this.#parkedAt.clear();
    this.#waiters.splice(0).forEach((resolve) => resolve(undefined));
    this.#hooks.onDepth?.(0);
  }

  /** shutDown(), then waits until every in-flight key is done(). */
  shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.#processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  #enqueue(key: string, priority: Priority): void {
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#startProcessing(key);
      waiter(key);
      return;
    }
    this.#push(key, priority);
    this.#hooks.onDepth?.(this.#queued.size);
  }

  #push(key: string, priority: Priority): void {
    const previous = this.#queued.get(key);
    if (previous !== undefined) this.#waiting[previous]--;
    this.#queued.set(key, priority);
    this.#waiting[priority]++;
    this.#queues[priority].push(key);
  }

  /** Normal keys first; a low one after LOW_SHARE - 1 normal ones in a row while it waited. */
  #nextPriority(): Priority | undefined {
    if (this.#waiting.normal === 0) return this.#waiting.low > 0 ? "low" : undefined;
    if (this.#waiting.low === 0 || this.#normalStreak < LOW_SHARE - 1) return "normal";
    return "low";
  }

  #take(): string | undefined {
    const priority = this.#nextPriority();
    if (priority === undefined) return undefined;
    this.#normalStreak = priority === "normal" && this.#waiting.low > 0 ? this.#normalStreak + 1 : 0;
    for (let key = this.#queues[priority].shift(); key !== undefined; key = this.#queues[priority].shift()) {
      if (this.#queued.get(key) !== priority) continue; // stale: promoted, or taken from the other queue
      this.#hooks.onDepth?.(this.#queued.size - 1);
      this.#startProcessing(key);
      return key;
    }
    return undefined;
  }

  #startProcessing(key: string): void {
    const queued = this.#queued.get(key);
    if (queued !== undefined) {
      this.#queued.delete(key);
      this.#waiting[queued]--;
    }
    this.#processing.add(key);
    this.#dirty.delete(key);
    const since = this.#readySince.get(key);
    this.#readySince.delete(key);
    if (since !== undefined) this.#hooks.onQueueLatency?.(key, (monotonicNow() - since) / 1000);
  }

  /** Moves every parked key whose time has come into the queue, then re-arms the timer. */
  #releaseParked(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = monotonicNow();
    for (let next = this.#parked.peek(); next && next.readyAt <= now; next = this.#parked.peek()) {
      this.#parked.pop();
      if (this.#parkedAt.get(next.key) !== next.readyAt) continue; // stale entry
      this.#parkedAt.delete(next.key);
      this.add(next.key);
    }
    this.#armTimer();
  }

  #armTimer(): void {
    if (this.#shuttingDown) return;
    let next = this.#parked.peek();
    while (next && this.#parkedAt.get(next.key) !== next.readyAt) {
      this.#parked.pop();
      next = this.#parked.peek();
    }
    if (!next || next.readyAt >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = next.readyAt;
    this.#timer = setTimeout(() => this.#releaseParked(), Math.max(0, next.readyAt - monotonicNow()));
  }
}

// `void` so that reconcilers with no return value fit.
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type
export type Reconcile = (key: string) => Promise<{ requeueAfterMs?: number } | void>;

export interface WorkerHooks {
  /** One reconcile finished: its wall time and outcome. */
  onWorkDuration?(key: string, seconds: number, outcome: "success" | "error" | "requeue"): void;
  onError?(key: string, error: unknown): void;
}

/**
 * Runs `concurrency` workers that take keys from the queue until it shuts down, like controller-runtime's
 * processNextWorkItem: success -> forget; throw -> addRateLimited; {requeueAfterMs} -> forget + addAfter.
 * Resolves when every worker has stopped.
 */
export async function runWorkers(
  queue: WorkQueue,
  concurrency: number,
  reconcile: Reconcile,
  hooks: WorkerHooks = {},
): Promise<void> {
  const worker = async (): Promise<void> => {
    for (let key = await queue.get(); key !== undefined; key = await queue.get()) {
      await processOne(queue, key, reconcile, hooks);
      // A reconcile with nothing to write never waits for I/O, and a ready key is handed out at once: without
      // this, a long queue of such keys runs as one chain of microtasks and starves the event loop (3.1 s at
      // 10,000 jobs: watch events, Lease renewals and every HTTP response waited). Go's workers are preempted.
      await yieldToEventLoop();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
}

/** Resolves after pending I/O callbacks and timers had their turn. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

async function processOne(queue: WorkQueue, key: string, reconcile: Reconcile, hooks: WorkerHooks) {
  const started = monotonicNow();
  let outcome: "success" | "error" | "requeue" = "success";
  try {
    const result = await reconcile(key);
    queue.forget(key);
    if (result && result.requeueAfterMs !== undefined) {
      outcome = "requeue";
      queue.addAfter(key, result.requeueAfterMs);
    }
  } catch (error) {
    outcome = "error";
    hooks.onError?.(key, error);
    queue.addRateLimited(key);
  } finally {
    queue.done(key);
    hooks.onWorkDuration?.(key, (monotonicNow() - started) / 1000, outcome);
  }
}
