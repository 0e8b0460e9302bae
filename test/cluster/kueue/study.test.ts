// A DistillationStudy at scale on kwok's GPU nodes under real Kueue: 50 variants with parallelism 8 against a
// ClusterQueue of 4 GPUs. Counted from the system's own objects over the whole run (a watch on the variants'
// pods, Kueue's Workload admission), never from timing: at most 4 variant pods ever hold a GPU at once (Kueue's
// partial admission cut the Job to what the quota has); the operator killed and restarted mid-run duplicates
// nothing (one variants Job, one successful pod per index); the one variant that fails (a non-retriable exit) is
// isolated: the others succeed, the report runs, the study ends Succeeded naming that variant as failed. And a
// study suspended through its template's runPolicy holds its current stage's Job suspended, and resumes it. A
// higher-priority Job preempts a study's variants stage: the study says Preempted (only then), resumes when the
// quota frees and runs no index twice. A stage that cannot be scheduled fails the study after its
// pendingDeadlineSeconds, and its Job is ended for good under Kueue (which un-suspends an admitted Job).
import { Watch, type V1Job, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DistillationStudyStatus } from "../../../api/v1alpha1/index.ts";
import { createTestNamespace, deleteNamespace, kubectl, waitFor } from "../../bed/env.ts";
import {
  ensureCrd,
  mustKubectl,
  operatorIdentity,
  removeIdentity,
  startOperator,
  type OperatorProcess,
} from "../operator/harness.ts";
import { adminKubeConfig } from "../../bed/env.ts";
import {
  applyTestPriorityClasses,
  applyTestQueues,
  deleteTestQueues,
  Kueue,
  KUEUE_NAMESPACE_LABEL,
  TEST_PRIORITY,
} from "./kueue.ts";

const QUEUE = "studies";
const QUOTA_GPUS = 4;
const FAILING_INDEX = 7;
const RESULT = JSON.stringify({
  bestValidationAccuracy: 0.81,
  studentAccuracy: 0.8,
  bestEpoch: 1,
  durationSeconds: 2,
  teacherSource: "shared",
});

let namespace = "";
let kueue: Kueue | undefined;
let operator: OperatorProcess | undefined;
let kubeconfig = "";
const stopWatches: (() => void)[] = [];

/** Every variant pod seen, by name: its index and its latest phase. */
const pods = new Map<string, { index: string; phase: string; deleted: boolean }>();
const variantJobUids = new Set<string>();
let maxActive = 0;

const active = () =>
  [...pods.values()].filter((p) => !p.deleted && (p.phase === "Pending" || p.phase === "Running")).length;

async function watch<T extends { metadata?: { name?: string; uid?: string } }>(
  path: string,
  labelSelector: string,
  onEvent: (type: string, obj: T) => void,
): Promise<void> {
  const request = await new Watch(adminKubeConfig()).watch(path, { labelSelector }, onEvent, () => undefined);
  stopWatches.push(() => request.abort());
}

async function studyStatus(): Promise<DistillationStudyStatus> {
  const r = await kubectl(["get", "distillationstudy", "pilot", "-n", namespace, "-o", "json"]);
  return r.code === 0 ? ((JSON.parse(r.stdout) as { status?: DistillationStudyStatus }).status ?? {}) : {};
}

