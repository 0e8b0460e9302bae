// The operator on the real control plane, under its own ServiceAccount: one operator for this file, each test
// its own DistillationJob, run concurrently. kwok plays the trainer pods from pod annotations.
import { BatchV1Api, CoreV1Api } from "@kubernetes/client-node";
import type { DistillationJobStatus } from "../../../api/v1alpha1/index.ts";
import { describe, expect, it } from "vitest";
import { kubectl, waitFor } from "../../bed/env.ts";
import { INVALID_SPECS } from "../../fixtures/invalid-specs.ts";
import { condition, Jobs, operatorForFile } from "./harness.ts";

const RESULT = { teacherAccuracy: 0.91, studentAccuracy: 0.88, bestEpoch: 2, modelPath: "/output/student" };
const succeed = (duration = "1500ms") => ({
  "kwok.mokd.io/outcome": "succeed",
  "kwok.mokd.io/duration": duration,
});
const fail = (exitCode: number, message: string) => ({
  "kwok.mokd.io/outcome": "fail",
  "kwok.mokd.io/duration": "300ms",
  "kwok.mokd.io/exit-code": String(exitCode),
  "kwok.mokd.io/message": message,
});

let ns: string;
let jobs: Jobs;
let batch: BatchV1Api;
let core: CoreV1Api;
operatorForFile("op-life", (file) => ({ ns, jobs, batch, core } = file));

/**
 * Collecting children is kube-controller-manager's garbage collector, not the operator: on a fresh control plane
 * it learns of the new CRD only at its periodic discovery resync (30 s), and under load it took 20-35 s here.
 */
const GC_TIMEOUT_MS = 90_000;

const podsOf = async (name: string) =>
  (await core.listNamespacedPod({ namespace: ns, labelSelector: `mokd.io/job-name=${name}` })).items;

