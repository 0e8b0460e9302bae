import type { KubernetesObject } from "@kubernetes/client-node";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { diffEvents, watchResource } from "../../../../operator/src/lib/informer.ts";

const obj = (name: string, resourceVersion: string): KubernetesObject => ({
  metadata: { namespace: "ns", name, resourceVersion },
});

describe("diffEvents (replayed after a relist)", () => {
  it("turns the old cache into the new list with ADDED, MODIFIED and DELETED events", () => {
    const kept = obj("kept", "1");
    const gone = obj("gone", "2");
    const before = new Map([
      ["ns/kept", kept],
      ["ns/changed", obj("changed", "3")],
      ["ns/gone", gone],
    ]);
    const changed = obj("changed", "7");
    const added = obj("added", "8");
    const after = new Map([
      ["ns/kept", obj("kept", "1")],
      ["ns/changed", changed],
      ["ns/added", added],
    ]);
    expect(diffEvents(before, after)).toEqual([
      ["MODIFIED", changed],
      ["ADDED", added],
      ["DELETED", gone],
    ]);
  });

  it("reports every object as ADDED on the first list", () => {
    const a = obj("a", "1");
    expect(diffEvents(new Map(), new Map([["ns/a", a]]))).toEqual([["ADDED", a]]);
  });
});

type Labelled = KubernetesObject & { spec?: unknown };

describe("informer transform and index", () => {
  it("caches transformed objects and finds them by index through list and watch events", async () => {
    const pod = (name: string, rv: string, job: string): Labelled => ({
      metadata: { namespace: "ns", name, resourceVersion: rv, labels: { job }, managedFields: [{}] },
      spec: { big: "x".repeat(1000) },
    });
    let watch: ServerResponse | undefined;
    const server = createServer((req, res) => {
      res.setHeader("Content-Type", "application/json");
      if (!req.url!.includes("watch=1")) {
        return res.end(JSON.stringify({ metadata: { resourceVersion: "2" }, items: [pod("a", "1", "j1")] }));
      }
      watch = res;
      res.write(JSON.stringify({ type: "ADDED", object: pod("b", "3", "j1") }) + "\n");
      res.write(JSON.stringify({ type: "MODIFIED", object: pod("a", "4", "j2") }) + "\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const seen: string[] = [];
    const informer = watchResource<Labelled>({
      kubeConfig: {
        getCurrentCluster: () => ({ name: "t", server: `http://127.0.0.1:${port}`, skipTLSVerify: false }),
        applyToHTTPSOptions: async () => undefined,
      },
      path: "/api/v1/pods",
      onEvent: (type, o) => seen.push(`${type} ${o.metadata!.name}`),
      transform: ({ spec: _dropped, ...rest }) => rest,
      indexBy: (o) => o.metadata?.labels?.job,
    });
    try {
      await informer.start();
      await expect.poll(() => seen.length).toBe(3);
      expect(seen).toEqual(["ADDED a", "ADDED b", "MODIFIED a"]);
      expect(informer.get("ns", "a")).toEqual({
        metadata: { namespace: "ns", name: "a", resourceVersion: "4", labels: { job: "j2" } },
      });
      expect(informer.byIndex("j1").map((o) => o.metadata!.name)).toEqual(["b"]);
      expect(informer.byIndex("j2").map((o) => o.metadata!.name)).toEqual(["a"]);
      watch!.write(JSON.stringify({ type: "DELETED", object: pod("b", "5", "j1") }) + "\n");
      await expect.poll(() => informer.byIndex("j1").length).toBe(0);
      expect(informer.byIndex("nothing")).toEqual([]);
    } finally {
      informer.stop();
      watch?.end();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("informer after an apiserver restart", () => {
  it("relists at once when the watch answers 200 with an ERROR 410 event (a fresh watch cache)", async () => {
    // What a restarted kube-apiserver answers to a watch from a resourceVersion older than its new cache:
    // HTTP 200, one ERROR event {code: 410, reason: Expired}, end of stream (seen on the test bed, k8s 1.36).
    let lists = 0;
    let watches = 0;
    const server = createServer((req, res) => {
      res.setHeader("Content-Type", "application/json");
      if (!req.url!.includes("watch=1")) {
        lists++;
        const items = lists === 1 ? [obj("a", "5")] : [obj("a", "5"), obj("b", "9")];
        return res.end(JSON.stringify({ metadata: { resourceVersion: lists === 1 ? "5" : "9" }, items }));
      }
      watches++;
      if (req.url!.includes("resourceVersion=5")) {
        const status = {
          kind: "Status",
          status: "Failure",
          message: "too old resource version: 5 (8)",
          reason: "Expired",
          code: 410,
        };
        return res.end(JSON.stringify({ type: "ERROR", object: status }) + "\n");
      }
      res.write(""); // a healthy watch from the new list: stays open
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const errors: string[] = [];
    const informer = watchResource<KubernetesObject>({
      kubeConfig: {
        getCurrentCluster: () => ({ name: "t", server: `http://127.0.0.1:${port}`, skipTLSVerify: false }),
        applyToHTTPSOptions: async () => undefined,
      },
      path: "/api/v1/configmaps",
      onEvent: () => undefined,
      onError: (e) => errors.push(String(e)),
      minBackoffMs: 5000, // a relist that waited for a backoff would miss the poll below
    });
    try {
      await informer.start();
      await expect.poll(() => informer.get("ns", "b"), { timeout: 2000 }).toBeDefined();
      expect(lists).toBe(2);
      expect(errors).toEqual([]); // a 410 is not an error: no backoff
      expect(watches).toBeGreaterThanOrEqual(2);
    } finally {
      informer.stop();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("informer health (for /readyz and /healthz)", () => {
  it("reports how long it has been failing, and 0 again once a list succeeds", async () => {
    let broken = true;
    const server = createServer((req, res) => {
      res.setHeader("Content-Type", "application/json");
      if (broken) {
        res.statusCode = 503;
        return res.end(JSON.stringify({ kind: "Status", message: "apiserver is shutting down", code: 503 }));
      }
      if (req.url!.includes("watch=1")) return void res.write("");
      res.end(JSON.stringify({ metadata: { resourceVersion: "1" }, items: [] }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const informer = watchResource<KubernetesObject>({
      kubeConfig: {
        getCurrentCluster: () => ({ name: "t", server: `http://127.0.0.1:${port}`, skipTLSVerify: false }),
        applyToHTTPSOptions: async () => undefined,
      },
      path: "/api/v1/configmaps",
      onEvent: () => undefined,
      minBackoffMs: 20,
      maxBackoffMs: 50,
    });
    try {
      expect(informer.failingForMs()).toBe(0);
      const started = informer.start();
      await expect.poll(() => informer.failingForMs()).toBeGreaterThan(100);
      expect(String(informer.lastError())).toContain("shutting down");
      broken = false;
      await started;
      expect(informer.failingForMs()).toBe(0);
      expect(informer.lastError()).toBeUndefined();
    } finally {
      informer.stop();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