async function context(): Promise<string> {
  const objects = await kubectl(["get", "distillationstudies,jobs,workloads", "-n", namespace, "-o", "wide"]);
  return `${objects.stdout}${objects.stderr}\noperator:\n${operator?.logs().slice(-4000) ?? ""}\nkueue:\n${kueue?.log(30) ?? ""}`;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 180_000): Promise<T> {
  return waitFor(what, fn, ms, 300).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${await context()}`, { cause: e });
  });
}

/** 5 arms (alone, mokd, mokd-amortized, kd@0.5, kd@0.9) x 10 seeds = 50 runs; kwok plays every pod. */
const study = {
  apiVersion: "distillation.mokd.io/v1alpha1",
  kind: "DistillationStudy",
  metadata: { name: "pilot" },
  spec: {
    seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    variants: { fixedAlphas: [0.5, 0.9] },
    parallelism: 8,
    template: {
      queueName: QUEUE,
      output: { uri: "s3://mokd-study/pilot" },
      runtime: {
        gpus: 1,
        podAnnotations: {
          "kwok.mokd.io/outcome": "succeed",
          "kwok.mokd.io/duration": "1500ms",
          "kwok.mokd.io/message": RESULT,
          // The variant of this index exits with BadData (non-retriable): its index fails, at once.
          "kwok.mokd.io/fail-index": String(FAILING_INDEX),
          "kwok.mokd.io/exit-code": "3",
        },
      },
      runPolicy: { backoffLimit: 2 },
    },
  },
};

beforeAll(async () => {
  namespace = await createTestNamespace("study-kueue");
  await mustKubectl([
    "label",
    "namespace",
    namespace,
    `${KUEUE_NAMESPACE_LABEL.key}=${KUEUE_NAMESPACE_LABEL.value}`,
  ]);
  await ensureCrd();
  kueue = await Kueue.start();
  // Preempting lower priorities: the preemption case's higher-priority Job evicts the study's variants.
  await applyTestQueues(namespace, {
    localQueue: QUEUE,
    cpu: "256",
    memory: "1Ti",
    gpus: QUOTA_GPUS,
    preemptLowerPriority: true,
  });
  await applyTestPriorityClasses();
  kubeconfig = await operatorIdentity(namespace);
  operator = startOperator(kubeconfig, namespace, ["--no-leader-elect"]);
  await watch<V1Pod>(`/api/v1/namespaces/${namespace}/pods`, "mokd.io/study-stage=variants", (type, pod) => {
    const name = pod.metadata!.name!;
    const index = pod.metadata?.annotations?.["batch.kubernetes.io/job-completion-index"] ?? "?";
    pods.set(name, { index, phase: pod.status?.phase ?? "Pending", deleted: type === "DELETED" });
    maxActive = Math.max(maxActive, active());
  });
  await watch<V1Job>(
    `/apis/batch/v1/namespaces/${namespace}/jobs`,
    "mokd.io/study-stage=variants",
    (_t, job) => {
      variantJobUids.add(job.metadata!.uid!);
    },
  );
}, 1_500_000);

afterAll(async () => {
  stopWatches.forEach((stop) => stop());
  await operator?.kill("SIGTERM");
  if (namespace) {
    await kubectl(["delete", "distillationstudies,jobs", "--all", "-n", namespace, "--wait=false"]);
    await deleteNamespace(namespace);
    await deleteTestQueues(namespace);
    await removeIdentity(namespace);
  }
  await kueue?.stop();
});

describe("a DistillationStudy of 50 variants under a Kueue quota of 4 GPUs (kwok)", () => {
  it("admits at most 4 variant pods at once, survives an operator restart, isolates the failing variant", async () => {
    const started = Date.now();
    await mustKubectl(["apply", "-n", namespace, "-f", "-"], JSON.stringify(study));
    await until("the variants stage", async () => (await studyStatus()).stage === "Variants");
    // Kueue admitted the variants' Workload partially: 4 of the 8 pods parallelism asks for.
    const admitted = await until("the variants' Workload admitted", async () => {
      const r = await kubectl(["get", "workloads", "-n", namespace, "-o", "json"]);
      const items = (JSON.parse(r.stdout) as { items: WorkloadLike[] }).items;
      const w = items.find((i) => i.metadata.ownerReferences?.some((o) => o.name === "pilot-variants"));
      return w?.status?.admission?.podSetAssignments?.[0]?.count;
    });
    expect(admitted).toBe(QUOTA_GPUS);

    // Kill the operator mid-run (no graceful stop) and start a new one.
    await until(
      "10 variants done",
      async () => [...pods.values()].filter((p) => p.phase === "Succeeded").length >= 10,
    );
    await operator!.kill("SIGKILL");
    operator = startOperator(kubeconfig, namespace, ["--no-leader-elect"]);

    const final = await until(
      "the study ended",
      async () => {
        const s = await studyStatus();
        return (s.phase === "Succeeded" || s.phase === "Failed") && s;
      },
      300_000,
    );
    console.log(`[study kwok] 50 variants under a quota of 4 GPUs: ${(Date.now() - started) / 1000} s`);

    expect(final).toMatchObject({ phase: "Succeeded", stage: "Done", runs: 50, succeeded: 49, failed: 1 });
    // The failing variant is named with the trainer's reason; every other one succeeded with its figures.
    const failed = final.variants!.filter((v) => v.phase === "Failed");
    expect(failed).toEqual([
      expect.objectContaining({ index: FAILING_INDEX, name: "alone-s8", reason: "BadData" }),
    ]);
    expect(final.variants!.filter((v) => v.phase === "Succeeded" && v.testAccuracy === 0.8)).toHaveLength(49);
    expect(final.best?.arm).toBeDefined();

    // Never more than the quota of variant pods at once, and the quota was used (the cut was Kueue's, not 1).
    expect(maxActive).toBe(QUOTA_GPUS);
    // No duplicate: one variants Job, one successful pod per index, one pod for the failed index (FailIndex).
    expect(variantJobUids.size).toBe(1);
    const byIndex = new Map<string, string[]>();
    for (const p of pods.values()) byIndex.set(p.index, [...(byIndex.get(p.index) ?? []), p.phase]);
    expect(byIndex.size).toBe(50);
    for (const [index, phases] of byIndex) {
      if (index === String(FAILING_INDEX)) expect(phases).toEqual(["Failed"]);
      else expect(phases.filter((p) => p === "Succeeded")).toHaveLength(1);
    }
    // One event per variant that ended (aggregated per status write) named the failure.
    const events = await mustKubectl([
      "get",
      "events",
      "-n",
      namespace,
      "--field-selector",
      "reason=VariantFailed",
      "-o",
      "json",
    ]);
    expect(events).toContain("alone-s8");
  }, 600_000);
});

describe("a DistillationStudy suspended and resumed (kwok)", () => {
  it("suspends the current stage's Job with no pod, and resumes it to the end", async () => {
    const paused = {
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationStudy",
      metadata: { name: "paused" },
      spec: {
        seeds: [1],
        variants: { automatic: ["mokd"], fixedAlphas: [0.5], studentAlone: false },
        template: {
          output: { uri: "s3://mokd-study/paused" },
          runtime: {
            gpus: 1,
            podAnnotations: {
              "kwok.mokd.io/outcome": "succeed",
              "kwok.mokd.io/duration": "500ms",
              "kwok.mokd.io/message": RESULT,
            },
          },
          runPolicy: { suspend: true },
        },
      },
    };
    await mustKubectl(["apply", "-n", namespace, "-f", "-"], JSON.stringify(paused));
    const get = async () => {
      const r = await kubectl(["get", "distillationstudy", "paused", "-n", namespace, "-o", "json"]);
      return r.code === 0
        ? ((JSON.parse(r.stdout) as { status?: DistillationStudyStatus }).status ?? {})
        : {};
    };
    const suspended = await until("paused Suspended", async () => {
      const s = await get();
      return s.phase === "Suspended" && s;
    });
    expect(suspended.stage).toBe("Teacher");
    const teacher = JSON.parse(
      await mustKubectl(["get", "job", "paused-teacher", "-n", namespace, "-o", "json"]),
    ) as V1Job;
    expect(teacher.spec?.suspend).toBe(true);
    const studyPods = async () =>
      (
        JSON.parse(
          await mustKubectl([
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            "mokd.io/study-name=paused",
            "-o",
            "json",
          ]),
        ) as { items: V1Pod[] }
      ).items;
    expect(await studyPods()).toEqual([]);

    await mustKubectl([
      "patch",
      "distillationstudy",
      "paused",
      "-n",
      namespace,
      "--type",
      "merge",
      "-p",
      JSON.stringify({ spec: { template: { runPolicy: { suspend: false } } } }),
    ]);
    const final = await until("paused ended", async () => {
      const s = await get();
      return (s.phase === "Succeeded" || s.phase === "Failed") && s;
    });
    expect(final).toMatchObject({ phase: "Succeeded", stage: "Done", runs: 2, succeeded: 2, failed: 0 });
    // Resumed, not restarted: still one teacher Job (the same object) and one teacher pod.
    const after = JSON.parse(
      await mustKubectl(["get", "job", "paused-teacher", "-n", namespace, "-o", "json"]),
    ) as V1Job;
    expect(after.metadata?.uid).toBe(teacher.metadata?.uid);
    expect(
      (await studyPods()).filter((p) => p.metadata?.labels?.["mokd.io/study-stage"] === "teacher"),
    ).toHaveLength(1);
  }, 300_000);
});

/** A study's status by name. */
async function statusOf(name: string): Promise<DistillationStudyStatus> {
  const r = await kubectl(["get", "distillationstudy", name, "-n", namespace, "-o", "json"]);
  return r.code === 0 ? ((JSON.parse(r.stdout) as { status?: DistillationStudyStatus }).status ?? {}) : {};
}

const suspendedReason = (s: DistillationStudyStatus) =>
  s.conditions?.find((c) => c.type === "Suspended" && c.status === "True")?.reason;

describe("a DistillationStudy's variants stage preempted by Kueue (kwok)", () => {
  it("shows Preempted, resumes when the quota frees, finishes, and runs no index twice", async () => {
    const name = "preempted";
    // 4 arms (alone, mokd, kd@0.5, kd@0.9) x 4 seeds = 16 variants of 8 s, 4 at a time (the quota): ~32 s. Long
    // enough that Kueue's eviction (about a second after the urgent Job) lands while a variant still runs.
    const study = {
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationStudy",
      metadata: { name },
      spec: {
        seeds: [1, 2, 3, 4],
        variants: { automatic: ["mokd"], fixedAlphas: [0.5, 0.9] },
        parallelism: QUOTA_GPUS,
        template: {
          queueName: QUEUE,
          output: { uri: `s3://mokd-study/${name}` },
          runtime: {
            gpus: 1,
            priorityClassName: TEST_PRIORITY.low,
            podAnnotations: {
              "kwok.mokd.io/outcome": "succeed",
              "kwok.mokd.io/duration": "8000ms",
              "kwok.mokd.io/message": RESULT,
            },
          },
          runPolicy: { backoffLimit: 2 },
        },
      },
    };
    /** Every pod of the study's variants: its index and phases; every status the study went through. */
    const variantPods = new Map<
      string,
      { index: string; phase: string; deleted: boolean; runningSince?: number }
    >();
    const seen: { at: number; reason?: string; phase?: string }[] = [];
    await watch<V1Pod>(
      `/api/v1/namespaces/${namespace}/pods`,
      `mokd.io/study-name=${name},mokd.io/study-stage=variants`,
      (type, pod) => {
        const index = pod.metadata?.annotations?.["batch.kubernetes.io/job-completion-index"] ?? "?";
        const phase = pod.status?.phase ?? "Pending";
        const runningSince =
          variantPods.get(pod.metadata!.name!)?.runningSince ??
          (phase === "Running" ? Date.now() : undefined);
        variantPods.set(pod.metadata!.name!, { index, phase, deleted: type === "DELETED", runningSince });
      },
    );
    await watch<{ metadata?: { name?: string }; status?: DistillationStudyStatus }>(
      `/apis/distillation.mokd.io/v1alpha1/namespaces/${namespace}/distillationstudies`,
      "",
      (_t, obj) => {
        if (obj.metadata?.name !== name || !obj.status) return;
        seen.push({ at: Date.now(), phase: obj.status.phase, reason: suspendedReason(obj.status) });
      },
    );
    const started = Date.now();
    await mustKubectl(["apply", "-n", namespace, "-f", "-"], JSON.stringify(study));
    const succeededPods = () => [...variantPods.values()].filter((p) => p.phase === "Succeeded");
    // Not between two batches (the Job controller creates the next pods a moment after the last ones end: an
    // eviction then stops nothing): 2 variants done and one that started running within the last 2 of its 8 s.
    const justStarted = () =>
      [...variantPods.values()].some(
        (p) => p.phase === "Running" && !p.deleted && Date.now() - (p.runningSince ?? 0) < 2000,
      );
    await until(
      "2 variants done and one just started",
      async () => succeededPods().length >= 2 && justStarted(),
    );

    // A higher-priority Job in the same ClusterQueue asks for the whole quota: Kueue evicts the variants.
    const urgentApplied = Date.now();
    const doneBefore = new Set(succeededPods().map((p) => p.index));
    const urgent = {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "urgent", labels: { "kueue.x-k8s.io/queue-name": QUEUE } },
      spec: {
        suspend: true,
        template: {
          metadata: {
            annotations: { "kwok.mokd.io/outcome": "succeed", "kwok.mokd.io/duration": "3000ms" },
          },
          spec: {
            restartPolicy: "Never",
            priorityClassName: TEST_PRIORITY.high,
            containers: [
              {
                name: "work",
                image: "busybox",
                resources: {
                  requests: { cpu: "1", "nvidia.com/gpu": String(QUOTA_GPUS) },
                  limits: { "nvidia.com/gpu": String(QUOTA_GPUS) },
                },
              },
            ],
          },
        },
      },
    };
    await mustKubectl(["apply", "-n", namespace, "-f", "-"], JSON.stringify(urgent));
    const preempted = await until("the study Suspended/Preempted", async () => {
      const s = await statusOf(name);
      return suspendedReason(s) === "Preempted" && s;
    });
    expect(preempted).toMatchObject({ phase: "Suspended", stage: "Variants" });
    expect(preempted.conditions?.find((c) => c.type === "Suspended")?.message).toMatch(
      /^Kueue suspended the variants Job \(preempted or evicted\).*runs only the indexes not yet completed \(\d+ of 16 completed\)$/,
    );
    await until("the urgent Job complete", async () => {
      const job = JSON.parse(
        await mustKubectl(["get", "job", "urgent", "-n", namespace, "-o", "json"]),
      ) as V1Job;
      return job.status?.conditions?.some((c) => c.type === "Complete" && c.status === "True");
    });
    const final = await until("the study ended", async () => {
      const s = await statusOf(name);
      return (s.phase === "Succeeded" || s.phase === "Failed") && s;
    });
    console.log(`[study kwok] 16 variants, preempted and resumed: ${(Date.now() - started) / 1000} s`);
    expect(final).toMatchObject({ phase: "Succeeded", stage: "Done", runs: 16, succeeded: 16, failed: 0 });

    // What the study said: Preempted only after the urgent Job came (its variants' first wait for admission
    // after the teacher was no preemption), and running again afterwards.
    const firstPreempted = seen.find((s) => s.reason === "Preempted");
    expect(firstPreempted!.at).toBeGreaterThanOrEqual(urgentApplied);
    expect(seen.filter((s) => s.at < urgentApplied && s.reason === "Preempted")).toEqual([]);
    expect(seen.some((s) => s.at > firstPreempted!.at && s.phase === "Running")).toBe(true);
    const events = await mustKubectl([
      "get",
      "events",
      "-n",
      namespace,
      "--field-selector",
      `involvedObject.name=${name},reason=Preempted`,
      "-o",
      "name",
    ]);
    expect(events.trim()).not.toBe("");

    // Nothing ran twice: one successful pod per index; an index done before the eviction had no other pod; and
    // the eviction did stop running variants (some index has a pod that did not succeed before its success).
    const byIndex = new Map<string, string[]>();
    for (const p of variantPods.values()) byIndex.set(p.index, [...(byIndex.get(p.index) ?? []), p.phase]);
    expect(byIndex.size).toBe(16);
    for (const [index, phases] of byIndex) {
      expect(
        phases.filter((p) => p === "Succeeded"),
        `index ${index}: ${phases.join(",")}`,
      ).toHaveLength(1);
      if (doneBefore.has(index)) expect(phases).toEqual(["Succeeded"]);
    }
    expect([...byIndex.values()].some((phases) => phases.length > 1)).toBe(true);
    const jobs = JSON.parse(
      await mustKubectl(["get", "jobs", "-n", namespace, "-l", `mokd.io/study-name=${name}`, "-o", "json"]),
    ) as { items: V1Job[] };
    const variantsJob = jobs.items.find((j) => j.metadata?.labels?.["mokd.io/study-stage"] === "variants");
    expect(variantsJob?.status?.completedIndexes).toBe("0-15");
  }, 300_000);
});

