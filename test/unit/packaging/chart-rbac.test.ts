// The chart's RBAC for the operator as real `helm template` renders it: a ClusterRole when it watches every
// namespace, one Role and RoleBinding per watched namespace (and nothing cluster-wide) when it watches a list.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../../..");
const CHART = join(ROOT, "charts/mokd-operator");

interface Rendered {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace: string }[];
  rules?: unknown[];
  spec?: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
}

let helm = "";
beforeAll(async () => {
  // The bed's helm (built once, cached; `helm template` needs no cluster).
  const { stdout } = await run("bash", [join(ROOT, "test/bed/build-binaries.sh"), "helm"], {
    maxBuffer: 1 << 20,
  });
  helm = stdout.trim().split("\n").pop()!;
}, 30 * 60_000);

async function render(values: string[]): Promise<Rendered[]> {
  const sets = values.flatMap((v) => ["--set", v]);
  const { stdout } = await run(helm, ["template", "mokd", CHART, "-n", "mokd-system", ...sets]);
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as Rendered | null)
    .filter((d): d is Rendered => d !== null);
}

/** The operator's own RBAC objects (not the leader-election Role, not the users' aggregated roles). */
const operatorRbac = (docs: Rendered[]) =>
  docs.filter((d) => /Role(Binding)?$/.test(d.kind) && d.metadata.name === "mokd-mokd-operator");

describe("the operator's RBAC in the chart", () => {
  it("is one ClusterRole and binding when the operator watches every namespace", async () => {
    const rbac = operatorRbac(await render([]));
    expect(rbac.map((d) => [d.kind, d.metadata.namespace])).toEqual([
      ["ClusterRole", undefined],
      ["ClusterRoleBinding", undefined],
    ]);
    expect(rbac[1]!.roleRef).toEqual({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: rbac[0]!.metadata.name,
    });
  });

  it("is a Role and RoleBinding in each watched namespace, nothing cluster-wide, bound to the release's account", async () => {
    const docs = await render(["watchNamespaces={team-a,team-b}", "watchNamespace=team-c"]);
    const rbac = operatorRbac(docs);
    expect(rbac.map((d) => `${d.kind}/${d.metadata.namespace}`).sort()).toEqual([
      "Role/team-a",
      "Role/team-b",
      "Role/team-c",
      "RoleBinding/team-a",
      "RoleBinding/team-b",
      "RoleBinding/team-c",
    ]);
    expect(docs.filter((d) => d.kind.startsWith("Cluster")).map((d) => d.kind)).toEqual([]);
    const roles = rbac.filter((d) => d.kind === "Role");
    expect(new Set(roles.map((r) => JSON.stringify(r.rules))).size).toBe(1);
    for (const binding of rbac.filter((d) => d.kind === "RoleBinding")) {
      expect(binding.roleRef).toMatchObject({ kind: "Role", name: "mokd-mokd-operator" });
      expect(binding.subjects).toEqual([
        { kind: "ServiceAccount", name: "mokd-mokd-operator", namespace: "mokd-system" },
      ]);
    }
  });

  it("tells the operator which namespaces to watch", async () => {
    const docs = await render(["watchNamespaces={team-a,team-b}"]);
    const env = docs.find((d) => d.kind === "Deployment")!.spec!.template.spec.containers[0]!.env;
    expect(env).toContainEqual({ name: "MOKD_OPERATOR_NAMESPACES", value: "team-a,team-b" });
    expect(env.map((e) => e.name)).not.toContain("MOKD_OPERATOR_NAMESPACE");
  });

  it("refuses a namespace listed twice or a name that is not a namespace", async () => {
    await expect(render(["watchNamespaces={team-a,team-a}"])).rejects.toThrow(/watchNamespaces/);
    await expect(render(["watchNamespaces={Team_A}"])).rejects.toThrow(/watchNamespaces/);
  });
});
