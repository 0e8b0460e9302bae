// The controller-manager is real: the Job controller runs Jobs and the garbage collector removes dependents.
import { BatchV1Api, CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminKubeConfig, createTestNamespace, deleteNamespace, waitFor } from "../../bed/env.ts";

let ns: string;
let core: CoreV1Api;
let batch: BatchV1Api;

beforeAll(async () => {
  const kc = adminKubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  batch = kc.makeApiClient(BatchV1Api);
  ns = await createTestNamespace("bed-controllers");
});
afterAll(async () => {
  if (ns) await deleteNamespace(ns);
});

async function gone(what: string, read: () => Promise<unknown>): Promise<void> {
  await waitFor(what, async () => {
    try {
      await read();
      return false;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return true;
      throw err;
    }
  });
}

describe("controller-manager", () => {
  it("completes a batch/v1 Job through a pod created by the Job controller, and garbage-collects its pods", async () => {
    await batch.createNamespacedJob({
      namespace: ns,
      body: {
        metadata: { name: "hello" },
        spec: {
          backoffLimit: 0,
          template: {
            metadata: {
              annotations: { "kwok.mokd.io/outcome": "succeed", "kwok.mokd.io/duration": "300ms" },
            },
            spec: { restartPolicy: "Never", containers: [{ name: "main", image: "trainer:test" }] },
          },
        },
      },
    });
    const job = await waitFor("Job hello Complete", async () => {
      const j = await batch.readNamespacedJob({ name: "hello", namespace: ns });
      return j.status?.conditions?.some((c) => c.type === "Complete" && c.status === "True") && j;
    });
    expect(job.status?.succeeded).toBe(1);
    const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: "job-name=hello" })).items;
    expect(pods).toHaveLength(1);
    expect(pods[0]?.status?.phase).toBe("Succeeded");

    await batch.deleteNamespacedJob({ name: "hello", namespace: ns, propagationPolicy: "Background" });
    await waitFor("pods of Job hello garbage-collected", async () => {
      const left = await core.listNamespacedPod({ namespace: ns, labelSelector: "job-name=hello" });
      return left.items.length === 0;
    });
  });

  it("garbage-collects a ConfigMap owned by a deleted ConfigMap", async () => {
    const owner = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "owner" } },
    });
    const ownerReferences = [
      { apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata!.uid! },
    ];
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "owned", ownerReferences } },
    });
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "bystander" } } });

    await core.deleteNamespacedConfigMap({ name: "owner", namespace: ns });
    await gone("ConfigMap owned", () => core.readNamespacedConfigMap({ name: "owned", namespace: ns }));
    // The collector removed only what the owner owned.
    expect((await core.readNamespacedConfigMap({ name: "bystander", namespace: ns })).metadata?.name).toBe(
      "bystander",
    );
  });
});
