// Crash and failover: SIGKILL in the middle of a burst, two replicas behind one Lease, graceful hand-over.
// The invariant: exactly one child Job (and ConfigMap) per DistillationJob, never recreated.
import { BatchV1Api, CoreV1Api, type V1Job } from "@kubernetes/client-node";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createTestNamespace, deleteNamespace, waitFor } from "../../bed/env.ts";
import {
  ensureCrd,
  Jobs,
  operatorIdentity,
  removeIdentity,
  startOperator,
  type OperatorProcess,
} from "./harness.ts";

const namespaces: string[] = [];
const operators: OperatorProcess[] = [];
let failed = false;
afterEach(({ task }) => {
  if (task.result?.state === "fail") failed = true;
});
afterAll(async () => {
  await Promise.all(operators.map((o) => o.kill("SIGKILL")));
  if (failed) operators.forEach((o, i) => console.log(`--- operator ${i}\n${o.logs()}`));
  for (const ns of namespaces) {
    await deleteNamespace(ns);
    await removeIdentity(ns);
  }
});

async function setup(prefix: string) {
  const ns = await createTestNamespace(prefix);
  namespaces.push(ns);
  await ensureCrd();
  const kubeconfig = await operatorIdentity(ns);
  const jobs = new Jobs(ns);
  const start = (args: string[] = []) => {
    const o = startOperator(kubeconfig, ns, args);
    operators.push(o);
    return o;
  };
  return {
    ns,
    jobs,
    start,
    batch: jobs.kc.makeApiClient(BatchV1Api),
    core: jobs.kc.makeApiClient(CoreV1Api),
  };
}

/** Child Jobs grouped by their owner's uid. */
function childrenByOwner(items: V1Job[]): Map<string, V1Job[]> {
  const byOwner = new Map<string, V1Job[]>();
  for (const j of items) {
    const uid = j.metadata?.ownerReferences?.find((r) => r.controller)?.uid ?? "none";
    byOwner.set(uid, [...(byOwner.get(uid) ?? []), j]);
  }
  return byOwner;
}

const leading = (o: OperatorProcess) => /"message":"leading"/.test(o.logs());

describe.concurrent("operator resilience", () => {
  it("creates exactly one child per job after a SIGKILL in the middle of a burst", async () => {
    const { ns, jobs, start, batch, core } = await setup("op-crash");
    const N = 40;
    const created = await Promise.all(
      Array.from({ length: N }, (_, i) => jobs.create(`burst-${i}`, { runtime: { gpus: 0 } })),
    );
    const first = start(["--no-leader-elect", "--concurrency=2"]);
    await waitFor(
      "first children",
      async () => (await batch.listNamespacedJob({ namespace: ns })).items.length >= 3,
      60_000,
      20,
    );
    await first.kill("SIGKILL");
    const atKill = (await batch.listNamespacedJob({ namespace: ns })).items.length;
    console.log(`children when killed: ${atKill}/${N}`);
    start(["--no-leader-elect"]);
    const all = await waitFor(
      "every child",
      async () => {
        const list = await batch.listNamespacedJob({ namespace: ns });
        return list.items.length >= N ? list.items : undefined;
      },
      90_000,
    );
    await new Promise((r) => setTimeout(r, 1000)); // a late duplicate would show up now
    const byOwner = childrenByOwner((await batch.listNamespacedJob({ namespace: ns })).items);
    expect(all.length).toBe(N);
    expect(byOwner.size).toBe(N);
    for (const dj of created) expect(byOwner.get(dj.metadata.uid)).toHaveLength(1);
    expect(
      (
        await core.listNamespacedConfigMap({
          namespace: ns,
          labelSelector: "app.kubernetes.io/managed-by=mokd-operator",
        })
      ).items,
    ).toHaveLength(N);
  });

  it("runs one leader of two replicas, fails over when it dies, and never creates twice", async () => {
    const { ns, jobs, start, batch } = await setup("op-leader");
    const replicas = [start(), start()];
    await waitFor("a leader", async () => replicas.some(leading), 30_000);
    // Not a sleep: once the other replica has read the Lease (it logs the holder it saw), it stays a standby.
    const sawLeader = (o: OperatorProcess) => /"message":"leader"/.test(o.logs());
    await waitFor(
      "the standby sees the lease held",
      async () => replicas.every((r) => leading(r) || sawLeader(r)),
      30_000,
      100,
    );
    expect(replicas.filter(leading)).toHaveLength(1);
    const leader = replicas.find(leading)!;
    const standby = replicas.find((r) => r !== leader)!;

    await Promise.all(
      Array.from({ length: 10 }, (_, i) => jobs.create(`before-${i}`, { runtime: { gpus: 0 } })),
    );
    const before = await waitFor("children before failover", async () => {
      const l = await batch.listNamespacedJob({ namespace: ns });
      return l.items.length === 10 ? l.items : undefined;
    });
    const uids = new Map(before.map((j) => [j.metadata!.name!, j.metadata!.uid!]));

    await leader.kill("SIGKILL");
    const killedAt = Date.now();
    await waitFor("standby takes over", async () => leading(standby), 45_000);
    console.log(`takeover after SIGKILL: ${Date.now() - killedAt} ms`);
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => jobs.create(`after-${i}`, { runtime: { gpus: 0 } })),
    );
    const after = await waitFor("children after failover", async () => {
      const l = await batch.listNamespacedJob({ namespace: ns });
      return l.items.length >= 20 ? l.items : undefined;
    });
    expect(after).toHaveLength(20);
    for (const j of after.filter((j) => j.metadata!.name!.startsWith("before-"))) {
      expect(j.metadata!.uid).toBe(uids.get(j.metadata!.name!)); // not recreated by the new leader
    }

    // Graceful: SIGTERM releases the Lease, so a fresh replica leads well before the 15 s lease would expire.
    const third = start();
    // Not a sleep: once the third replica has read the Lease (it logs the holder it saw), a held, unexpired Lease
    // keeps it from leading until the standby lets go.
    await waitFor(
      "third replica sees the lease held",
      async () => /"message":"leader"/.test(third.logs()),
      15_000,
      100,
    );
    expect(leading(third)).toBe(false);
    const stoppedAt = Date.now();
    expect(await standby.kill("SIGTERM")).toBe(0);
    await waitFor("third replica leads", async () => leading(third), 15_000, 100);
    const handover = Date.now() - stoppedAt;
    console.log(`hand-over after SIGTERM: ${handover} ms`);
    expect(handover).toBeLessThan(10_000);
  });
});