describe("a DistillationStudy stage that never starts (kwok)", () => {
  it("fails the study after template.runPolicy.pendingDeadlineSeconds, naming the stage; its Job is ended", async () => {
    const name = "stuck";
    const study = {
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationStudy",
      metadata: { name },
      spec: {
        seeds: [1],
        variants: { fixedAlphas: [0.5] },
        template: {
          // Under Kueue: admitted, then unschedulable; stopping it must outlast Kueue's un-suspending.
          queueName: QUEUE,
          output: { uri: `s3://mokd-study/${name}` },
          runtime: {
            gpus: 1,
            nodeSelector: { "mokd.io/no-such-node": "true" },
            podAnnotations: { "kwok.mokd.io/outcome": "succeed", "kwok.mokd.io/message": RESULT },
          },
          runPolicy: { pendingDeadlineSeconds: 5 },
        },
      },
    };
    await mustKubectl(["apply", "-n", namespace, "-f", "-"], JSON.stringify(study));
    const failed = await until(
      "the stuck study Failed",
      async () => {
        const s = await statusOf(name);
        return s.phase === "Failed" && s;
      },
      60_000,
    );
    expect(failed.stage).toBe("Teacher");
    const condition = failed.conditions?.find((c) => c.type === "Failed");
    expect(condition).toMatchObject({ status: "True", reason: "Unschedulable" });
    expect(condition?.message).toMatch(
      /^the teacher stage's pods did not start within template\.runPolicy\.pendingDeadlineSeconds \(5 s\): Unschedulable: .*node affinity\/selector/,
    );
    // Stopped for good: the Job controller failed the teacher Job (Kueue cannot un-suspend a finished Job) and
    // deleted its pod; Kueue's Workload finished, so its quota is free.
    const teacher = await until("the teacher Job ended", async () => {
      const job = JSON.parse(
        await mustKubectl(["get", "job", `${name}-teacher`, "-n", namespace, "-o", "json"]),
      ) as V1Job;
      return job.status?.conditions?.find((c) => c.type === "Failed" && c.status === "True") && job;
    });
    expect(teacher.status?.conditions?.find((c) => c.type === "Failed")?.reason).toBe("DeadlineExceeded");
    await until("the stuck study's pods gone", async () => {
      const r = await mustKubectl([
        "get",
        "pods",
        "-n",
        namespace,
        "-l",
        `mokd.io/study-name=${name}`,
        "-o",
        "name",
      ]);
      return r.trim() === "";
    });
    await until("its Workload finished", async () => {
      const r = await kubectl(["get", "workloads", "-n", namespace, "-o", "json"]);
      const items = (JSON.parse(r.stdout) as { items: WorkloadLike[] }).items;
      const w = items.find((i) => i.metadata.ownerReferences?.some((o) => o.name === `${name}-teacher`));
      return w?.status?.conditions?.some((c) => c.type === "Finished" && c.status === "True");
    });
  }, 120_000);
});

