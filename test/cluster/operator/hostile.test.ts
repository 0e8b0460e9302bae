// The operator against a hostile namespace: names taken by objects it does not own, kubelet waiting
// reasons, spoofed and malformed statuses, hostile messages, finalizers, edited labels and a lost node. Each case
// asserts the job's final phase and reason, and that nothing foreign changed. kwok plays the pods.
import { BatchV1Api, CoreV1Api } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { DistillationJobStatus } from "../../../api/v1alpha1/index.ts";
import { STUCK_WAITING_REASONS } from "../../../operator/src/status/conditions.ts";
import { kubectl } from "../../bed/env.ts";
import { condition, Jobs, mustKubectl, operatorForFile } from "./harness.ts";

const RESULT = { teacherAccuracy: 0.91, studentAccuracy: 0.88, bestEpoch: 2, modelPath: "/output/student" };
/**
 * No GPU and tiny requests: these pods land on any kwok node and leave the fake GPUs and CPUs to the other files
 * (the default 1 CPU per pod of ~25 pods here starved the resilience tests' pods: Unschedulable).
 */
const SMALL = { requests: { cpu: "10m", memory: "32Mi" }, limits: { cpu: "100m", memory: "64Mi" } };
const CPU_ONLY = { runtime: { gpus: 0, resources: SMALL } };

let ns: string;
let jobs: Jobs;
let batch: BatchV1Api;
let core: CoreV1Api;
operatorForFile("op-hostile", (file) => ({ ns, jobs, batch, core } = file));

const reasonOf = (s: DistillationJobStatus) =>
  s.phase === "Failed" ? condition(s, "Failed")?.reason : condition(s, "Running")?.reason;

const podsOf = async (jobName: string) =>
  (await core.listNamespacedPod({ namespace: ns, labelSelector: `batch.kubernetes.io/job-name=${jobName}` }))
    .items;

const patchStatus = (name: string, status: object) =>
  mustKubectl([
    "-n",
    ns,
    "patch",
    "distillationjob",
    name,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({ status }),
  ]);

