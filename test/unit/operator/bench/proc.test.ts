import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { cpuSecondsOf, findProcesses } from "../../../../operator/bench/proc.ts";

describe("findProcesses", () => {
  const comm = readFileSync(`/proc/${process.pid}/comm`, "utf8").trim();

  it("finds a process by its comm, only when its command line holds the marker (this bed's directory)", () => {
    const found = findProcesses([comm], "");
    expect(found.get(comm)).toBeGreaterThan(0);
    expect(findProcesses([comm], "/dev/shm/no-such-bed-dir-").size).toBe(0);
  });

  it("reads CPU seconds of the processes found, NaN for one that is gone", () => {
    const seconds = cpuSecondsOf(
      new Map([
        ["self", process.pid],
        ["gone", 2 ** 22 + 1],
      ]),
    );
    expect(seconds.get("self")).toBeGreaterThanOrEqual(0);
    expect(seconds.get("gone")).toBeNaN();
  });
});