describe.concurrent("DistillationJob lifecycle", () => {
  it("creates a ConfigMap and a GPU Job, runs on a kwok GPU node, and succeeds with the trainer's result", async () => {
    await jobs.create(
      "ok",
      { runtime: { gpus: 1 } },
      { ...succeed("3s"), "kwok.mokd.io/message": JSON.stringify(RESULT) },
    );
    const cm = await waitFor("ConfigMap", () =>
      core.readNamespacedConfigMap({ name: "ok-config", namespace: ns }),
    );
    expect(JSON.parse(cm.data!["job.json"]!).metadata.name).toBe("ok");
    // The ConfigMap is applied first; the Job's apply may still be in flight.
    const job = await waitFor("Job", () => batch.readNamespacedJob({ name: "ok", namespace: ns }));
    expect(job.spec!.template.spec!.containers[0]!.resources!.limits!["nvidia.com/gpu"]).toBe("1");
    expect(job.metadata!.ownerReferences![0]).toMatchObject({
      kind: "DistillationJob",
      name: "ok",
      controller: true,
    });
    const running = await jobs.waitPhase("ok", "Running");
    expect(running.status).toMatchObject({ jobName: "ok", attempts: 1 });
    const [pod] = await podsOf("ok");
    expect(pod!.spec!.nodeName).toMatch(/^kwok-gpu-/);
    const done = await jobs.waitPhase("ok", "Succeeded");
    expect(done.status!.result).toEqual(RESULT);
    expect(condition(done.status, "Succeeded")).toMatchObject({
      status: "True",
      reason: "Completed",
      observedGeneration: 1,
    });
    expect(done.status!.completionTime).toBeDefined();
    const events = await kubectl([
      "-n",
      ns,
      "get",
      "events",
      "--field-selector=involvedObject.name=ok",
      "-o",
      "jsonpath={.items[*].reason}",
    ]);
    expect(events.stdout).toContain("TrainerRunning");
    expect(events.stdout).toContain("Succeeded");
  });

  it(
    "retries a failing trainer up to backoffLimit, then fails with the Job's reason",
    { timeout: 180_000 },
    async () => {
      await jobs.create("flaky", { runPolicy: { backoffLimit: 1 } }, fail(1, "out of memory"));
      // The Job controller waits ~10 s (exponential pod-failure backoff) before the retry; slow under load.
      const failed = await jobs.waitPhase("flaky", "Failed", 150_000);
      expect(condition(failed.status, "Failed")).toMatchObject({
        status: "True",
        reason: "BackoffLimitExceeded",
      });
      expect(condition(failed.status, "Failed")!.message).toContain("out of memory");
      expect(failed.status!.attempts).toBe(2);
    },
  );

  it("fails at once on the trainer's bad-config exit code (podFailurePolicy)", async () => {
    await jobs.create("badcfg", { runPolicy: { backoffLimit: 5 } }, fail(2, "spec.data.path: no IDX files"));
    const failed = await jobs.waitPhase("badcfg", "Failed");
    expect(condition(failed.status, "Failed")).toMatchObject({ reason: "BadConfig" });
    expect(condition(failed.status, "Failed")!.message).toContain("spec.data.path");
    expect(failed.status!.attempts).toBe(1);
  });

  it("suspends and resumes through runPolicy.suspend", async () => {
    await jobs.create("pause", { runtime: { gpus: 1 } }); // no outcome: the pod runs until deleted
    await jobs.waitPhase("pause", "Running");
    expect((await jobs.patchSpec("pause", { runPolicy: { suspend: true } })).code).toBe(0);
    const suspended = await jobs.waitPhase("pause", "Suspended");
    expect(condition(suspended.status, "Suspended")).toMatchObject({ status: "True", reason: "Suspended" });
    expect(suspended.status!.attempts).toBe(1); // the deleted pod still counts: attempts never go down
    expect((await batch.readNamespacedJob({ name: "pause", namespace: ns })).spec!.suspend).toBe(true);
    await waitFor("pods deleted", async () => (await podsOf("pause")).length === 0);
    expect((await jobs.patchSpec("pause", { runPolicy: { suspend: false } })).code).toBe(0);
    const resumed = await jobs.waitPhase("pause", "Running");
    expect(condition(resumed.status, "Suspended")).toMatchObject({ status: "False" });
  });

  it("counts a trainer pod evicted through the Eviction API as an attempt, with a Disrupted event, and succeeds", async () => {
    await jobs.create(
      "evicted",
      { runtime: { gpus: 0 } },
      { ...succeed("8s"), "kwok.mokd.io/message": JSON.stringify(RESULT) },
    );
    const pod = await waitFor("the first pod running", async () => {
      const [p] = await podsOf("evicted");
      return p?.status?.phase === "Running" && p;
    });
    const { name, uid } = pod.metadata as { name: string; uid: string };
    // What `kubectl drain` does: the apiserver marks the pod a DisruptionTarget, then deletes it.
    await core.createNamespacedPodEviction({
      name,
      namespace: ns,
      body: { apiVersion: "policy/v1", kind: "Eviction", metadata: { name, namespace: ns } },
    });
    const done = await jobs.waitPhase("evicted", "Succeeded", 60_000);
    expect(done.status!.result).toEqual(RESULT);
    expect(done.status!.attempts).toBe(2);
    expect(done.status!.lastDisruption).toMatchObject({
      pod: name,
      podUID: uid,
      reason: "EvictionByEvictionAPI",
    });
    // The Job's own counters: the evicted pod was ignored (podFailurePolicy), not counted as a failure.
    const job = await batch.readNamespacedJob({ name: "evicted", namespace: ns });
    expect(job.status).toMatchObject({ succeeded: 1 });
    expect(job.status!.failed ?? 0).toBe(0);
    const events = await kubectl([
      "-n",
      ns,
      "get",
      "events",
      "--field-selector=involvedObject.kind=DistillationJob,involvedObject.name=evicted,reason=Disrupted",
      "-o",
      "json",
    ]);
    const disrupted = (
      JSON.parse(events.stdout) as { items: { type: string; message: string; count?: number }[] }
    ).items;
    expect(disrupted).toHaveLength(1);
    expect(disrupted[0]!.type).toBe("Warning");
    expect(disrupted[0]!.count ?? 1).toBe(1);
    expect(disrupted[0]!.message).toContain(`pod ${name} was disrupted (EvictionByEvictionAPI`);
    expect(disrupted[0]!.message).toContain("resumes from the start");
    expect(disrupted[0]!.message).toMatch(/attempts: 2$/);
  });

  it("fails a run that exceeds activeDeadlineSeconds", async () => {
    await jobs.create("slow", { runPolicy: { activeDeadlineSeconds: 3 } });
    const failed = await jobs.waitPhase("slow", "Failed");
    expect(condition(failed.status, "Failed")).toMatchObject({ reason: "DeadlineExceeded" });
  });

  it("deletes a finished job after ttlSecondsAfterFinished, and its children with it", async () => {
    await jobs.create("ttl", { runPolicy: { ttlSecondsAfterFinished: 2 } }, succeed("300ms"));
    await jobs.waitPhase("ttl", "Succeeded");
    await waitFor("DistillationJob deleted", async () => (await jobs.get("ttl")) === undefined, 30_000);
    await waitFor(
      "child Job collected",
      async () => {
        const list = await batch.listNamespacedJob({ namespace: ns, labelSelector: "mokd.io/job-name=ttl" });
        return list.items.length === 0;
      },
      GC_TIMEOUT_MS,
    );
  });

  it("refuses a spec change while running, naming the field; runPolicy may change", async () => {
    await jobs.create("fixed", {});
    await jobs.waitPhase("fixed", "Running");
    const refused = await jobs.patchSpec("fixed", { training: { epochs: 50 } });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("spec.training");
    expect(refused.stderr).toContain("immutable");
    expect((await jobs.patchSpec("fixed", { runPolicy: { backoffLimit: 4 } })).code).toBe(0);
    await waitFor(
      "backoffLimit applied",
      async () => (await batch.readNamespacedJob({ name: "fixed", namespace: ns })).spec!.backoffLimit === 4,
    );
  });

  it("restores the trainer config when someone edits its ConfigMap", async () => {
    await jobs.create("drift", {});
    const applied = await waitFor("ConfigMap", () =>
      core.readNamespacedConfigMap({ name: "drift-config", namespace: ns }),
    );
    const edited = await kubectl([
      "-n",
      ns,
      "patch",
      "configmap",
      "drift-config",
      "--type=merge",
      "-p",
      JSON.stringify({ data: { "job.json": "{}" } }),
    ]);
    expect(edited.code, edited.stderr).toBe(0);
    const restored = await waitFor("the config restored", async () => {
      const cm = await core.readNamespacedConfigMap({ name: "drift-config", namespace: ns });
      return cm.data!["job.json"] !== "{}" && cm;
    });
    expect(restored.data).toEqual(applied.data);
  });

  it("garbage-collects the children when the DistillationJob is deleted", async () => {
    await jobs.create("gone", {});
    await waitFor("child Job", () => batch.readNamespacedJob({ name: "gone", namespace: ns }));
    await jobs.api.deleteNamespacedCustomObject({
      group: "distillation.mokd.io",
      version: "v1alpha1",
      plural: "distillationjobs",
      namespace: ns,
      name: "gone",
    });
    await waitFor(
      "children collected",
      async () => {
        const [j, c] = await Promise.all([
          batch.listNamespacedJob({ namespace: ns, labelSelector: "mokd.io/job-name=gone" }),
          core.listNamespacedConfigMap({ namespace: ns, labelSelector: "mokd.io/job-name=gone" }),
        ]);
        return j.items.length === 0 && c.items.length === 0;
      },
      GC_TIMEOUT_MS,
    );
  });

  it("shows Unschedulable within 60 s when no node has enough CPU", async () => {
    // The wait's timeout is the bound (it throws after 60 s from before the create). runtime.gpus is at most 1
    // (the trainer uses one device), which every GPU node has: a CPU request no node has is the unschedulable one.
    const deadline = Date.now() + 60_000;
    await jobs.create("huge", { runtime: { gpus: 1, resources: { requests: { cpu: "1000" } } } });
    const pending = await jobs.waitStatus(
      "huge",
      "Unschedulable",
      (s) => condition(s, "Running")?.reason === "Unschedulable",
      deadline - Date.now(),
    );
    expect(pending.status!.phase).toBe("Pending");
    expect(condition(pending.status, "Running")!.message).toContain("Insufficient cpu");
  });

  it("shows an image that cannot be pulled as the ImagePullBackOff reason within 60 s", async () => {
    const deadline = Date.now() + 60_000;
    await jobs.create(
      "pull",
      { runtime: { gpus: 1 } },
      {
        "kwok.mokd.io/waiting-reason": "ImagePullBackOff",
        "kwok.mokd.io/message": 'Back-off pulling image "ghcr.io/mokd/trainer:nope"',
      },
    );
    const stuck = await jobs.waitStatus(
      "pull",
      "ImagePullBackOff",
      (s) => condition(s, "Running")?.reason === "ImagePullBackOff",
      deadline - Date.now(),
    );
    expect(stuck.status!.phase).toBe("Pending");
    expect(condition(stuck.status, "Running")!.message).toContain("trainer:nope");
    const events = await kubectl([
      "-n",
      ns,
      "get",
      "events",
      "--field-selector=involvedObject.name=pull,type=Warning",
      "-o",
      "jsonpath={.items[*].reason}",
    ]);
    expect(events.stdout).toContain("ImagePullBackOff");
  });

  it("lets the apiserver refuse malformed manifests with the field path", async () => {
    const bad = (spec: unknown) =>
      kubectl(["-n", ns, "apply", "-f", "-"], {
        input: JSON.stringify({
          apiVersion: "distillation.mokd.io/v1alpha1",
          kind: "DistillationJob",
          metadata: { name: "bad" },
          spec,
        }),
      });
    const epochs = await bad({ training: { epochs: -1 } });
    expect(epochs.code).not.toBe(0);
    expect(epochs.stderr).toContain("spec.training.epochs");
    const gpus = await bad({ runtime: { gpus: "many" } });
    expect(gpus.stderr).toContain("spec.runtime.gpus");
    const strategy = await bad({
      strategy: { name: "mokd" },
      objectives: { distillation: { enabled: false } },
    });
    expect(strategy.stderr).toContain("spec.strategy.name");
  });
});

