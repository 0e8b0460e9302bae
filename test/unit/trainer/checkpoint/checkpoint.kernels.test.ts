import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import {
  disposeGroups,
  latestValidCheckpoint,
  listCheckpoints,
  readCheckpoint,
  saveCheckpoint,
} from "../../../../trainer/src/checkpoint/index.ts";

const fresh = () => mkdtempSync(join(tmpdir(), "mokd-ckpt-"));
const groups = (v: number) => ({
  student: [
    {
      name: "w",
      tensor: tf.tensor2d([
        [v, 2],
        [3, 4],
      ]),
    },
    { name: "b", tensor: tf.tensor1d([v], "int32") },
  ],
  optimizer: [],
});

describe("checkpoints", () => {
  it("round-trips tensors and state", () => {
    const dir = fresh();
    const path = saveCheckpoint(dir, 5, { epoch: 1, rng: 123 }, groups(1), 2);
    const c = readCheckpoint<{ epoch: number; rng: number }>(path);
    expect(c.state).toEqual({ epoch: 1, rng: 123 });
    expect(c.groups.student!.map((t) => t.name)).toEqual(["w", "b"]);
    expect(c.groups.student![0]!.tensor.arraySync()).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(c.groups.student![1]!.tensor.dtype).toBe("int32");
    expect(c.groups.optimizer).toEqual([]);
    disposeGroups(c.groups);
  });

  it("keeps only the newest keepCheckpoints and leaves no temp dirs", () => {
    const dir = fresh();
    for (const step of [1, 2, 3, 4]) saveCheckpoint(dir, step, { step }, groups(step), 2);
    expect(listCheckpoints(dir).map((p) => p.slice(-2))).toEqual(["04", "03"]);
    expect(readdirSync(dir).filter((n) => n.startsWith("."))).toEqual([]);
  });

  it("skips a corrupt or incomplete latest checkpoint with a log line", () => {
    const dir = fresh();
    saveCheckpoint(dir, 1, { step: 1 }, groups(1), 3);
    const corrupt = saveCheckpoint(dir, 2, { step: 2 }, groups(2), 3);
    writeFileSync(join(corrupt, "student.bin"), "garbage");
    const logs: string[] = [];
    const c = latestValidCheckpoint<{ step: number }>(dir, (m) => logs.push(m));
    expect(c?.state.step).toBe(1);
    expect(logs.join()).toMatch(
      /skipping corrupt checkpoint .*ckpt-0000000002: sha256 mismatch in student.bin/,
    );
    disposeGroups(c!.groups);

    const incomplete = saveCheckpoint(dir, 3, { step: 3 }, groups(3), 3);
    writeFileSync(join(incomplete, "manifest.json"), "{");
    expect(latestValidCheckpoint(dir, () => {})?.state).toEqual({ step: 1 });
  });

  it("returns nothing for a missing directory", () => {
    expect(latestValidCheckpoint(join(fresh(), "none"), () => {})).toBeUndefined();
    expect(existsSync(join(fresh(), "none"))).toBe(false);
  });
});
