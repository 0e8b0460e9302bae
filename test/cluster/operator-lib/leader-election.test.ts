import { CoordinationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaderElector } from "../../../operator/src/lib/leader-election.ts";
import { adminKubeConfig, createTestNamespace, deleteNamespace, waitFor } from "../../bed/env.ts";
import { startApiProxy, type ApiProxy } from "../../../operator/bench/api-proxy.ts";

// Short timings keep the test fast; the algorithm is the same at 15/10/2 s.
const LEASE_S = 4;
const RENEW_S = 3;
const RETRY_S = 0.5;

interface Candidate {
  identity: string;
  elector: LeaderElector;
  proxy: ApiProxy;
  running: Promise<void>;
}

describe("LeaderElector on a real Lease", () => {
  let namespace: string;
  const proxies: ApiProxy[] = [];
  /** Who believes it leads right now (between onStartedLeading and the abort of its signal). */
  const leading = new Set<string>();
  let maxConcurrentLeaders = 0;
  let sampler: NodeJS.Timeout;

  beforeAll(async () => {
    namespace = await createTestNamespace("lib-leader");
    // Sample often: two leaders at once, even for a moment, fails the suite.
    sampler = setInterval(() => (maxConcurrentLeaders = Math.max(maxConcurrentLeaders, leading.size)), 5);
  });
  afterAll(async () => {
    clearInterval(sampler);
    await Promise.all(proxies.map((p) => p.close()));
    if (namespace) await deleteNamespace(namespace);
  });

  async function candidates(lease: string, count: number, leaseSeconds = LEASE_S): Promise<Candidate[]> {
    return Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const identity = `${lease}-candidate-${i}`;
        const proxy = await startApiProxy(adminKubeConfig());
        proxies.push(proxy);
        const elector = new LeaderElector({
          kubeConfig: proxy.kubeConfig(),
          namespace,
          name: lease,
          identity,
          leaseDurationSeconds: leaseSeconds,
          renewDeadlineSeconds: RENEW_S,
          retryPeriodSeconds: RETRY_S,
          onStartedLeading: (signal) => {
            if (leading.size > 0) maxConcurrentLeaders = leading.size + 1;
            leading.add(identity);
            signal.addEventListener("abort", () => leading.delete(identity));
          },
          onStoppedLeading: () => leading.delete(identity),
        });
        return { identity, elector, proxy, running: elector.run() };
      }),
    );
  }

  const leaseSpec = async (lease: string) =>
    (await adminKubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease({ name: lease, namespace }))
      .spec;
  const holderOf = async (lease: string) => (await leaseSpec(lease))?.holderIdentity;

  /** Waits until the lease's holder has renewed it `count` more times: the others had that long to get in. */
  async function renewals(lease: string, count: number): Promise<void> {
    // A MicroTime: to the millisecond at least (String(Date) would keep only seconds).
    const renewTime = async () => {
      const t: unknown = (await leaseSpec(lease))?.renewTime;
      return t instanceof Date ? t.toISOString() : String(t);
    };
    const seen = new Set([await renewTime()]);
    await waitFor(`${count} renewals of ${lease}`, async () => {
      seen.add(await renewTime());
      return seen.size > count;
    });
  }

  /** Fails instead of hanging when the promise does not settle in time. */
  function within<T>(promise: Promise<T>, ms: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  const currentLeader = (all: Candidate[]) =>
    waitFor("a leader", async () => all.find((c) => leading.has(c.identity)));

  it("elects exactly one of three racing candidates, and another takes over when the leader is cut off", async () => {
    const all = await candidates("cut-off", 3);
    const first = await currentLeader(all);
    await renewals("cut-off", 2); // renewals go on (the system's own evidence); nobody else gets in
    expect([...leading]).toEqual([first.identity]);
    expect(await holderOf("cut-off")).toBe(first.identity);

    const cutAt = Date.now();
    first.proxy.setMode("down"); // the leader can no longer renew (as if partitioned or hung)
    await within(first.running, (RENEW_S + 2) * 1000); // it gives up by itself once the renew deadline passes
    const stoppedAfter = Date.now() - cutAt;
    // Slack for a loaded 2-core CI machine: timers and requests run late there, the algorithm does not change.
    expect(stoppedAfter).toBeLessThanOrEqual((RENEW_S + 2) * 1000);
    const second = await waitFor(
      "a new leader",
      async () => all.find((c) => leading.has(c.identity)),
      15_000,
    );
    const takeoverAfter = Date.now() - cutAt;
    expect(second.identity).not.toBe(first.identity);
    // Within the lease duration of the last renewal (plus one jittered retry period and request time).
    expect(takeoverAfter).toBeLessThanOrEqual((LEASE_S + 2.2 * RETRY_S + 2.5) * 1000);
    expect(await holderOf("cut-off")).toBe(second.identity);
    expect(maxConcurrentLeaders).toBe(1);

    await Promise.all(all.map((c) => c.elector.release()));
    await Promise.all(all.map((c) => c.running));
  });

  it("hands over at once on release(), long before the lease would expire", async () => {
    // A long lease, so a hand-over that waited for expiry could not pass for a prompt one.
    const all = await candidates("release", 2, 12);
    const first = await currentLeader(all);
    const other = all.find((c) => c !== first)!;
    const releasedAt = Date.now();
    await first.elector.release();
    await first.running;
    expect(leading.has(first.identity)).toBe(false);
    await waitFor("the other candidate to lead", async () => leading.has(other.identity), 10_000);
    // Not 12 s: the released Lease is free at the other's next retry (slack for a loaded machine).
    expect(Date.now() - releasedAt).toBeLessThan((2.2 * RETRY_S + 3) * 1000);
    expect(await holderOf("release")).toBe(other.identity);
    expect(maxConcurrentLeaders).toBe(1);
    await other.elector.release();
    await other.running;
    expect(await holderOf("release")).toBe("");
  });
});