/** [what, spec (over a valid base), where it is refused, the text the refusal or status must name]. */
const BAD_STUDIES: [string, Record<string, unknown>, "apiserver" | "status", RegExp][] = [
  ["duplicate seeds", { seeds: [1, 1] }, "apiserver", /seeds must be unique/],
  ["no shared storage", { template: {} }, "apiserver", /template\.output\.uri.*ReadWriteMany/],
  [
    "no variant",
    { variants: { automatic: [], fixedAlphas: [], studentAlone: false } },
    "apiserver",
    /at least one variant/,
  ],
  [
    "distillation disabled",
    { template: { output: { uri: "s3://mokd-study/x" }, objectives: { distillation: { enabled: false } } } },
    "apiserver",
    /distillation\.enabled must be true/,
  ],
  [
    "sharded teacher trained on the spot",
    { teacherShards: 2 },
    "apiserver",
    /teacherShards > 1 needs a given teacher/,
  ],
  ["an alpha above 1", { variants: { fixedAlphas: [1.5] } }, "apiserver", /fixedAlphas/],
  ["parallelism 0", { parallelism: 0 }, "apiserver", /parallelism/],
  [
    "a cpu request that is no quantity",
    {
      template: {
        output: { uri: "s3://mokd-study/x" },
        runtime: { gpus: 0, resources: { requests: { cpu: "lots" } } },
      },
    },
    "status",
    /InvalidSpec: spec\.template\.runtime\.resources\.requests\.cpu/,
  ],
];

