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
