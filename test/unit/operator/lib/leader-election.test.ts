// Leader election against a fake Lease endpoint (plain HTTP, real timers with short lease timings): a renewal
// the apiserver is slow to answer must not cost the Lease while the renew deadline still leaves time to retry.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { LeaderElector } from "../../../../operator/src/lib/leader-election.ts";
import type { KubeConfigLike } from "../../../../operator/src/lib/kube-http.ts";

const closers: (() => void)[] = [];
afterEach(() => closers.splice(0).forEach((close) => close()));

/** A Lease endpoint that stores the Lease, and answers no request for which `stall` says so. */
async function leaseServer(stall: (req: IncomingMessage, count: Record<string, number>) => boolean) {
  let lease: Record<string, unknown> | undefined;
  let version = 0;
  const count: Record<string, number> = { GET: 0, PUT: 0, POST: 0 };
  const server = createServer((req, res: ServerResponse) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      count[req.method!] = (count[req.method!] ?? 0) + 1;
      if (stall(req, count)) return; // never answered: the client's timeout decides
      if (req.method === "GET" && !lease) return res.writeHead(404).end('{"kind":"Status","code":404}');
      if (req.method !== "GET") {
        const sent = JSON.parse(body) as { metadata: Record<string, unknown> };
        lease = { ...sent, metadata: { ...sent.metadata, resourceVersion: String(++version) } };
      }
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(lease));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  const kubeConfig: KubeConfigLike = {
    getCurrentCluster: () => ({ name: "t", server: `http://127.0.0.1:${port}`, skipTLSVerify: false }),
    applyToHTTPSOptions: async () => undefined,
  };
  return { kubeConfig, puts: () => count.PUT! };
}

const until = async (what: string, check: () => boolean, timeoutMs = 10_000) => {
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe("LeaderElector renewals", () => {
  it("gives up on a renewal the apiserver does not answer and retries within the renew deadline", async () => {
    // Acquired by GET (404) and POST; then the second renewal PUT and the GET that follows it are never
    // answered: one attempt must not use up the whole renew deadline.
    const api = await leaseServer(
      (req, count) => (req.method === "PUT" && count.PUT === 2) || (req.method === "GET" && count.GET === 2),
    );
    let lost = false;
    let leading = false;
    const elector = new LeaderElector({
      kubeConfig: api.kubeConfig,
      namespace: "ns",
      name: "lease",
      identity: "a",
      leaseDurationSeconds: 3,
      renewDeadlineSeconds: 2,
      retryPeriodSeconds: 0.25,
      onStartedLeading: () => (leading = true),
      onStoppedLeading: () => (lost = true),
    });
    closers.push(() => void elector.release());
    void elector.run();
    await until("leading", () => leading);
    // Renewals after the unanswered one keep the Lease: well past the 2 s deadline counted from the last
    // renewal before it.
    await until("renewals after the stalled one", () => api.puts() >= 6);
    expect(lost).toBe(false);
    expect(elector.isLeader()).toBe(true);
  });

  it("still gives the Lease up when no renewal is answered within the deadline", async () => {
    const api = await leaseServer((req, count) => req.method !== "POST" && (count.PUT ?? 0) >= 2);
    let lost = false;
    const elector = new LeaderElector({
      kubeConfig: api.kubeConfig,
      namespace: "ns",
      name: "lease",
      identity: "a",
      leaseDurationSeconds: 3,
      renewDeadlineSeconds: 1,
      retryPeriodSeconds: 0.25,
      onStartedLeading: () => undefined,
      onStoppedLeading: () => (lost = true),
    });
    closers.push(() => void elector.release());
    const started = performance.now();
    await elector.run();
    expect(lost).toBe(true);
    expect(performance.now() - started).toBeLessThan(3000);
  });
});
