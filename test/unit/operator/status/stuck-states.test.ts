// Every stuck state named: each kubelet waiting reason a pod does not leave by itself
// becomes the job's reason and the pending deadline's final message; a trainer on a lost node shows as
// Running=Unknown/NodeUnreachable saying what happens next; trainer pods tolerate a lost node for the
// operator's --node-loss-toleration-seconds.
import { describe, expect, it } from "vitest";
import { desiredJob } from "../../../../operator/src/controller/children.ts";
import { eventsFor } from "../../../../operator/src/controller/transitions.ts";
import { findCondition, STUCK_WAITING_REASONS } from "../../../../operator/src/status/conditions.ts";
import { deriveStatus } from "../../../../operator/src/status/derive.ts";
import { containerStatus, distillationJob, job, pod } from "../../../fixtures/kube-objects.ts";

const NOW = "2025-01-01T00:00:10.000Z";
const waiting = (reason: string) =>
  containerStatus({ waiting: { reason, message: `kubelet says ${reason}` } });

describe("kubelet waiting reasons", () => {
  it("covers the kubelet's reasons that a pod does not leave by itself", () => {
    for (const reason of [
      "ErrImageNeverPull",
      "RunContainerError",
      "ImageInspectError",
      "RegistryUnavailable",
      "PreStartHookError",
      "SignatureValidationFailed",
      "InvalidImageName",
      "CreateContainerConfigError",
      "CreateContainerError",
      "ErrImagePull",
      "ImagePullBackOff",
      "CrashLoopBackOff",
    ]) {
      expect(STUCK_WAITING_REASONS).toContain(reason);
    }
  });

  it.each(STUCK_WAITING_REASONS)(
    "%s is the job's reason at once, a Warning, and the deadline's final word",
    (reason) => {
      const dj = distillationJob({ runPolicy: { pendingDeadlineSeconds: 60 } });
      const pods = [pod("p", { phase: "Pending", containerStatuses: [waiting(reason)] })];
      const status = deriveStatus(dj, { job: job({ active: 1 }), pods }, NOW);
      const running = findCondition(status.conditions, "Running")!;
      expect(status.phase).toBe("Pending");
      expect(running).toMatchObject({ reason, message: `kubelet says ${reason}` });
      expect(eventsFor({}, status)[0]).toMatchObject({ type: "Warning", reason });
      const later = deriveStatus(
        { ...dj, status },
        { job: job({ active: 1 }), pods },
        "2025-01-01T00:01:11.000Z",
      );
      expect(later.phase).toBe("Failed");
      expect(findCondition(later.conditions, "Failed")).toMatchObject({ reason });
      expect(findCondition(later.conditions, "Failed")!.message).toMatch(
        new RegExp(`pendingDeadlineSeconds \\(60 s\\): kubelet says ${reason}$`),
      );
    },
  );
});

describe("a lost node", () => {
  const runningPod = (ready: "True" | "False", extra: object[] = []) => ({
    ...pod("p", {
      phase: "Running",
      podIP: "10.0.0.9",
      conditions: [{ type: "Ready", status: ready }, ...extra] as never,
      containerStatuses: [containerStatus({ running: {} }, "trainer", true)],
    }),
    spec: {
      containers: [],
      nodeName: "gpu-7",
      tolerations: [{ key: "node.kubernetes.io/unreachable", effect: "NoExecute", tolerationSeconds: 60 }],
    },
  });

  it("shows Running=Unknown/NodeUnreachable naming the node and what happens next", () => {
    const status = deriveStatus(
      distillationJob(),
      { job: job({ active: 1 }), pods: [runningPod("False")] },
      NOW,
    );
    const running = findCondition(status.conditions, "Running")!;
    expect(status.phase).toBe("Running");
    expect(running).toMatchObject({ status: "Unknown", reason: "NodeUnreachable" });
    expect(running.message).toMatch(/node gpu-7 of pod p stopped responding/);
    expect(running.message).toMatch(/unreachable for 60 s/);
    expect(running.message).toMatch(/resumes from the last checkpoint/);
    expect(eventsFor({ phase: "Running" }, status)[0]).toMatchObject({
      type: "Warning",
      reason: "NodeUnreachable",
    });
  });

  it("says the eviction has begun once the pod is a DisruptionTarget", () => {
    const evicted = runningPod("False", [
      { type: "DisruptionTarget", status: "True", reason: "DeletionByTaintManager" },
    ]);
    const status = deriveStatus(distillationJob(), { job: job({ active: 1 }), pods: [evicted] }, NOW);
    expect(findCondition(status.conditions, "Running")!.message).toMatch(
      /is evicting it \(DeletionByTaintManager\)/,
    );
  });

  it("is an ordinary running trainer while its node is fine", () => {
    const status = deriveStatus(
      distillationJob(),
      { job: job({ active: 1 }), pods: [runningPod("True")] },
      NOW,
    );
    expect(findCondition(status.conditions, "Running")).toMatchObject({
      status: "True",
      reason: "TrainerRunning",
    });
  });

  it("gives trainer pods the operator's not-ready/unreachable tolerationSeconds, unless the spec sets its own", () => {
    const tolerations = (spec: Parameters<typeof distillationJob>[0]) =>
      desiredJob(distillationJob(spec), { nodeLossTolerationSeconds: 45 }).spec!.template.spec!.tolerations;
    expect(tolerations({})).toEqual([
      { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute", tolerationSeconds: 45 },
      {
        key: "node.kubernetes.io/unreachable",
        operator: "Exists",
        effect: "NoExecute",
        tolerationSeconds: 45,
      },
    ]);
    const own = {
      key: "node.kubernetes.io/unreachable",
      operator: "Exists" as const,
      effect: "NoExecute" as const,
      tolerationSeconds: 900,
    };
    expect(tolerations({ runtime: { tolerations: [own] } })).toEqual([
      own,
      { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute", tolerationSeconds: 45 },
    ]);
    expect(desiredJob(distillationJob(), {}).spec!.template.spec!.tolerations).toBeUndefined();
  });
});