/** A manifest created by kubectl as a user would (create: apply's last-applied annotation limits the size). */
const applyManifest = (name: string, spec: unknown) =>
  kubectl(["-n", ns, "create", "-f", "-"], {
    input: JSON.stringify({
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationJob",
      metadata: { name },
      spec,
    }),
  });

/**
 * zod's `spec.runtime.tolerations.0.key` as the apiserver writes it; for a map entry, the map (the apiserver
 * writes `nodeSelector.gpu` or `nodeSelector[gpu]` depending on the rule).
 */
const apiserverPath = (field: string) =>
  field
    .replace(/\.(\d+)(?=\.|$)/g, "[$1]")
    .replace(/\.(nodeSelector|podLabels|podAnnotations)\.[^.]+$/, ".$1");

const invalidSpecOf = (s: DistillationJobStatus | undefined) =>
  s?.phase === "Failed" && condition(s, "Failed")?.reason === "InvalidSpec";

describe.concurrent("specs nothing can run: refused at admission or Failed/InvalidSpec", () => {
  it.each(INVALID_SPECS.filter(([, , , by]) => by === "crd"))(
    "the apiserver refuses %s, naming the field",
    async (_what, spec, field) => {
      const r = await applyManifest("refused", spec);
      expect(r.code, r.stdout).not.toBe(0);
      expect(r.stderr).toContain(apiserverPath(field));
    },
  );

  it.each(INVALID_SPECS.filter(([, , , by]) => by === "operator").map((row, i) => [...row, i] as const))(
    "%s is admitted and ends Failed/InvalidSpec naming the field",
    async (_what, spec, field, _by, i) => {
      const name = `op-invalid-${i}`;
      const r = await applyManifest(name, spec);
      expect(r.code, r.stderr).toBe(0);
      const failed = await jobs.waitStatus(name, "Failed/InvalidSpec", invalidSpecOf, 30_000);
      expect(condition(failed.status, "Failed")!.message).toContain(field);
      const children = await batch.listNamespacedJob({
        namespace: ns,
        labelSelector: `mokd.io/job-name=${name}`,
      });
      expect(children.items).toHaveLength(0);
    },
  );

  it.each<[string, string, Record<string, unknown> | undefined, string]>([
    [
      "an affinity",
      "bad-affinity",
      {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: "gpu type", operator: "In", values: ["a100"] }] },
            ],
          },
        },
      },
      "affinity",
    ],
    ["a cpu request above its limit", "req-over-limit", undefined, "must be less than or equal to cpu limit"],
  ])(
    "what only the apiserver judges (%s) ends Failed/InvalidSpec with its message",
    async (_what, name, affinity, text) => {
      const runtime = affinity
        ? { affinity }
        : { resources: { requests: { cpu: "2" }, limits: { cpu: "1" } } };
      await jobs.create(name, { runtime });
      const failed = await jobs.waitStatus(name, "Failed/InvalidSpec", invalidSpecOf, 30_000);
      expect(condition(failed.status, "Failed")!.message).toContain(text);
      expect(condition(failed.status, "Running")!.reason).toBe("InvalidSpec");
    },
  );
});

