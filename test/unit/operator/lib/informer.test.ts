import type { KubernetesObject } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { diffEvents } from "../../../../operator/src/lib/informer.ts";

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
