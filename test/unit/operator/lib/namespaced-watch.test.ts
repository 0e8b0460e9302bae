// Several watched namespaces behind one cache: one watch per namespace, reads routed to the namespace's own.
import type { KubernetesObject } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { ResourceWatch } from "../../../../operator/src/lib/informer.ts";
import { watchNamespaces } from "../../../../operator/src/lib/namespaced-watch.ts";

/** A watch of one namespace (or all) holding `names`, with its own sync and failure state. */
function fakeWatch(namespace: string | undefined, names: string[]) {
  const objects = names.map((name) => ({ metadata: { namespace: namespace ?? "any", name, uid: name } }));
  const state = { synced: false, failingMs: 0, error: undefined as unknown, started: 0, stopped: 0 };
  const watch: ResourceWatch<KubernetesObject> = {
    start: async () => void (state.started++, (state.synced = true)),
    stop: () => void state.stopped++,
    list: () => objects,
    get: (ns, name) => objects.find((o) => o.metadata.namespace === ns && o.metadata.name === name),
    byIndex: (uid) => objects.filter((o) => o.metadata.uid === uid),
    hasSynced: () => state.synced,
    failingForMs: () => state.failingMs,
    lastError: () => state.error,
  };
  return { watch, state };
}

describe("watchNamespaces", () => {
  it("watches the whole cluster with one watch when the list is empty, one namespace with one", () => {
    const asked: (string | undefined)[] = [];
    watchNamespaces([], (ns) => (asked.push(ns), fakeWatch(ns, []).watch));
    watchNamespaces(["team-a"], (ns) => (asked.push(ns), fakeWatch(ns, []).watch));
    expect(asked).toEqual([undefined, "team-a"]);
  });

  it("opens one watch per namespace and reads each object from its namespace's cache", async () => {
    const fakes = new Map([
      ["team-a", fakeWatch("team-a", ["a1", "shared"])],
      ["team-b", fakeWatch("team-b", ["b1", "shared"])],
    ]);
    const w = watchNamespaces(["team-a", "team-b"], (ns) => fakes.get(ns!)!.watch);
    expect(w.hasSynced()).toBe(false);
    await w.start();
    expect([...fakes.values()].map((f) => f.state.started)).toEqual([1, 1]);
    expect(w.hasSynced()).toBe(true);
    expect(w.list().map((o) => `${o.metadata!.namespace}/${o.metadata!.name}`)).toEqual([
      "team-a/a1",
      "team-a/shared",
      "team-b/b1",
      "team-b/shared",
    ]);
    expect(w.get("team-b", "shared")?.metadata?.namespace).toBe("team-b");
    expect(w.get("team-c", "a1")).toBeUndefined();
    expect(w.get(undefined, "a1")).toBeUndefined();
    expect(w.byIndex("b1").map((o) => o.metadata!.namespace)).toEqual(["team-b"]);
    w.stop();
    expect([...fakes.values()].map((f) => f.state.stopped)).toEqual([1, 1]);
  });

  it("is not synced until every namespace is, and fails as long as its longest-failing namespace", () => {
    const a = fakeWatch("team-a", []);
    const b = fakeWatch("team-b", []);
    const w = watchNamespaces(["team-a", "team-b"], (ns) => (ns === "team-a" ? a : b).watch);
    a.state.synced = true;
    expect(w.hasSynced()).toBe(false);
    expect(w.failingForMs()).toBe(0);
    expect(w.lastError()).toBeUndefined();
    a.state.failingMs = 5_000;
    a.state.error = new Error("forbidden in team-a");
    b.state.failingMs = 60_000;
    b.state.error = new Error("forbidden in team-b");
    expect(w.failingForMs()).toBe(60_000);
    expect(String(w.lastError())).toContain("team-b");
  });
});