describe.concurrent("quantities, a user-written status and the printer columns", () => {
  it('accepts a number for a quantity (cpu: 0.5) and `teacher.outputCache: "off"`', async () => {
    const r = await applyManifest("numbers", {
      teacher: { outputCache: "off" },
      runtime: { gpus: 0, resources: { requests: { cpu: 0.5, memory: 268435456 }, limits: { cpu: 1 } } },
    });
    expect(r.code, r.stderr).toBe(0);
    const job = await waitFor("Job", () => batch.readNamespacedJob({ name: "numbers", namespace: ns }));
    expect(job.spec!.template.spec!.containers[0]!.resources!.requests).toMatchObject({ cpu: "500m" });
    const yaml = await kubectl(["-n", ns, "apply", "--dry-run=server", "-f", "-"], {
      input:
        "apiVersion: distillation.mokd.io/v1alpha1\nkind: DistillationJob\nmetadata: {name: yaml-off}\n" +
        'spec: {teacher: {outputCache: "off"}}\n',
    });
    expect(yaml.code, yaml.stderr).toBe(0);
  });

  it("corrects a user-written Succeeded status while the trainer runs", async () => {
    await jobs.create("spoof", {}); // runs until deleted
    await jobs.waitPhase("spoof", "Running");
    const patched = await kubectl([
      "-n",
      ns,
      "patch",
      "distillationjob",
      "spoof",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { phase: "Succeeded", result: { studentAccuracy: 0.999 } } }),
    ]);
    expect(patched.code, patched.stderr).toBe(0);
    const corrected = await jobs.waitStatus(
      "spoof",
      "Running again without the made-up result",
      (s) => s.phase === "Running" && s.result === undefined,
    );
    expect(condition(corrected.status, "Succeeded")?.status ?? "False").toBe("False");
  });

  it("shows the student accuracy and the reason in `kubectl get` once done", async () => {
    await jobs.create("columns", {}, { ...succeed("300ms"), "kwok.mokd.io/message": JSON.stringify(RESULT) });
    await jobs.waitPhase("columns", "Succeeded");
    const got = await kubectl(["-n", ns, "get", "distillationjob", "columns", "--no-headers"]);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toContain("0.88");
    expect(got.stdout).toContain("Completed");
  });
});

