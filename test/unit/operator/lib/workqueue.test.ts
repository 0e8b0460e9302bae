import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LOW_SHARE, RateLimiter, WorkQueue, runWorkers } from "../../../../operator/src/lib/workqueue.ts";

/** Keys get() would hand out right now, without waiting. */
async function drainReady(queue: WorkQueue): Promise<string[]> {
  const keys: string[] = [];
  while (queue.len() > 0) keys.push((await queue.get())!);
  return keys;
}

describe("WorkQueue", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("measures delays on the monotonic clock: a wall-clock jump neither releases nor holds a parked key", async () => {
    const queue = new WorkQueue();
    queue.addAfter("a", 1000);
    vi.setSystemTime(Date.now() + 3_600_000); // NTP steps the wall clock an hour ahead
    queue.addAfter("b", 100); // its timer makes the queue look at every parked key
    await vi.advanceTimersByTimeAsync(500);
    expect(await drainReady(queue)).toEqual(["b"]); // "a" is not due: only 500 ms have passed
    await vi.advanceTimersByTimeAsync(500);
    expect(await drainReady(queue)).toEqual(["a"]);
  });

  it("dedupes a key added twice while waiting", async () => {
    const queue = new WorkQueue();
    queue.add("a");
    queue.add("b");
    queue.add("a");
    expect(queue.len()).toBe(2);
    expect(await drainReady(queue)).toEqual(["a", "b"]);
  });

  it("defers a re-add during processing until done(), and hands the key out once", async () => {
    const queue = new WorkQueue();
    queue.add("a");
    expect(await queue.get()).toBe("a");
    queue.add("a");
    queue.add("a");
    expect(queue.len()).toBe(0); // not handed to a second worker while in flight
    queue.done("a");
    expect(queue.len()).toBe(1);
    expect(await queue.get()).toBe("a");
    queue.done("a");
    expect(queue.len()).toBe(0);
  });

  it("hands out normal keys before low ones, and promotes a low key added again at normal", async () => {
    const queue = new WorkQueue();
    queue.add("new-1", "low");
    queue.add("new-2", "low");
    queue.add("child-changed");
    queue.add("new-2"); // a child of new-2 changed meanwhile
    queue.add("child-changed", "low"); // stays normal
    expect(queue.len()).toBe(3);
    expect(await drainReady(queue)).toEqual(["child-changed", "new-2", "new-1"]);
  });

  it("keeps the higher priority of a key re-added while it is processed", async () => {
    const queue = new WorkQueue();
    queue.add("a");
    expect(await queue.get()).toBe("a");
    queue.add("a", "low");
    queue.add("a");
    queue.add("b", "low");
    queue.done("a");
    expect(await drainReady(queue)).toEqual(["a", "b"]);
  });

  it("never starves low keys: one in LOW_SHARE keys handed out is low while both wait", async () => {
    const queue = new WorkQueue();
    for (let i = 0; i < 3; i++) queue.add(`low-${i}`, "low");
    for (let i = 0; i < 2 * LOW_SHARE; i++) queue.add(`normal-${i}`);
    const order = await drainReady(queue);
    expect(order.indexOf("low-0")).toBe(LOW_SHARE - 1);
    expect(order.indexOf("low-1")).toBe(2 * LOW_SHARE - 1);
    expect(order.slice(-1)).toEqual(["low-2"]);
    expect(order).toHaveLength(3 + 2 * LOW_SHARE);
  });

  it("wakes a waiting get() on add", async () => {
    const queue = new WorkQueue();
    const next = queue.get();
    queue.add("x");
    expect(await next).toBe("x");
  });

  it("releases addAfter keys in time order and keeps the earlier time of a key parked twice", async () => {
    const queue = new WorkQueue();
    queue.addAfter("late", 300);
    queue.addAfter("early", 100);
    queue.addAfter("late", 200); // earlier than 300: wins
    queue.addAfter("early", 500); // later than 100: ignored
    await vi.advanceTimersByTimeAsync(99);
    expect(queue.len()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(await drainReady(queue)).toEqual(["early"]);
    await vi.advanceTimersByTimeAsync(100);
    expect(await drainReady(queue)).toEqual(["late"]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(queue.len()).toBe(0); // the stale 300 ms and 500 ms entries did not fire again
  });

  it("backs off exponentially per key and forget() resets it", () => {
    const limiter = new RateLimiter({ qps: 1e9, burst: 1e9 });
    const delays = Array.from({ length: 5 }, () => limiter.when("k"));
    expect(delays).toEqual([5, 10, 20, 40, 80]);
    expect(limiter.numRequeues("k")).toBe(5);
    expect(limiter.when("other")).toBe(5); // per key
    limiter.forget("k");
    expect(limiter.numRequeues("k")).toBe(0);
    expect(limiter.when("k")).toBe(5);
  });

  it("caps the per-key backoff at 1000 s", () => {
    const limiter = new RateLimiter({ qps: 1e9, burst: 1e9 });
    let last = 0;
    for (let i = 0; i < 40; i++) last = limiter.when("k");
    expect(last).toBe(1_000_000);
  });

  it("limits the overall retry rate with a token bucket after the burst", () => {
    const limiter = new RateLimiter({ qps: 10, burst: 3 });
    const delays = ["a", "b", "c", "d", "e"].map((key) => limiter.when(key));
    expect(delays.slice(0, 3)).toEqual([5, 5, 5]);
    expect(delays[3]).toBeCloseTo(100); // one token per 100 ms at 10 qps
    expect(delays[4]).toBeCloseTo(200);
    vi.advanceTimersByTime(1000); // refill
    expect(limiter.when("f")).toBe(5);
  });

  it("addRateLimited parks the key for the backoff", async () => {
    const queue = new WorkQueue();
    queue.addRateLimited("k");
    queue.addRateLimited("k"); // second failure: 10 ms, but the 5 ms parking is earlier and kept
    expect(queue.numRequeues("k")).toBe(2);
    await vi.advanceTimersByTimeAsync(4);
    expect(queue.len()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(await drainReady(queue)).toEqual(["k"]);
    queue.forget("k");
    expect(queue.numRequeues("k")).toBe(0);
  });

  it("shutDown resolves waiting get() with undefined and ignores further adds", async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.addAfter("parked", 10);
    queue.shutDown();
    expect(await waiting).toBeUndefined();
    queue.add("x");
    await vi.advanceTimersByTimeAsync(100);
    expect(queue.len()).toBe(0);
    expect(await queue.get()).toBeUndefined();
  });

  it("shutDownWithDrain waits for in-flight keys", async () => {
    const queue = new WorkQueue();
    queue.add("a");
    queue.add("b");
    const a = (await queue.get())!;
    let drained = false;
    const drain = queue.shutDownWithDrain().then(() => (drained = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(drained).toBe(false);
    queue.done(a);
    await drain;
    expect(drained).toBe(true);
    expect(await queue.get()).toBeUndefined(); // "b" was dropped, not processed
  });

  it("reports depth and queue latency through hooks", async () => {
    const depths: number[] = [];
    const latencies: [string, number][] = [];
    const queue = new WorkQueue({
      hooks: { onDepth: (d) => depths.push(d), onQueueLatency: (k, s) => latencies.push([k, s]) },
    });
    queue.add("a");
    queue.add("b");
    vi.advanceTimersByTime(250);
    await queue.get();
    expect(depths).toEqual([1, 2, 1]);
    expect(latencies).toEqual([["a", 0.25]]);
  });
});

describe("runWorkers", () => {
  it("lets the event loop run between reconciles that never wait for I/O (no microtask chain)", async () => {
    const queue = new WorkQueue();
    for (let i = 0; i < 2000; i++) queue.add(`job-${i}`);
    let processed = 0;
    let processedWhenLoopTurned: number | undefined;
    // Queued before the workers' own yields: it runs at the event loop's first turn (a timer's due time would
    // make the count depend on the machine's speed).
    setImmediate(() => (processedWhenLoopTurned = processed));
    const workers = runWorkers(queue, 8, async () => {
      processed++;
      if (processed === 2000) queue.shutDown();
    });
    await workers;
    // Lease renewals and watch events would have waited for all 2000 before the fix; now each worker does one.
    expect(processedWhenLoopTurned).toBeDefined();
    expect(processedWhenLoopTurned!).toBeLessThanOrEqual(8);
  });

  it("never runs one key on two workers at once and bounds concurrency", async () => {
    const queue = new WorkQueue();
    const running = new Set<string>();
    let maxParallel = 0;
    let overlaps = 0;
    const processed: string[] = [];
    const workers = runWorkers(queue, 3, async (key) => {
      if (running.has(key)) overlaps++;
      running.add(key);
      maxParallel = Math.max(maxParallel, running.size);
      await new Promise((r) => setTimeout(r, 5));
      if (processed.filter((k) => k === key).length === 0) queue.add(key); // re-add while in flight
      running.delete(key);
      processed.push(key);
    });
    for (let i = 0; i < 10; i++) queue.add(`k${i % 5}`); // duplicates dedupe
    await vi.waitFor(() => expect(processed.length).toBe(10), { timeout: 2000 });
    queue.shutDown();
    await workers;
    expect(overlaps).toBe(0);
    expect(maxParallel).toBe(3);
    // each of the 5 keys: once for the add, once more for the re-add made while it was in flight
    expect(processed.toSorted()).toEqual(["k0", "k0", "k1", "k1", "k2", "k2", "k3", "k3", "k4", "k4"]);
  });

  it("forgets on success, retries with backoff on throw, and honours requeueAfterMs", async () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const queue = new WorkQueue();
      const calls: [string, number][] = [];
      let failuresLeft = 3;
      const outcomes: string[] = [];
      const workers = runWorkers(
        queue,
        1,
        async (key) => {
          calls.push([key, Date.now()]);
          if (key === "flaky" && failuresLeft-- > 0) throw new Error("boom");
          if (key === "periodic" && calls.filter(([k]) => k === key).length === 1)
            return { requeueAfterMs: 1000 };
        },
        { onWorkDuration: (_k, _s, outcome) => outcomes.push(outcome) },
      );
      queue.add("flaky");
      queue.add("periodic");
      await vi.advanceTimersByTimeAsync(2000);
      expect(calls.filter(([k]) => k === "flaky").map(([, t]) => t)).toEqual([0, 5, 15, 35]); // 5, 10, 20 ms
      expect(queue.numRequeues("flaky")).toBe(0); // forgotten after the success
      expect(calls.filter(([k]) => k === "periodic").map(([, t]) => t)).toEqual([0, 1000]);
      expect(outcomes.filter((o) => o === "error")).toHaveLength(3);
      expect(outcomes.filter((o) => o === "requeue")).toHaveLength(1);
      queue.shutDown();
      await workers;
    } finally {
      vi.useRealTimers();
    }
  });
});
