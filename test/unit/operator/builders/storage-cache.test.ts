// The fetch initializer's cache volume: the pod's emptyDir by default (gone with the pod: a retry downloads
// again), the user's claim with spec.storage.cache (kept: a retry or resume that mounts it downloads nothing).
import { describe, expect, it } from "vitest";
import { buildJob } from "../../../../operator/src/builders/job.ts";
import { CACHE_DIR } from "../../../../operator/src/builders/storage.ts";
import { distillationJob } from "../../../fixtures/kube-objects.ts";

const remote = (storage: Record<string, unknown> = {}) =>
  distillationJob({ data: { path: "s3://datasets/fashion-mnist/" }, storage });

function cacheOf(storage?: Record<string, unknown>) {
  const pod = buildJob(remote(storage)).spec!.template.spec!;
  const volume = pod.volumes?.find((v) => v.name === "storage-cache");
  const mounts = [...pod.initContainers!, ...pod.containers].map((c) =>
    c.volumeMounts?.find((m) => m.name === "storage-cache"),
  );
  return { volume, mounts };
}

describe("the fetch cache volume", () => {
  it("is an emptyDir by default, mounted in the initializer and the trainer", () => {
    const { volume, mounts } = cacheOf();
    expect(volume).toEqual({ name: "storage-cache", emptyDir: {} });
    expect(mounts).toEqual([
      { name: "storage-cache", mountPath: CACHE_DIR },
      { name: "storage-cache", mountPath: CACHE_DIR },
    ]);
  });

  it("is the named claim with spec.storage.cache", () => {
    const { volume, mounts } = cacheOf({ cache: { claimName: "fetch-cache" } });
    expect(volume).toEqual({ name: "storage-cache", persistentVolumeClaim: { claimName: "fetch-cache" } });
    expect(mounts.every((m) => m?.mountPath === CACHE_DIR)).toBe(true);
  });
});
