import { CoreV1Api, EventsV1Api, type EventsV1Event } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventRecorder } from "../../../operator/src/lib/events.ts";
import { adminKubeConfig, createTestNamespace, deleteNamespace, waitFor } from "../../bed/env.ts";

describe("EventRecorder on a real apiserver", () => {
  let namespace: string;
  let regarding: {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace: string; uid: string };
  };

  beforeAll(async () => {
    namespace = await createTestNamespace("lib-events");
    const cm = await adminKubeConfig()
      .makeApiClient(CoreV1Api)
      .createNamespacedConfigMap({ namespace, body: { metadata: { name: "subject" } } });
    regarding = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "subject", namespace, uid: cm.metadata!.uid! },
    };
  });
  afterAll(async () => {
    if (namespace) await deleteNamespace(namespace);
  });

  const listEvents = async (): Promise<EventsV1Event[]> =>
    (await adminKubeConfig().makeApiClient(EventsV1Api).listNamespacedEvent({ namespace })).items;

  it("writes events.k8s.io/v1 Events and aggregates identical ones into a series", async () => {
    const recorder = new EventRecorder({
      kubeConfig: adminKubeConfig(),
      component: "mokd.io/lib-test",
      instance: "test-instance",
      seriesFlushMs: 200,
    });
    recorder.record(regarding, "Normal", "Created", "created child Job");
    for (let i = 0; i < 5; i++) recorder.record(regarding, "Warning", "BackOff", "pod failed");
    await recorder.flush();
    await new Promise((resolve) => setTimeout(resolve, 400)); // the coalesced series flush
    await recorder.flush();

    const events = await waitFor("two Events", async () => {
      const items = await listEvents();
      const backOff = items.find((e) => e.reason === "BackOff");
      return items.length === 2 && backOff?.series?.count === 5 ? items : undefined;
    });
    const created = events.find((e) => e.reason === "Created")!;
    expect(created).toMatchObject({
      type: "Normal",
      note: "created child Job",
      reportingController: "mokd.io/lib-test",
      reportingInstance: "test-instance",
      regarding: { kind: "ConfigMap", name: "subject", uid: regarding.metadata.uid },
    });
    expect(created.series).toBeUndefined();
    const backOff = events.find((e) => e.reason === "BackOff")!;
    expect(backOff).toMatchObject({ type: "Warning", note: "pod failed", series: { count: 5 } });
  });

  it("never throws, even when the apiserver refuses the event", async () => {
    const errors: unknown[] = [];
    const recorder = new EventRecorder({
      kubeConfig: adminKubeConfig(),
      component: "mokd.io/lib-test",
      onError: (error) => errors.push(error),
    });
    const missingNamespace = {
      ...regarding,
      metadata: { ...regarding.metadata, namespace: "no-such-namespace" },
    };
    expect(() => recorder.record(missingNamespace, "Normal", "Created", "x")).not.toThrow();
    await recorder.flush();
    expect(errors).toHaveLength(1);
  });
});