describe.concurrent("jobs stuck before running: the reason at once, a pending deadline", () => {
  const reasonOf = (s: DistillationJobStatus) => condition(s, "Running")?.reason;

  it("shows a missing PriorityClass (the Job's FailedCreate event) at once", async () => {
    await jobs.create("no-prio", { runtime: { priorityClassName: "mokd-does-not-exist" } });
    const stuck = await jobs.waitStatus(
      "no-prio",
      "PriorityClassNotFound",
      (s) => reasonOf(s) === "PriorityClassNotFound",
      30_000,
    );
    expect(condition(stuck.status, "Running")!.message).toContain("mokd-does-not-exist");
  });

  it("shows a ResourceQuota refusing the pod at once", async () => {
    // A quota scoped to one PriorityClass, so it refuses only this test's pod, not its neighbours'.
    const pc = `mokd-quota-${ns}`;
    const created = await kubectl(["apply", "-f", "-"], {
      input: [
        {
          apiVersion: "scheduling.k8s.io/v1",
          kind: "PriorityClass",
          metadata: { name: pc, labels: { "mokd-test": "true" } },
          value: 10,
        },
        {
          apiVersion: "v1",
          kind: "ResourceQuota",
          metadata: { name: "no-pods", namespace: ns },
          spec: {
            hard: { pods: "0" },
            scopeSelector: {
              matchExpressions: [{ scopeName: "PriorityClass", operator: "In", values: [pc] }],
            },
          },
        },
      ]
        .map((d) => JSON.stringify(d))
        .join("\n"),
    });
    expect(created.code, created.stderr).toBe(0);
    // Until the quota controller has written the quota's status, admission refuses pods with "status unknown for
    // quota" instead of "exceeded quota" (a user's quota exists long before their jobs): wait for it.
    const counted = await kubectl([
      "wait",
      "-n",
      ns,
      "resourcequota/no-pods",
      "--for=jsonpath={.status.hard.pods}=0",
      "--timeout=30s",
    ]);
    expect(counted.code, counted.stderr).toBe(0);
    try {
      await jobs.create("quota", { runtime: { priorityClassName: pc } });
      const stuck = await jobs.waitStatus(
        "quota",
        "ExceededQuota",
        (s) => reasonOf(s) === "ExceededQuota",
        30_000,
      );
      expect(condition(stuck.status, "Running")!.message).toContain("exceeded quota");
    } finally {
      await kubectl(["delete", "priorityclass", pc, "--ignore-not-found"]);
    }
  });

  it("shows a missing PVC as Unschedulable", async () => {
    await jobs.create("no-pvc", { runtime: { volumes: { data: { claimName: "mokd-missing" } } } });
    const stuck = await jobs.waitStatus(
      "no-pvc",
      "Unschedulable",
      (s) => reasonOf(s) === "Unschedulable",
      30_000,
    );
    expect(condition(stuck.status, "Running")!.message).toContain("mokd-missing");
  });

  it("shows CreateContainerConfigError at once", async () => {
    await jobs.create(
      "cfg-err",
      {},
      {
        "kwok.mokd.io/waiting-reason": "CreateContainerConfigError",
        "kwok.mokd.io/message": 'secret "x" not found',
      },
    );
    await jobs.waitStatus(
      "cfg-err",
      "CreateContainerConfigError",
      (s) => reasonOf(s) === "CreateContainerConfigError",
      30_000,
    );
  });

  it("fails a job whose pod does not start within runPolicy.pendingDeadlineSeconds, and removes the pod", async () => {
    await jobs.create(
      "deadline",
      { runPolicy: { pendingDeadlineSeconds: 4 } },
      {
        "kwok.mokd.io/waiting-reason": "ImagePullBackOff",
        "kwok.mokd.io/message": 'Back-off pulling image "nope"',
      },
    );
    const failed = await jobs.waitPhase("deadline", "Failed", 30_000);
    expect(condition(failed.status, "Failed")).toMatchObject({
      status: "True",
      reason: "ImagePullBackOff",
    });
    expect(condition(failed.status, "Failed")!.message).toContain("pendingDeadlineSeconds (4 s)");
    expect((await batch.readNamespacedJob({ name: "deadline", namespace: ns })).spec!.suspend).toBe(true);
    await waitFor("the pending pod deleted", async () => (await podsOf("deadline")).length === 0);
  });
});

