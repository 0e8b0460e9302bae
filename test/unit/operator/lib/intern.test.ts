import { describe, expect, it } from "vitest";
import { StringPool } from "../../../../operator/src/lib/intern.ts";

const pod = (i: number) => ({
  metadata: {
    name: `job-${i}-abcde`,
    uid: `uid-${i}`,
    resourceVersion: String(1000 + i),
    creationTimestamp: `2026-12-06T21:52:${String(i % 60).padStart(2, "0")}Z`,
    namespace: "team-a",
    labels: { "app.kubernetes.io/name": "mokd-trainer", "mokd.io/job-name": "shared" },
    finalizers: ["batch.kubernetes.io/job-tracking"],
  },
  status: {
    phase: "Pending",
    conditions: [
      { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/4 nodes are available" },
    ],
  },
});

describe("StringPool", () => {
  it("leaves every value as it was", () => {
    const pool = new StringPool();
    const objects = [pod(1), pod(2)];
    const copies = structuredClone(objects);
    for (const o of objects) pool.internDeep(o);
    expect(objects).toEqual(copies);
  });

  it("pools the repeated values, not names, UIDs, resource versions or timestamps", () => {
    const pool = new StringPool();
    for (let i = 0; i < 100; i++) pool.internDeep(pod(i));
    // team-a, mokd-trainer, shared, the finalizer, Pending, PodScheduled, False, Unschedulable, the message.
    expect(pool.size).toBe(9);
  });

  it("starts over when full, and leaves long strings alone", () => {
    const pool = new StringPool(3, 10);
    for (const s of ["a", "b", "c"]) pool.intern(s);
    expect(pool.size).toBe(3);
    pool.intern("d");
    expect(pool.size).toBe(1);
    expect(pool.intern("x".repeat(11))).toBe("x".repeat(11));
    expect(pool.size).toBe(1);
  });

  it("walks arrays of strings and nested arrays", () => {
    const pool = new StringPool();
    const value = { a: ["x", ["y", { b: "z" }]], n: 1, t: true, nothing: null };
    expect(pool.internDeep(value)).toEqual({ a: ["x", ["y", { b: "z" }]], n: 1, t: true, nothing: null });
    expect(pool.size).toBe(3);
  });
});
