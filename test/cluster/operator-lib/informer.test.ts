import { CoreV1Api, type V1ConfigMap } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { watchResource, type WatchEventType } from "../../../operator/src/lib/informer.ts";
import { adminKubeConfig, createTestNamespace, deleteNamespace, waitFor } from "../../bed/env.ts";
import { startApiProxy, type ApiProxy } from "../../../operator/bench/api-proxy.ts";

const LABEL = "lib-informer-test";

describe("watchResource on a real apiserver", () => {
  let namespace: string;
  let core: CoreV1Api;
  let proxy: ApiProxy;

  beforeAll(async () => {
    namespace = await createTestNamespace("lib-informer");
    core = adminKubeConfig().makeApiClient(CoreV1Api);
    proxy = await startApiProxy(adminKubeConfig());
  });
  afterAll(async () => {
    await proxy?.close();
    if (namespace) await deleteNamespace(namespace);
  });

  const createCm = (name: string, value = "1") =>
    core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name, labels: { [LABEL]: "yes" } }, data: { value } },
    });
  const setValue = (name: string, value: string) =>
    core.patchNamespacedConfigMap({ name, namespace, body: [{ op: "replace", path: "/data/value", value }] });

  function startInformer() {
    const events: [WatchEventType, string, string | undefined][] = [];
    const errors: unknown[] = [];
    const informer = watchResource<V1ConfigMap>({
      kubeConfig: proxy.kubeConfig(),
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      labelSelector: `${LABEL}=yes`,
      minBackoffMs: 200,
      maxBackoffMs: 1000,
      onEvent: (type, cm) => events.push([type, cm.metadata!.name!, cm.data?.value]),
      onError: (error) => errors.push(error),
    });
    const cacheState = () =>
      informer
        .list()
        .map((cm) => `${cm.metadata!.name}=${cm.data?.value}`)
        .sort();
    return { informer, events, errors, cacheState };
  }

  it("lists, then sees create, update and delete through the watch", async () => {
    await createCm("before");
    const { informer, events, cacheState } = startInformer();
    await informer.start();
    try {
      expect(informer.hasSynced()).toBe(true);
      expect(events).toEqual([["ADDED", "before", "1"]]);
      await createCm("a");
      await setValue("a", "2");
      await core.deleteNamespacedConfigMap({ name: "before", namespace });
      await waitFor("the delete to reach the informer", async () => events.length >= 4);
      expect(events.slice(1)).toEqual([
        ["ADDED", "a", "1"],
        ["MODIFIED", "a", "2"],
        ["DELETED", "before", "1"],
      ]);
      expect(cacheState()).toEqual(["a=2"]);
      expect(informer.get(namespace, "a")?.data?.value).toBe("2");
      expect(informer.get(namespace, "before")).toBeUndefined();
      expect(informer.get(namespace, "a")?.metadata?.managedFields).toBeUndefined(); // stripped to save memory
    } finally {
      informer.stop();
      await core.deleteNamespacedConfigMap({ name: "a", namespace });
    }
  });

  it("survives a dropped connection and replays what changed meanwhile after a 410 relist", async () => {
    await createCm("keep");
    await createCm("remove");
    const { informer, events, errors, cacheState } = startInformer();
    await informer.start();
    try {
      expect(cacheState()).toEqual(["keep=1", "remove=1"]);
      proxy.setMode("down"); // the watch breaks; reconnects are refused
      await core.deleteNamespacedConfigMap({ name: "remove", namespace });
      await setValue("keep", "2");
      await createCm("new");
      await waitFor("the informer to notice the broken watch", async () => errors.length > 0);
      proxy.failWatchesWithGone(1); // its resourceVersion is now "too old": it must relist
      proxy.setMode("pass");
      await waitFor("the cache to catch up", async () => cacheState().join() === "keep=2,new=1", 15_000);
      // The relist was replayed as events, including the deletion that happened while disconnected.
      expect(events.slice(2)).toEqual(
        expect.arrayContaining([
          ["MODIFIED", "keep", "2"],
          ["ADDED", "new", "1"],
          ["DELETED", "remove", "1"],
        ]),
      );
      const lists = proxy.requests.filter((r) => r.includes("/configmaps?") && !r.includes("watch="));
      expect(lists.length).toBeGreaterThanOrEqual(2); // initial list + relist after the 410
      // And it keeps watching after recovery.
      await setValue("keep", "3");
      await waitFor(
        "an update after recovery",
        async () => informer.get(namespace, "keep")?.data?.value === "3",
      );
    } finally {
      informer.stop();
    }
  });

  it("reconnects after server-side watch timeouts without polling", async () => {
    const { informer, cacheState } = startInformer();
    const watchRequests = () => proxy.requests.filter((r) => r.includes("watch=1")).length;
    // 1 s server-side timeout: the watch ends normally every second and must resume from its resourceVersion.
    const short = watchResource<V1ConfigMap>({
      kubeConfig: proxy.kubeConfig(),
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      labelSelector: `${LABEL}=yes`,
      watchTimeoutSeconds: 1,
      onEvent: () => undefined,
    });
    await Promise.all([informer.start(), short.start()]);
    try {
      const before = proxy.requests.length;
      const watchesBefore = watchRequests();
      const startedAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 3500));
      await createCm("late");
      // Both watches must deliver it; they are independent streams, so wait for each.
      await waitFor(
        "the late create",
        async () =>
          short.get(namespace, "late") !== undefined && informer.get(namespace, "late") !== undefined,
      );
      const elapsedSeconds = (Date.now() - startedAt) / 1000;
      // Only new watches (about one per second for `short`), no lists: nothing polls, no hot loop.
      const since = proxy.requests.slice(before);
      expect(since.every((r) => r.includes("watch=1"))).toBe(true);
      expect(watchRequests() - watchesBefore).toBeGreaterThanOrEqual(2);
      expect(watchRequests() - watchesBefore).toBeLessThanOrEqual(Math.ceil(elapsedSeconds) + 2);
      expect(cacheState()).toContain("late=1");
    } finally {
      informer.stop();
      short.stop();
    }
  });
});
