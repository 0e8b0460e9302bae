import { describe, expect, it } from "vitest";
import { EventCorrelator } from "../../../../operator/src/lib/events.ts";

describe("EventCorrelator", () => {
  const minute = 60_000;
  let names = 0;
  const newName = () => `ev-${++names}`;

  it("creates the first event and counts identical repeats into its series", () => {
    const correlator = new EventCorrelator();
    const first = correlator.observe("obj", "same", 0, newName);
    expect(first.action).toBe("create");
    const second = correlator.observe("obj", "same", 1000, newName);
    expect(second).toMatchObject({ action: "repeat", series: { count: 2 } });
    const third = correlator.observe("obj", "same", 2000, newName);
    expect(third).toMatchObject({ action: "repeat", series: { count: 3, lastObserved: 2000 } });
    if (first.action !== "create" || third.action !== "repeat") throw new Error("unreachable");
    expect(third.series.name).toBe(first.series.name);
  });

  it("starts a new event once the series window has passed without repeats", () => {
    const correlator = new EventCorrelator({ seriesWindowMs: 6 * minute });
    correlator.observe("obj", "k", 0, newName);
    expect(correlator.observe("obj", "k", 5 * minute, newName).action).toBe("repeat");
    expect(correlator.observe("obj", "k", 10 * minute, newName).action).toBe("repeat"); // window slides
    expect(correlator.observe("obj", "k", 17 * minute, newName).action).toBe("create");
  });

  it("keeps different events apart", () => {
    const correlator = new EventCorrelator();
    expect(correlator.observe("obj", "a", 0, newName).action).toBe("create");
    expect(correlator.observe("obj", "b", 0, newName).action).toBe("create");
    expect(correlator.observe("other", "c", 0, newName).action).toBe("create");
  });

  it("rate-limits distinct events per object with a token bucket, but not repeats", () => {
    const correlator = new EventCorrelator({ burst: 3, refillIntervalMs: minute });
    const actions = [0, 1, 2, 3].map((i) => correlator.observe("obj", `e${i}`, 0, newName).action);
    expect(actions).toEqual(["create", "create", "create", "drop"]);
    expect(correlator.observe("other", "x", 0, newName).action).toBe("create"); // per object
    expect(correlator.observe("obj", "e0", 10, newName).action).toBe("repeat"); // costs no token
    expect(correlator.observe("obj", "e4", minute, newName).action).toBe("create"); // one token refilled
    expect(correlator.observe("obj", "e5", minute, newName).action).toBe("drop");
  });

  it("forgets the least recently used series beyond maxSeries", () => {
    const correlator = new EventCorrelator({ maxSeries: 2 });
    correlator.observe("o1", "a", 0, newName);
    correlator.observe("o2", "b", 0, newName);
    correlator.observe("o1", "a", 1, newName); // a is now most recent
    correlator.observe("o3", "c", 2, newName); // evicts b
    expect(correlator.observe("o1", "a", 3, newName).action).toBe("repeat");
    expect(correlator.observe("o2", "b", 4, newName).action).toBe("create");
  });
});

describe("eventNote", () => {
  it("cuts a note to 1024 bytes of UTF-8 on a code point boundary", async () => {
    const { eventNote } = await import("../../../../operator/src/lib/events.ts");
    const note = eventNote("\u{1F525}".repeat(600) + "\ud800");
    expect(Buffer.byteLength(note)).toBeLessThanOrEqual(1024);
    expect(note.isWellFormed()).toBe(true);
    expect(note.endsWith("...")).toBe(true);
    expect(eventNote("short")).toBe("short");
  });
});