describe("bad DistillationStudy specs end as apiserver refusals or statuses", () => {
  const base = {
    seeds: [1],
    variants: { fixedAlphas: [0.5] },
    template: { output: { uri: "s3://mokd-study/x" } },
  };
  it.each(BAD_STUDIES)("%s", async (what, spec, where, names) => {
    const name = `bad-${what.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`.slice(0, 40).replace(/-+$/, "");
    const body = {
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationStudy",
      metadata: { name },
      spec: { ...base, ...spec },
    };
    const r = await kubectl(["apply", "-n", namespace, "-f", "-"], { input: JSON.stringify(body) });
    if (where === "apiserver") {
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(names);
      return;
    }
    expect(r.code, r.stderr).toBe(0);
    const s = await until(
      `${name} Failed`,
      async () => {
        const got = await kubectl(["get", "distillationstudy", name, "-n", namespace, "-o", "json"]);
        const st = (JSON.parse(got.stdout) as { status?: DistillationStudyStatus }).status;
        return st?.phase === "Failed" && st;
      },
      60_000,
    );
    const failed = s.conditions?.find((c) => c.type === "Failed");
    expect(`${failed?.reason}: ${failed?.message}`).toMatch(names);
  });

  it("a Job of a study's child name held by someone else: Failed/NameConflict, the Job untouched", async () => {
    const foreign = {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "taken-teacher" },
      spec: {
        suspend: true,
        template: { spec: { restartPolicy: "Never", containers: [{ name: "x", image: "busybox" }] } },
      },
    };
    await mustKubectl(["apply", "-n", namespace, "-f", "-"], JSON.stringify(foreign));
    const body = {
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationStudy",
      metadata: { name: "taken" },
      spec: base,
    };
    await mustKubectl(["apply", "-n", namespace, "-f", "-"], JSON.stringify(body));
    const s = await until(
      "taken Failed",
      async () => {
        const got = await kubectl(["get", "distillationstudy", "taken", "-n", namespace, "-o", "json"]);
        const st = (JSON.parse(got.stdout) as { status?: DistillationStudyStatus }).status;
        return st?.phase === "Failed" && st;
      },
      60_000,
    );
    expect(s.conditions?.find((c) => c.type === "Failed")).toMatchObject({ reason: "NameConflict" });
    const job = JSON.parse(
      await mustKubectl(["get", "job", "taken-teacher", "-n", namespace, "-o", "json"]),
    ) as V1Job;
    expect(job.metadata?.ownerReferences ?? []).toEqual([]);
  });
});

interface WorkloadLike {
  metadata: { ownerReferences?: { name: string }[] };
  status?: {
    admission?: { podSetAssignments?: { count?: number }[] };
    conditions?: { type: string; status: string }[];
  };
}
