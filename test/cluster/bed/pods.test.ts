// The scheduler and kwok are real: GPU requests are bound to GPU nodes, oversized ones stay Pending, and pod
// annotations script the outcome.
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminKubeConfig, createTestNamespace, deleteNamespace, waitFor } from "../../bed/env.ts";

const GPU_NODES = ["kwok-gpu-0", "kwok-gpu-1"];
let ns: string;
let core: CoreV1Api;

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(CoreV1Api);
  ns = await createTestNamespace("bed-pods");
});
afterAll(async () => {
  if (ns) await deleteNamespace(ns);
});

function gpuPod(name: string, gpus: number, annotations: Record<string, string> = {}): V1Pod {
  return {
    metadata: { name, annotations },
    spec: {
      restartPolicy: "Never",
      containers: [
        { name: "main", image: "trainer:test", resources: { limits: { "nvidia.com/gpu": String(gpus) } } },
      ],
    },
  };
}

const readPod = (name: string) => core.readNamespacedPod({ name, namespace: ns });

async function podInPhase(name: string, phase: string): Promise<V1Pod> {
  return waitFor(`pod ${name} ${phase}`, async () => {
    const pod = await readPod(name);
    return pod.status?.phase === phase && pod;
  });
}

/**
 * Evidence that kwok had its chance, instead of a sleep: a control pod created now, scripted to succeed after
 * `duration` (kwok's default when unset), has Succeeded. A pod that should not move on and has not by then would
 * have been moved by the same stages in the same time.
 */
async function controlPodFinished(name: string, duration?: string): Promise<void> {
  const annotations: Record<string, string> = { "kwok.mokd.io/outcome": "succeed" };
  if (duration) annotations["kwok.mokd.io/duration"] = duration;
  await core.createNamespacedPod({ namespace: ns, body: gpuPod(name, 1, annotations) });
  await podInPhase(name, "Succeeded");
}

describe("pods on the fake nodes", () => {
  it("binds a pod asking for one GPU to a GPU node, and it succeeds as its annotations say", async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: gpuPod("ok", 1, { "kwok.mokd.io/outcome": "succeed", "kwok.mokd.io/duration": "300ms" }),
    });
    const done = await podInPhase("ok", "Succeeded");
    expect(GPU_NODES).toContain(done.spec?.nodeName);
    expect(done.status?.containerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);
  });

  it("fails a pod with the scripted exit code and termination message", async () => {
    const annotations = {
      "kwok.mokd.io/outcome": "fail",
      "kwok.mokd.io/duration": "200ms",
      "kwok.mokd.io/exit-code": "3",
      "kwok.mokd.io/message": "CUDA out of memory",
    };
    await core.createNamespacedPod({ namespace: ns, body: gpuPod("bad", 2, annotations) });
    const failed = await podInPhase("bad", "Failed");
    const terminated = failed.status?.containerStatuses?.[0]?.state?.terminated;
    expect(terminated).toMatchObject({ exitCode: 3, reason: "Error", message: "CUDA out of memory" });
  });

  it("keeps a pod with a waiting reason Pending, its container waiting as a kubelet reports it", async () => {
    const annotations = {
      "kwok.mokd.io/waiting-reason": "ImagePullBackOff",
      "kwok.mokd.io/message": 'Back-off pulling image "trainer:nope"',
    };
    await core.createNamespacedPod({ namespace: ns, body: gpuPod("no-image", 1, annotations) });
    const waiting = await waitFor("the container waiting", async () => {
      const pod = await readPod("no-image");
      return pod.status?.containerStatuses?.[0]?.state?.waiting;
    });
    expect(waiting).toEqual({ reason: "ImagePullBackOff", message: 'Back-off pulling image "trainer:nope"' });
    await controlPodFinished("no-image-control", "1500ms"); // it never moves on by itself
    const pod = await readPod("no-image");
    expect(pod.status?.phase).toBe("Pending");
    expect(pod.status?.containerStatuses?.[0]?.state?.waiting?.reason).toBe("ImagePullBackOff");
    expect(GPU_NODES).toContain(pod.spec?.nodeName);
  });

  it("keeps a pod without an outcome annotation Running", async () => {
    await core.createNamespacedPod({ namespace: ns, body: gpuPod("forever", 1) });
    await podInPhase("forever", "Running");
    await controlPodFinished("forever-control"); // a pod scripted with the default duration has finished
    expect((await readPod("forever")).status?.phase).toBe("Running");
  });

  it("leaves a pod asking for more GPUs than any node has Pending and Unschedulable", async () => {
    await core.createNamespacedPod({ namespace: ns, body: gpuPod("too-big", 16) });
    const condition = await waitFor("PodScheduled=False", async () => {
      const pod = await readPod("too-big");
      return pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
    });
    expect(condition.reason).toBe("Unschedulable");
    expect(condition.message).toContain("nvidia.com/gpu");
    expect((await readPod("too-big")).status?.phase).toBe("Pending");
  });

  it("has kwok manage the fake nodes but not kwok-local-0", async () => {
    const nodes = (await core.listNode()).items;
    const ready = (name: string) =>
      nodes
        .find((n) => n.metadata?.name === name)
        ?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
    for (const name of [...GPU_NODES, "kwok-cpu-0"]) expect(ready(name), name).toBe(true);
    // kwok leaves kwok-local-0 alone: the bed's real kubelet (test/bed/node.ts) runs it, or nobody does.
    const local = nodes.find((n) => n.metadata?.name === "kwok-local-0");
    expect(local?.metadata?.annotations?.["kwok.x-k8s.io/node"]).toBeUndefined();
    const runtime = local?.status?.nodeInfo?.containerRuntimeVersion;
    if (runtime) expect(runtime).toMatch(/^containerd:\/\//);
    const gpu = nodes.find((n) => n.metadata?.name === "kwok-gpu-0");
    expect(gpu?.status?.allocatable?.["nvidia.com/gpu"]).toBe("15");
  });
});