describe("a safe default trainer pod", () => {
  it("runs in a namespace whose ResourceQuota requires requests and limits, with a read-only root", async () => {
    // Scoped to one PriorityClass so the quota's rule (every pod must set cpu/memory) binds only this job.
    const pc = `mokd-limits-${ns}`;
    const created = await kubectl(["apply", "-f", "-"], {
      input: [
        {
          apiVersion: "scheduling.k8s.io/v1",
          kind: "PriorityClass",
          metadata: { name: pc, labels: { "mokd-test": "true" } },
          value: 10,
        },
        {
          apiVersion: "v1",
          kind: "ResourceQuota",
          metadata: { name: "needs-limits", namespace: ns },
          spec: {
            hard: {
              "requests.cpu": "100",
              "requests.memory": "1Ti",
              "limits.cpu": "100",
              "limits.memory": "1Ti",
            },
            scopeSelector: {
              matchExpressions: [{ scopeName: "PriorityClass", operator: "In", values: [pc] }],
            },
          },
        },
      ]
        .map((d) => JSON.stringify(d))
        .join("\n"),
    });
    expect(created.code, created.stderr).toBe(0);
    try {
      await jobs.create("quotad", { runtime: { priorityClassName: pc } });
      await jobs.waitPhase("quotad", "Running");
      const [pod] = await podsOf("quotad");
      const container = pod!.spec!.containers[0]!;
      expect(container.resources).toMatchObject({
        requests: { cpu: "1", memory: "2Gi" },
        limits: { cpu: "4", memory: "8Gi" },
      });
      expect(container.securityContext?.readOnlyRootFilesystem).toBe(true);
      expect(container.volumeMounts!.find((m) => m.mountPath === "/tmp")).toBeDefined();
    } finally {
      await kubectl(["delete", "priorityclass", pc, "--ignore-not-found"]);
    }
  });
});
