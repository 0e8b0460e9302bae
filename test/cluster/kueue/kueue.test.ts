// Real Kueue with real trainer pods on the bed's real node: a ClusterQueue with a GPU quota of 1 and a LocalQueue.
// DistillationJobs with spec.queueName wait as Suspended/WaitingForAdmission beyond the quota and start in order
// when it frees; a higher-priority job preempts a running one, whose trainer checkpoints on SIGTERM to object
// storage (a real S3-compatible server; no volume claim), shows Suspended/Preempted with an event, and when
// re-admitted resumes in a new pod — nothing local survives — from the checkpoint the uploaded pointer names, and
// finishes having lost at most one epoch of steps (counted from the trainer's own records, not from time).
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DistillationJobStatus } from "../../../api/v1alpha1/index.ts";
import { LOCAL_NODE } from "../../bed/config.ts";
import { kubectl, waitFor } from "../../bed/env.ts";
import { type ClusterS3 } from "../e2e/s3.ts";
import { OPERATOR_DEPLOYMENT, realNode, type BuiltImage } from "../e2e/real-node.ts";
import { RealNodeOperator } from "../e2e/operator-bed.ts";
import {
  applyTestPriorityClasses,
  applyTestQueues,
  deleteTestQueues,
  Kueue,
  KUEUE_NAMESPACE_LABEL,
  TEST_PRIORITY,
} from "./kueue.ts";

const node = realNode();
const QUEUE = "jobs";
// Long enough (about a minute of student steps at 12k samples) to be caught and preempted mid-stage.
const LONG_EPOCHS = 30;
const step = (m: string) => console.error(`[kueue test] ${new Date().toISOString()} ${m}`);
let namespace = "";
let kueue: Kueue | undefined;
let trainer: BuiltImage;
let s3: ClusterS3 | undefined;
const BUCKET = "mokd-kueue";

type Spec = Record<string, unknown>;

/** A small Fashion-MNIST job of the trainer image, queued, asking for the one GPU the quota has. */
function job(
  name: string,
  priorityClass: string,
  studentEpochs: number,
  samples: number,
  extra: Spec = {},
  extraSpec: Spec = {},
) {
  return {
    apiVersion: "distillation.mokd.io/v1alpha1",
    kind: "DistillationJob",
    metadata: { name },
    spec: {
      queueName: QUEUE,
      data: {
        format: "idx",
        path: "/usr/share/datasets/fashion-mnist",
        maxTrainSamples: samples,
        validationSplit: 0.1,
      },
      teacher: { architecture: "mlp", width: 32, hiddenUnits: 32, depth: 1, epochs: 1 },
      student: { architecture: "mlp", width: 32, hiddenUnits: 32, depth: 1 },
      training: { epochs: studentEpochs, batchSize: 32, seed: 7 },
      runtime: {
        image: trainer.ref,
        imagePullPolicy: "Never",
        gpus: 1,
        priorityClassName: priorityClass,
        ...extra,
      },
      runPolicy: { backoffLimit: 2 },
      ...extraSpec,
    },
  };
}

async function apply(doc: object): Promise<void> {
  const r = await kubectl(["apply", "-n", namespace, "-f", "-"], { input: JSON.stringify(doc) });
  if (r.code !== 0) throw new Error(r.stderr);
}

async function status(name: string): Promise<DistillationJobStatus> {
  const r = await kubectl(["get", "distillationjob", name, "-n", namespace, "-o", "json"]);
  return r.code === 0 ? ((JSON.parse(r.stdout) as { status?: DistillationJobStatus }).status ?? {}) : {};
}

const suspendedReason = (s: DistillationJobStatus) =>
  s.conditions?.find((c) => c.type === "Suspended" && c.status === "True")?.reason;

