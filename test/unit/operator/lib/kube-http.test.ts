import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  KubeApiError,
  KubeHttp,
  TokenBucket,
  retryAfterSeconds,
  type KubeConfigLike,
} from "../../../../operator/src/lib/kube-http.ts";

const servers: { close(): void; closeAllConnections(): void }[] = [];
afterEach(() =>
  servers.splice(0).forEach((s) => {
    s.closeAllConnections();
    s.close();
  }),
);

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<KubeConfigLike> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    getCurrentCluster: () => ({ name: "t", server: `http://127.0.0.1:${port}`, skipTLSVerify: false }),
    applyToHTTPSOptions: async () => undefined,
  };
}

const tooMany = (res: ServerResponse, retryAfter?: string) => {
  res.writeHead(429, {
    "Content-Type": "application/json",
    ...(retryAfter ? { "Retry-After": retryAfter } : {}),
  });
  res.end(JSON.stringify({ kind: "Status", reason: "TooManyRequests", message: "slow down", code: 429 }));
};

describe("KubeHttp and the apiserver's 429", () => {
  it("waits Retry-After seconds and retries (APF throttling, a reinitialising watch cache)", async () => {
    const at: number[] = [];
    const kc = await serve((_req, res) => {
      at.push(performance.now());
      if (at.length === 1) return tooMany(res, "1");
      res.writeHead(200, { "Content-Type": "application/json" }).end('{"ok":true}');
    });
    await expect(new KubeHttp(kc).request("/api/v1/pods")).resolves.toEqual({ ok: true });
    expect(at).toHaveLength(2);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(990);
  });

  it("gives up at once on a 429 without Retry-After, and hands a stream's Retry-After to the caller", async () => {
    let calls = 0;
    const kc = await serve((req, res) => {
      calls++;
      return tooMany(res, req.url!.includes("watch=1") ? "7" : undefined);
    });
    const http = new KubeHttp(kc);
    await expect(http.request("/api/v1/pods")).rejects.toMatchObject({
      status: 429,
      retryAfterSeconds: undefined,
    });
    expect(calls).toBe(1);
    const error = await http.stream("/api/v1/pods", { query: { watch: 1 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KubeApiError);
    expect((error as KubeApiError).retryAfterSeconds).toBe(7);
  });

  it("reads Retry-After as seconds or as an HTTP date", () => {
    expect(retryAfterSeconds("3")).toBe(3);
    expect(retryAfterSeconds(undefined)).toBeUndefined();
    expect(retryAfterSeconds("soon")).toBeUndefined();
    const inTenSeconds = new Date(Date.now() + 10_000).toUTCString();
    expect(retryAfterSeconds(inTenSeconds)).toBeGreaterThanOrEqual(9);
  });
});

describe("client-side rate limit (QPS and burst)", () => {
  it("lets a burst through, then spaces requests at 1/qps on the monotonic clock", () => {
    let now = 0;
    const bucket = new TokenBucket({ qps: 10, burst: 2 }, () => now);
    expect([bucket.reserve(), bucket.reserve()]).toEqual([0, 0]);
    expect(bucket.reserve()).toBeCloseTo(100);
    expect(bucket.reserve()).toBeCloseTo(200);
    now += 1000; // refills 10 tokens, capped at the burst, minus the debt of 2
    expect(bucket.reserve()).toBe(0);
    bucket.set({ qps: 0, burst: 1 });
    expect(bucket.reserve()).toBe(0); // 0: unlimited
  });

  it("delays the requests of a client over its limit", async () => {
    let count = 0;
    const kc = await serve((_req, res) => {
      count++;
      res.writeHead(200, { "Content-Type": "application/json" }).end("{}");
    });
    const http = new KubeHttp(kc, "test", { qps: 20, burst: 1 });
    const started = performance.now();
    await Promise.all(Array.from({ length: 5 }, () => http.request("/api/v1/pods")));
    // One at once, then four 50 ms apart: it cannot be faster than 200 ms.
    expect(performance.now() - started).toBeGreaterThanOrEqual(195);
    expect(count).toBe(5);
    http.close();
  });
});
