// The chart's API Priority and Fairness objects as real `helm template` renders them: the operator's Lease
// requests, and only those, in a priority level of their own that lends no seats to the burst of its writes.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../../..");
const CHART = join(ROOT, "charts/mokd-operator");

interface ResourceRule {
  verbs: string[];
  apiGroups: string[];
  resources: string[];
  namespaces?: string[];
}

interface Rendered {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: (ResourceRule & { subjects?: unknown[]; resourceRules?: ResourceRule[] })[];
  spec?: {
    type?: string;
    limited?: { nominalConcurrencyShares: number; lendablePercent: number; limitResponse: { type: string } };
    matchingPrecedence?: number;
    priorityLevelConfiguration?: { name: string };
    rules?: { subjects: unknown[]; resourceRules: ResourceRule[]; nonResourceRules?: unknown[] }[];
  };
}

let helm = "";
beforeAll(async () => {
  // The bed's helm (built once, cached; `helm template` needs no cluster).
  const { stdout } = await run("bash", [join(ROOT, "test/bed/build-binaries.sh"), "helm"], {
    maxBuffer: 1 << 20,
  });
  helm = stdout.trim().split("\n").pop()!;
}, 30 * 60_000);

async function render(values: string[] = [], namespace = "mokd-system"): Promise<Rendered[]> {
  const sets = values.flatMap((v) => ["--set", v]);
  const { stdout } = await run(helm, ["template", "mokd", CHART, "-n", namespace, ...sets]);
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as Rendered | null)
    .filter((d): d is Rendered => d !== null);
}

/** The PriorityLevelConfiguration and the FlowSchema (in that order), if rendered. */
const flowControl = (docs: Rendered[]) =>
  ["PriorityLevelConfiguration", "FlowSchema"].flatMap((kind) =>
    docs.filter((d) => d.apiVersion === "flowcontrol.apiserver.k8s.io/v1" && d.kind === kind),
  );

describe("the chart's priority for the leader's Lease", () => {
  it("puts the operator's Lease requests, and nothing else, in a level of their own", async () => {
    const docs = await render();
    const [level, schema] = flowControl(docs);
    expect([level?.kind, schema?.kind]).toEqual(["PriorityLevelConfiguration", "FlowSchema"]);
    expect(level!.metadata.namespace).toBeUndefined(); // cluster-scoped
    expect(schema!.spec!.priorityLevelConfiguration).toEqual({ name: level!.metadata.name });
    // Ahead of `service-accounts` (9000), where the operator's other requests go; behind `exempt` (1).
    expect(schema!.spec!.matchingPrecedence).toBeGreaterThan(1);
    expect(schema!.spec!.matchingPrecedence).toBeLessThan(9000);
    expect(schema!.spec!.rules).toEqual([
      {
        subjects: [
          {
            kind: "ServiceAccount",
            serviceAccount: { name: "mokd-mokd-operator", namespace: "mokd-system" },
          },
        ],
        resourceRules: [
          {
            verbs: ["get", "create", "update"],
            apiGroups: ["coordination.k8s.io"],
            resources: ["leases"],
            namespaces: ["mokd-system"],
          },
        ],
      },
    ]);
  });

  it("never lends its seats to the burst, and queues instead of rejecting", async () => {
    const [level] = flowControl(await render());
    expect(level!.spec!.type).toBe("Limited");
    expect(level!.spec!.limited).toMatchObject({ lendablePercent: 0, limitResponse: { type: "Queue" } });
    expect(level!.spec!.limited!.nominalConcurrencyShares).toBeGreaterThan(0);
  });

  it("covers every verb the leader-election Role grants on the Lease", async () => {
    const docs = await render();
    const role = docs.find((d) => d.kind === "Role" && d.metadata.name.endsWith("-leader-election"));
    const [, schema] = flowControl(docs);
    const granted = role!.rules!.find((r) => r.resources.includes("leases"))!.verbs;
    expect(schema!.spec!.rules![0]!.resourceRules[0]!.verbs.sort()).toEqual([...granted].sort());
  });

  it("follows the service account's name", async () => {
    const [, schema] = flowControl(await render(["serviceAccount.create=false", "serviceAccount.name=ops"]));
    expect(schema!.spec!.rules![0]!.subjects).toEqual([
      { kind: "ServiceAccount", serviceAccount: { name: "ops", namespace: "mokd-system" } },
    ]);
  });

  it("names its cluster-scoped objects after the release namespace: one release name in two namespaces", async () => {
    // Two releases watching their own namespaces (helm's objects are claimed per release and namespace).
    const names = async (ns: string) =>
      flowControl(await render([`watchNamespace=${ns}`], ns)).map((d) => d.metadata.name);
    const [a, b] = [await names("team-a"), await names("team-b")];
    expect(a).toEqual([
      "mokd-mokd-operator-team-a-leader-election",
      "mokd-mokd-operator-team-a-leader-election",
    ]);
    expect(b.filter((n) => a.includes(n))).toEqual([]);
  });

  it("is left out when turned off, or without leader election", async () => {
    expect(flowControl(await render(["leaderElection.apiPriority.enabled=false"]))).toEqual([]);
    expect(flowControl(await render(["leaderElection.enabled=false", "replicaCount=1"]))).toEqual([]);
  });
});