async function context(): Promise<string> {
  const dj = await kubectl(["get", "distillationjobs,jobs,pods,workloads", "-n", namespace, "-o", "wide"]);
  const logs = await kubectl(["logs", "-n", namespace, `deploy/${OPERATOR_DEPLOYMENT}`, "--tail=30"]);
  return `${dj.stdout}${dj.stderr}\noperator:\n${logs.stdout}\nkueue:\n${kueue?.log(30) ?? ""}`;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 300_000): Promise<T> {
  return waitFor(what, fn, ms, 500).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${await context()}`, { cause: e });
  });
}

describe.skipIf(!node)("DistillationJobs under real Kueue", () => {
  const bed = new RealNodeOperator();
  beforeAll(async () => {
    await bed.setUp({
      prefix: "kueue",
      labels: { [KUEUE_NAMESPACE_LABEL.key]: KUEUE_NAMESPACE_LABEL.value },
      bucket: BUCKET,
      prepare: async (ns) => {
        kueue = await Kueue.start();
        // One GPU, and a higher priority preempts a lower one.
        await applyTestQueues(ns, {
          localQueue: QUEUE,
          cpu: "64",
          memory: "256Gi",
          gpus: 1,
          preemptLowerPriority: true,
        });
        await applyTestPriorityClasses();
      },
    });
    ({ namespace, s3 } = bed);
    trainer = bed.trainer!;
  }, 1_200_000);

  afterAll(async () => {
    await bed.tearDown("distillationjobs,jobs", async () => {
      if (bed.namespace) await deleteTestQueues(bed.namespace);
      await kueue?.stop();
    });
  });

  it("holds a job beyond the GPU quota as Suspended/WaitingForAdmission and starts it when the first ends", async () => {
    await apply(job("first", TEST_PRIORITY.low, 1, 1000));
    await until("first Running", async () => (await status("first")).phase === "Running");
    await apply(job("second", TEST_PRIORITY.low, 1, 1000));
    const waiting = await until("second waiting for admission", async () => {
      const s = await status("second");
      return suspendedReason(s) === "WaitingForAdmission" && s;
    });
    expect(waiting.phase).toBe("Suspended");
    const first = await until("first Succeeded", async () => {
      const s = await status("first");
      return s.phase === "Succeeded" && s;
    });
    const second = await until("second Succeeded", async () => {
      const s = await status("second");
      return (s.phase === "Succeeded" || s.phase === "Failed") && s;
    });
    expect(second.phase).toBe("Succeeded");
    // In order: the second trainer started only once the first had finished and freed the GPU.
    const started = second.conditions?.find((c) => c.type === "Running")?.lastTransitionTime;
    expect(Date.parse(started!)).toBeGreaterThanOrEqual(Date.parse(first.completionTime!) - 1000);
  });

  it("preempts a running job for a higher-priority one; it checkpoints, shows Preempted, and resumes", async () => {
    // No claim: outputs and checkpoints in the bucket.
    const storage = {
      output: { uri: `s3://${BUCKET}/long`, checkpoints: { uri: `s3://${BUCKET}/long/checkpoints` } },
      storage: s3!.storage(),
    };
    await apply(job("long", TEST_PRIORITY.low, LONG_EPOCHS, 12000, {}, storage));
    const before = await until("long in its student stage, past its first epoch", async () => {
      const s = await status("long");
      return s.phase === "Running" && s.progress?.stage === "student" && (s.progress.epoch ?? 0) >= 2 && s;
    });
    // Status shows the last checkpoint, uploaded: the pointer in the bucket.
    expect(before.progress?.lastCheckpoint).toMatchObject({
      stage: "student",
      location: `s3://${BUCKET}/long/checkpoints/latest.json`,
    });
    step("long is in its student stage: applying urgent");
    await apply(job("urgent", TEST_PRIORITY.high, 1, 1000));
    const preempted = await until("long Suspended/Preempted", async () => {
      const s = await status("long");
      return suspendedReason(s) === "Preempted" && s;
    });
    step("long preempted");
    expect(preempted.phase).toBe("Suspended");
    const events = await kubectl([
      "get",
      "events",
      "-n",
      namespace,
      "--field-selector",
      "involvedObject.name=long",
      "-o",
      "json",
    ]);
    const reasons = (JSON.parse(events.stdout) as { items: { reason: string }[] }).items.map((e) => e.reason);
    expect(reasons).toContain("Preempted");
    const urgent = await until("urgent Succeeded", async () => {
      const s = await status("urgent");
      return (s.phase === "Succeeded" || s.phase === "Failed") && s;
    });
    step("urgent finished");
    expect(urgent.phase).toBe("Succeeded");
    const final = await until(
      "long Succeeded after re-admission",
      async () => {
        const s = await status("long");
        return (s.phase === "Succeeded" || s.phase === "Failed") && s;
      },
      600_000,
    );
    step("long finished");
    expect(final.phase, JSON.stringify(final.conditions)).toBe("Succeeded");

    expect(final.result?.outputUri).toBe(`s3://${BUCKET}/long`);

    // The resumed pod's own record (metrics.jsonl, uploaded with the outputs; the first pod's went with its
    // emptyDir): it begins right after the checkpoint it resumed from and ends at the last epoch.
    const dir = mkdtempSync(join(tmpdir(), "mokd-kueue-long-"));
    await s3!.download("long/metrics.jsonl", dir);
    const records = readFileSync(join(dir, "metrics.jsonl"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; stage?: string; step?: number; epoch?: number });
    const steps = records.filter((r) => r.type === "step" && r.stage === "student");
    const stepsPerEpoch = before.progress?.stepsPerEpoch ?? 0;
    expect(stepsPerEpoch).toBeGreaterThan(0);
    expect(records.filter((r) => r.type === "epoch" && r.stage === "student").at(-1)?.epoch).toBe(
      LONG_EPOCHS,
    );
    // It resumed (did not start over): the resumed pod's trainer says from which checkpoint of the bucket and
    // step, no earlier than one epoch before the progress seen just before the preemption.
    const pods = await kubectl([
      "get",
      "pods",
      "-n",
      namespace,
      "-l",
      "batch.kubernetes.io/job-name=long",
      "-o",
      "name",
    ]);
    const logs = await kubectl(["logs", "-n", namespace, pods.stdout.trim().split("\n").at(-1)!]);
    const resumed = /resumed from .* at epoch \d+, step (\d+)/.exec(logs.stdout + logs.stderr);
    expect(resumed, logs.stdout.slice(-2000)).not.toBeNull();
    expect(logs.stdout).toMatch(
      /checkpoints: restored student step \d+ .* from s3:\/\/mokd-kueue\/long\/checkpoints\/latest.json/,
    );
    expect(Number(resumed![1])).toBeGreaterThanOrEqual((before.progress?.step ?? 0) - stepsPerEpoch);
    // The record continues from the checkpoint: its first step is the one after it.
    expect(steps[0]?.step).toBe(Number(resumed![1]));
    expect(final.attempts).toBeGreaterThanOrEqual(1);
    const nodeName = await kubectl([
      "get",
      pods.stdout.trim().split("\n").at(-1)!,
      "-n",
      namespace,
      "-o",
      "jsonpath={.spec.nodeName}",
    ]);
    expect(nodeName.stdout).toBe(LOCAL_NODE);
  }, 900_000);
});
