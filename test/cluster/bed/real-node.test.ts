// The bed's real node (test/bed/node.ts): a kubelet on containerd registered as kwok-local-0 runs real
// containers with bridge IPs, and the kubernetes Service points at an address pods can reach.
import { CoreV1Api, DiscoveryV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_NODE } from "../../bed/config.ts";
import { adminKubeConfig, createTestNamespace, deleteNamespace, kubectl, waitFor } from "../../bed/env.ts";
import { PAUSE_IMAGE, POD_SUBNET } from "../../bed/node.ts";
import { holdRealNode, realNode } from "../e2e/real-node.ts";

const node = realNode();
let ns = "";
let core: CoreV1Api;

describe.skipIf(!node)("the real node", () => {
  let releaseNode: (() => void) | undefined;
  beforeAll(async () => {
    // Shared: a node-loss test stops the node's kubelet only while no other file uses the node.
    releaseNode = await holdRealNode("shared");
    core = adminKubeConfig().makeApiClient(CoreV1Api);
    ns = await createTestNamespace("bed-real-node");
  });
  afterAll(async () => {
    if (ns) await deleteNamespace(ns);
    releaseNode?.();
  });

  it("is kwok-local-0, Ready, run by the kubelet on containerd at a non-loopback InternalIP", async () => {
    const n = await core.readNode({ name: LOCAL_NODE });
    expect(n.status?.nodeInfo?.kubeletVersion).toBe("v1.36.3");
    expect(n.status?.nodeInfo?.containerRuntimeVersion).toMatch(/^containerd:\/\/1\./);
    const ip = n.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
    expect(ip).toBe(node!.nodeIp);
    expect(ip).not.toMatch(/^127\./);
    expect(n.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    // Its GPU capacity (from nodes.yaml) stays for GPU-asking pods; kwok's nodes keep theirs.
    expect(n.status?.capacity?.["nvidia.com/gpu"]).toBe("1");
  });

  it("runs a real container with an IP from the CNI bridge, and kubectl reaches it through the kubelet", async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "pause" },
        spec: {
          nodeSelector: { "kubernetes.io/hostname": LOCAL_NODE },
          tolerations: [{ key: "mokd.io/local-kubelet", operator: "Exists", effect: "NoSchedule" }],
          containers: [{ name: "main", image: PAUSE_IMAGE, imagePullPolicy: "Never" }],
        },
      },
    });
    const pod = await waitFor("pause pod Running", async () => {
      const p = await core.readNamespacedPod({ name: "pause", namespace: ns });
      return p.status?.phase === "Running" && p;
    });
    const prefix = POD_SUBNET.split(".").slice(0, 2).join(".");
    expect(pod.status?.podIP?.startsWith(`${prefix}.`), pod.status?.podIP).toBe(true);
    expect(pod.status?.containerStatuses?.[0]?.containerID).toMatch(/^containerd:\/\//);
    // The apiserver -> kubelet path (kubectl logs/exec use it): an empty log, but a 200.
    const logs = await kubectl(["logs", "-n", ns, "pause"]);
    expect(logs.code, logs.stderr).toBe(0);
  });

  it("has the kubernetes Service's endpoint at the node's address, where pods reach the apiserver", async () => {
    const discovery = adminKubeConfig().makeApiClient(DiscoveryV1Api);
    const slices = await discovery.listNamespacedEndpointSlice({
      namespace: "default",
      labelSelector: "kubernetes.io/service-name=kubernetes",
    });
    const addresses = slices.items.flatMap((s) => (s.endpoints ?? []).flatMap((e) => e.addresses));
    expect(addresses).toEqual([node!.nodeIp]);
  });
});
