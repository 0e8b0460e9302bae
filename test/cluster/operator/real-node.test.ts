// The operator's stuck and lost states with a real kubelet (the bed's kwok-local-0, test/bed/node.ts), not kwok:
// an image the node does not have under imagePullPolicy Never, and the node's kubelet going silent under a
// running trainer. The "trainer" is the bed's pause image (on the node from its start, runs until stopped), so no
// project image needs building.
import { readdirSync, readFileSync } from "node:fs";
import type { CoreV1Api } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { LOCAL_NODE } from "../../bed/config.ts";
import { waitFor } from "../../bed/env.ts";
import { PAUSE_IMAGE } from "../../bed/node.ts";
import { holdRealNode, realNode, realNodeNamespace } from "../e2e/real-node.ts";
import { condition, Jobs, operatorForFile } from "./harness.ts";

const node = realNode();
const SMALL = { requests: { cpu: "10m", memory: "16Mi" }, limits: { cpu: "100m", memory: "64Mi" } };

let jobs: Jobs;
let core: CoreV1Api;
if (node) operatorForFile("op-real-node", (file) => ({ jobs, core } = file), realNodeNamespace);

/** The bed's kubelet: the process whose --root-dir is the real node's (found by its own pid, nothing broader). */
function kubeletPid(): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (args[0]?.endsWith("/kubelet") && args.includes(`--root-dir=${node!.kubeletRoot}`))
        return Number(entry);
    } catch {
      // Exited while listing.
    }
  }
  throw new Error(`no kubelet with --root-dir=${node!.kubeletRoot}`);
}

async function nodeReady(): Promise<string | undefined> {
  const n = await core.readNode({ name: LOCAL_NODE });
  return n.status?.conditions?.find((c) => c.type === "Ready")?.status;
}

describe.skipIf(!node)("the operator on the real node", () => {
  it("shows ErrImageNeverPull within seconds, and the pending deadline's final message carries it", async () => {
    await jobs.create("never-pull", {
      runtime: {
        gpus: 0,
        image: "localhost/mokd/not-in-the-node-store:0",
        imagePullPolicy: "Never",
        resources: SMALL,
      },
      runPolicy: { pendingDeadlineSeconds: 25 },
    });
    // The kubelet reports the waiting reason as soon as it syncs the pod; the job shows it within seconds.
    const stuck = await jobs.waitStatus(
      "never-pull",
      "ErrImageNeverPull",
      (s) => condition(s, "Running")?.reason === "ErrImageNeverPull",
      20_000,
    );
    expect(stuck.status!.phase).toBe("Pending");
    expect(condition(stuck.status, "Running")!.message).toContain("not-in-the-node-store");
    const done = await jobs.waitPhase("never-pull", "Failed", 40_000);
    expect(condition(done.status, "Failed")).toMatchObject({ reason: "ErrImageNeverPull" });
    expect(condition(done.status, "Failed")!.message).toMatch(
      /pendingDeadlineSeconds \(25 s\): .*not-in-the-node-store/,
    );
  });

  it("shows Running=Unknown/NodeUnreachable once the kubelet goes silent, and Running again when it is back", async () => {
    // No other file's pod may be on the node while its kubelet is silent.
    const release = await holdRealNode("exclusive");
    try {
      await jobs.create("lost", {
        runtime: { gpus: 0, image: PAUSE_IMAGE, imagePullPolicy: "Never", resources: SMALL },
      });
      await jobs.waitPhase("lost", "Running", 60_000);
      const pid = kubeletPid();
      // SIGSTOP: to the control plane a frozen kubelet is a dead one (no status, no Lease renewals) while the
      // containers run on, as when a kubelet dies; unlike a kill it leaves the process the bed started (and
      // tears down) in place, and SIGCONT brings it back.
      process.kill(pid, "SIGSTOP");
      try {
        // The node lifecycle controller's grace period (the bed's default, 50 s) decides when.
        await waitFor(
          "the real node's Ready to leave True",
          async () => (await nodeReady()) !== "True",
          90_000,
          500,
        );
        const unknownAt = Date.now();
        const lost = await jobs.waitStatus(
          "lost",
          "Running=Unknown/NodeUnreachable",
          (s) => condition(s, "Running")?.reason === "NodeUnreachable",
          60_000,
        );
        const seconds = (Date.now() - unknownAt) / 1000;
        console.log(`NodeUnreachable shown ${seconds.toFixed(1)} s after the node went Unknown`);
        expect(lost.status!.phase).toBe("Running");
        expect(condition(lost.status, "Running")!.status).toBe("Unknown");
        expect(condition(lost.status, "Running")!.message).toContain(`node ${LOCAL_NODE}`);
        expect(condition(lost.status, "Running")!.message).toContain("unreachable for 60 s");
      } finally {
        process.kill(pid, "SIGCONT");
        await waitFor("the real node Ready again", async () => (await nodeReady()) === "True", 60_000, 500);
      }
      // Back before the 60 s toleration ran out: the same pod reports Ready again and the run goes on.
      const back = await jobs.waitStatus(
        "lost",
        "Running/TrainerRunning",
        (s) => condition(s, "Running")?.reason === "TrainerRunning",
        60_000,
      );
      expect(back.status!.phase).toBe("Running");
      expect(back.status!.attempts ?? 1).toBe(1);
    } finally {
      release();
    }
  }, 1_800_000);
});
