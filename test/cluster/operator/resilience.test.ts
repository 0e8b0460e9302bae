// Crash and failover: SIGKILL in the middle of a burst, two replicas behind one Lease, graceful hand-over.
// The invariant: exactly one child Job (and ConfigMap) per DistillationJob, never recreated.
import { BatchV1Api, CoreV1Api, type V1Job } from "@kubernetes/client-node";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ExtraApiserver } from "../../bed/apiserver.ts";
import { createTestNamespace, deleteNamespace, kubeconfigPath, waitFor } from "../../bed/env.ts";
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
  const start = (args: string[] = [], via = kubeconfig) => {
    const o = startOperator(via, ns, args);
    operators.push(o);
    return o;
  };
  return {
    ns,
    jobs,
    kubeconfig,
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
    // Instead of a sleep: every job's status names its child, written by the second operator after it saw that
    // child. A duplicate create (from either process) would have been issued before these writes.
    await Promise.all(
      created.map((dj) =>
        jobs.waitStatus(dj.metadata.name, "status names its child", (st) => st.jobName !== undefined, 90_000),
      ),
    );
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

  it("finishes in-flight jobs after an upgrade to another trainer image, and uses it for new jobs", async () => {
    const { jobs, start, batch, ns } = await setup("op-upgrade");
    const image = (tag: string) => `registry.invalid/mokd/trainer:${tag}`;
    const jobImage = async (name: string) =>
      (await batch.readNamespacedJob({ name, namespace: ns })).spec!.template.spec!.containers[0]!.image;
    const old = start(["--no-leader-elect", `--trainer-image=${image("old")}`]);
    const run = (outcome: string, extra: Record<string, string> = {}) => ({
      "kwok.mokd.io/outcome": outcome,
      "kwok.mokd.io/duration": "15s",
      ...extra,
    });
    await jobs.create("ok", { runtime: { gpus: 0 } }, run("succeed"));
    await jobs.create("bad", { runtime: { gpus: 0 } }, run("fail", { "kwok.mokd.io/exit-code": "2" }));
    await Promise.all([jobs.waitPhase("ok", "Running"), jobs.waitPhase("bad", "Running")]);
    expect(await old.kill("SIGTERM")).toBe(0);
    const upgraded = start(["--no-leader-elect", `--trainer-image=${image("new")}`]);
    // The new operator builds another pod template, which the running Jobs cannot take (it is immutable).
    await jobs.waitPhase("ok", "Succeeded", 90_000);
    const bad = await jobs.waitPhase("bad", "Failed", 90_000);
    expect(bad.status!.conditions!.find((c) => c.type === "Failed")!.reason).toBe("BadConfig");
    expect(await jobImage("ok")).toBe(image("old"));
    await jobs.create("next", { runtime: { gpus: 0 } }, run("succeed", { "kwok.mokd.io/duration": "1s" }));
    await jobs.waitPhase("next", "Succeeded", 90_000);
    expect(await jobImage("next")).toBe(image("new"));
    expect(upgraded.logs()).not.toContain("reconcile failed");
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

/** The HTTP status of one of the operator's probes (on the port it logged at start), or 0 while unreadable. */
async function probe(o: OperatorProcess, path: "/readyz" | "/healthz"): Promise<number> {
  const port = /"port":(\d+)/.exec(o.logs())?.[1];
  if (!port) return 0;
  return fetch(`http://127.0.0.1:${port}${path}`).then(
    (r) => r.status,
    () => 0,
  );
}

// The operator talks to an apiserver of its own (a second one over the bed's etcd: test/bed/apiserver.ts),
// which is SIGKILLed and started again; jobs are created and finish through the bed's apiserver meanwhile.
describe("operator across a restart of its apiserver", () => {
  const apiservers: ExtraApiserver[] = [];
  afterAll(async () => {
    await Promise.all(apiservers.map((a) => a.stop()));
  });
  const run = (duration: string) => ({
    "kwok.mokd.io/outcome": "succeed",
    "kwok.mokd.io/duration": duration,
  });

  it.each([
    // Renewals fail for the outage plus the restarted apiserver's start, and it answers 403 until its RBAC
    // cache has synced (over 6 s on the loaded 2 cores: a run lost the Lease to client-go's 10 s deadline, as
    // it should). The renew deadline here is 45 s, so the case tests what it names, a leader that keeps its
    // Lease through failed renewals and catches up, whatever the machine's load.
    {
      outage: "short",
      outageMs: 3000,
      args: ["--leader-elect-lease-duration=60", "--leader-elect-renew-deadline=45"],
    },
    // Longer than the 15 s lease: a leader would exit on purpose (and be restarted by its kubelet); without
    // leader election the watches themselves must come back.
    { outage: "long", outageMs: 40_000, args: ["--no-leader-elect", "--unhealthy-after-seconds=20"] },
  ])(
    "catches up within seconds of a $outage outage: new jobs get a child, finished ones show Succeeded",
    { timeout: 300_000 },
    async ({ outageMs, args }) => {
      const { jobs, start, kubeconfig, batch, ns } = await setup("op-apiserver");
      const apiserver = await ExtraApiserver.start(kubeconfigPath());
      apiservers.push(apiserver);
      const viaExtra = start(args, apiserver.kubeconfigFor(kubeconfig));
      await jobs.create("before", { runtime: { gpus: 0 } }, run("1s"));
      await jobs.waitPhase("before", "Succeeded", 90_000);
      await waitFor("ready", async () => (await probe(viaExtra, "/readyz")) === 200, 30_000);
      // Finishes while the operator's apiserver is down.
      await jobs.create(
        "inflight",
        { runtime: { gpus: 0 } },
        run(`${Math.max(2, Math.round(outageMs / 3000))}s`),
      );
      await jobs.waitPhase("inflight", "Running", 60_000);

      await apiserver.kill();
      await jobs.create("during", { runtime: { gpus: 0 } }, run("1s"));
      const outageEnds = Date.now() + outageMs;
      if (outageMs > 20_000) {
        // Readiness fails while an informer cannot list or watch, and liveness once that has lasted
        // --unhealthy-after-seconds: the chart's livenessProbe would have the kubelet restart it.
        await waitFor(
          "readyz 503 during the outage",
          async () => (await probe(viaExtra, "/readyz")) === 503,
          outageMs - 5000,
        );
        await waitFor(
          "healthz 503 during the outage",
          async () => (await probe(viaExtra, "/healthz")) === 503,
          outageMs - 5000,
        );
      }
      await new Promise((r) => setTimeout(r, Math.max(0, outageEnds - Date.now())));
      await apiserver.restart();
      const back = Date.now();

      await jobs.create("after", { runtime: { gpus: 0 } }, run("1s"));
      const recovered = 30_000;
      await Promise.all([
        jobs.waitPhase("inflight", "Succeeded", recovered),
        jobs.waitPhase("during", "Succeeded", recovered),
        jobs.waitPhase("after", "Succeeded", recovered),
      ]);
      console.log(
        `recovered ${Date.now() - back} ms after the apiserver was ready again (outage ${outageMs} ms)`,
      );
      expect((await batch.readNamespacedJob({ name: "after", namespace: ns })).metadata?.name).toBe("after");
      await waitFor(
        "ready and live again",
        async () => (await probe(viaExtra, "/readyz")) === 200 && (await probe(viaExtra, "/healthz")) === 200,
        10_000,
      );
      expect(viaExtra.child.exitCode).toBeNull(); // it recovered by itself, without a restart
    },
  );
});