// One concurrent table: every case has its own DistillationJob (and the lost node its own node).
describe.concurrent("a hostile namespace", () => {
  describe.concurrent("names the operator does not own", () => {
    it("fails NameConflict and leaves a user's ConfigMap of the config's name untouched", async () => {
      const cm = await core.createNamespacedConfigMap({
        namespace: ns,
        body: { metadata: { name: "clash-config" }, data: { "notes.txt": "the user's data" } },
      });
      await jobs.create("clash", CPU_ONLY);
      const done = await jobs.waitPhase("clash", "Failed", 30_000);
      expect(reasonOf(done.status!)).toBe("NameConflict");
      expect(condition(done.status, "Failed")!.message).toContain(
        "a ConfigMap named clash-config already exists",
      );
      const after = await core.readNamespacedConfigMap({ namespace: ns, name: "clash-config" });
      expect(after.metadata!.resourceVersion).toBe(cm.metadata!.resourceVersion);
      expect(after.metadata!.ownerReferences).toBeUndefined();
      await expect(batch.readNamespacedJob({ namespace: ns, name: "clash" })).rejects.toMatchObject({
        code: 404,
      });
    });

    it("fails NameConflict for a user Job of its name carrying our labels, and never adopts or runs it", async () => {
      const userJob = await batch.createNamespacedJob({
        namespace: ns,
        body: {
          metadata: {
            name: "spoof-job",
            labels: { "app.kubernetes.io/managed-by": "mokd-operator", "mokd.io/job-name": "spoof-job" },
          },
          spec: {
            suspend: true,
            template: {
              spec: { restartPolicy: "Never", containers: [{ name: "trainer", image: "busybox" }] },
            },
          },
        },
      });
      await jobs.create("spoof-job", CPU_ONLY);
      const done = await jobs.waitPhase("spoof-job", "Failed", 30_000);
      expect(reasonOf(done.status!)).toBe("NameConflict");
      expect(done.status!.result).toBeUndefined();
      // The Job controller updates the user's Job's status; the operator writes nothing of it.
      const after = await batch.readNamespacedJob({ namespace: ns, name: "spoof-job" });
      expect(after.metadata!.ownerReferences).toBeUndefined();
      expect(after.metadata!.labels).toEqual(userJob.metadata!.labels);
      expect(after.spec!.suspend).toBe(true);
      expect(after.metadata!.managedFields!.map((m) => m.manager)).not.toContain("mokd-operator");
    });
  });

  describe.concurrent("every kubelet waiting reason is the job's reason within seconds", () => {
    it.each(STUCK_WAITING_REASONS.map((reason, i) => [reason, `wait-${i}`] as const))(
      "%s",
      async (reason, name) => {
        await jobs.create(name, CPU_ONLY, {
          "kwok.mokd.io/waiting-reason": reason,
          "kwok.mokd.io/message": `kubelet: ${reason}`,
        });
        const stuck = await jobs.waitStatus(name, reason, (s) => reasonOf(s) === reason, 30_000);
        expect(stuck.status!.phase).toBe("Pending");
        expect(condition(stuck.status, "Running")!.message).toBe(`kubelet: ${reason}`);
      },
    );

    it("carries the reason into the pending deadline's final message", async () => {
      await jobs.create(
        "never-pull",
        { ...CPU_ONLY, runPolicy: { pendingDeadlineSeconds: 3 } },
        { "kwok.mokd.io/waiting-reason": "ErrImageNeverPull", "kwok.mokd.io/message": "image not present" },
      );
      const done = await jobs.waitPhase("never-pull", "Failed", 30_000);
      expect(condition(done.status, "Failed")).toMatchObject({ reason: "ErrImageNeverPull" });
      expect(condition(done.status, "Failed")!.message).toMatch(
        /pendingDeadlineSeconds \(3 s\): image not present$/,
      );
    });
  });

  describe.concurrent("status is the operator's", () => {
    it("drops a spoofed Succeeded with a result on a suspended job, and resumes it when unsuspended", async () => {
      await jobs.create("sleeper", { ...CPU_ONLY, runPolicy: { suspend: true } });
      await jobs.waitPhase("sleeper", "Suspended", 30_000);
      await patchStatus("sleeper", {
        phase: "Succeeded",
        result: { studentAccuracy: 0.999 },
        progress: { epoch: 99 },
        startTime: "2999-01-01T00:00:00Z",
      });
      const honest = await jobs.waitStatus(
        "sleeper",
        "Suspended again, without the made-up fields",
        (s) => s.phase === "Suspended" && !s.result && !s.progress && s.startTime !== "2999-01-01T00:00:00Z",
        30_000,
      );
      expect(reasonOf(honest.status!)).toBe("Suspended");
      expect((await jobs.patchSpec("sleeper", { runPolicy: { suspend: false } })).code).toBe(0);
      await jobs.waitStatus("sleeper", "resumed", (s) => s.phase !== "Suspended", 30_000);
    });

    it("neither fails nor keeps a job on a garbage lastTransitionTime", async () => {
      await jobs.create(
        "garbage-time",
        { ...CPU_ONLY, runPolicy: { pendingDeadlineSeconds: 600 } },
        { "kwok.mokd.io/waiting-reason": "ImagePullBackOff" },
      );
      const stuck = await jobs.waitStatus(
        "garbage-time",
        "stuck",
        (s) => reasonOf(s) === "ImagePullBackOff",
        30_000,
      );
      const conditions = stuck.status!.conditions!.map((c) => ({ ...c, lastTransitionTime: "garbage" }));
      await patchStatus("garbage-time", { conditions });
      const fixed = await jobs.waitStatus(
        "garbage-time",
        "times replaced",
        (s) => s.conditions!.every((c) => !Number.isNaN(Date.parse(c.lastTransitionTime))),
        30_000,
      );
      expect(fixed.status!.phase).toBe("Pending");
    });

    it("ends a trainer that failed with 600 emoji and invalid JSON Failed, with a well-formed message", async () => {
      const message = `{"error": "${"\u{1F525}".repeat(600)}`;
      await jobs.create(
        "emoji",
        { ...CPU_ONLY, runPolicy: { backoffLimit: 0 } },
        {
          "kwok.mokd.io/outcome": "fail",
          "kwok.mokd.io/duration": "300ms",
          "kwok.mokd.io/message": message,
        },
      );
      const done = await jobs.waitPhase("emoji", "Failed", 30_000);
      const failedCondition = condition(done.status, "Failed")!;
      expect(failedCondition.message.isWellFormed()).toBe(true);
      expect(failedCondition.message.length).toBeLessThanOrEqual(1024);
      expect(failedCondition.message).toContain("\u{1F525}");
    });

    it("keeps an honest status while a finalizer holds a deleted DistillationJob", async () => {
      await jobs.create("held", CPU_ONLY, {
        "kwok.mokd.io/outcome": "succeed",
        "kwok.mokd.io/duration": "6s",
        "kwok.mokd.io/message": JSON.stringify(RESULT),
      });
      await mustKubectl([
        "-n",
        ns,
        "patch",
        "distillationjob",
        "held",
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":["example.com/hold"]}}',
      ]);
      await jobs.waitPhase("held", "Running", 30_000);
      await mustKubectl(["-n", ns, "delete", "distillationjob", "held", "--wait=false"]);
      const done = await jobs.waitPhase("held", "Succeeded", 60_000);
      expect(done.status!.result).toMatchObject({ studentAccuracy: 0.88 });
      await mustKubectl([
        "-n",
        ns,
        "patch",
        "distillationjob",
        "held",
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
      ]);
    });

    it("keeps the result of a pod whose labels someone removed (pods are selected by owner)", async () => {
      await jobs.create("unlabeled", CPU_ONLY, {
        "kwok.mokd.io/outcome": "succeed",
        "kwok.mokd.io/duration": "4s",
        "kwok.mokd.io/message": JSON.stringify(RESULT),
      });
      await jobs.waitPhase("unlabeled", "Running", 30_000);
      const [pod] = await podsOf("unlabeled");
      await mustKubectl([
        "-n",
        ns,
        "label",
        "pod",
        pod!.metadata!.name!,
        "mokd.io/job-name-",
        "app.kubernetes.io/managed-by-",
      ]);
      const done = await jobs.waitPhase("unlabeled", "Succeeded", 60_000);
      expect(done.status!.result).toMatchObject({ studentAccuracy: 0.88 });
    });
  });

  describe.concurrent("a lost node", () => {
    it("shows Running=Unknown/NodeUnreachable within seconds, saying what happens next", async () => {
      const node = `lost-${ns}`.slice(0, 63);
      const taint = { key: "mokd.io/lost-node-test", value: ns, effect: "NoSchedule" };
      await mustKubectl(
        ["apply", "-f", "-"],
        JSON.stringify({
          apiVersion: "v1",
          kind: "Node",
          metadata: {
            name: node,
            annotations: { "kwok.x-k8s.io/node": "fake" },
            labels: { "kubernetes.io/hostname": node, "mokd.io/lost-node-test": ns },
          },
          spec: { taints: [taint] },
          status: {
            capacity: { cpu: "8", memory: "16Gi", pods: "10" },
            allocatable: { cpu: "8", memory: "16Gi", pods: "10" },
          },
        }),
      );
      try {
        await jobs.create("lost", {
          runtime: {
            gpus: 0,
            resources: SMALL,
            nodeSelector: { "mokd.io/lost-node-test": ns },
            tolerations: [{ key: taint.key, operator: "Equal", value: ns, effect: "NoSchedule" }],
          },
        });
        await jobs.waitPhase("lost", "Running", 60_000);
        // kwok stops playing the node's kubelet; its Ready condition goes Unknown as when a kubelet dies.
        await mustKubectl(["annotate", "node", node, "kwok.x-k8s.io/node-"]);
        const unknown = JSON.stringify({
          status: {
            conditions: [
              {
                type: "Ready",
                status: "Unknown",
                reason: "NodeStatusUnknown",
                message: "Kubelet stopped posting node status.",
              },
            ],
          },
        });
        await mustKubectl(["patch", "node", node, "--subresource=status", "--type=strategic", "-p", unknown]);
        // What the node lifecycle controller then does to the node's pods (MarkPodsNotReady: Ready=False, the
        // container state left as the dead kubelet last reported it). It does so itself only when it sees the
        // heartbeat stop (node-monitor-grace-period, 50 s); the test plays that step so it stays quick.
        const [pod] = await podsOf("lost");
        const notReady = JSON.stringify({ status: { conditions: [{ type: "Ready", status: "False" }] } });
        await mustKubectl([
          "-n",
          ns,
          "patch",
          "pod",
          pod!.metadata!.name!,
          "--subresource=status",
          "--type=strategic",
          "-p",
          notReady,
        ]);
        const lost = await jobs.waitStatus(
          "lost",
          "Running=Unknown/NodeUnreachable",
          (s) => condition(s, "Running")?.reason === "NodeUnreachable",
          30_000,
        );
        expect(lost.status!.phase).toBe("Running");
        expect(condition(lost.status, "Running")!.status).toBe("Unknown");
        expect(condition(lost.status, "Running")!.message).toContain(`node ${node}`);
        expect(condition(lost.status, "Running")!.message).toContain("unreachable for 60 s");
        const tolerations = pod!.spec!.tolerations!.filter((t) => t.key === "node.kubernetes.io/unreachable");
        expect(tolerations).toEqual([
          expect.objectContaining({ effect: "NoExecute", tolerationSeconds: 60 }),
        ]);
      } finally {
        await kubectl(["delete", "node", node, "--wait=false"]);
      }
    });
  });
});
