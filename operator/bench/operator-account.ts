// The operator's service account as the chart makes it (its RBAC and its API Priority and Fairness objects),
// for the scale bench's `--as-service-account`: the bench's proxy then forwards the operator's requests as that
// account, so the apiserver authorizes and prioritizes them as in a cluster (as admin, APF exempts them all).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

/** What the chart renders that the operator's identity needs: no Deployment, no CRDs, no users' roles. */
const KINDS = new Set([
  "ServiceAccount",
  "ClusterRole",
  "ClusterRoleBinding",
  "Role",
  "RoleBinding",
  "FlowSchema",
  "PriorityLevelConfiguration",
]);

/** The release's full name: cluster-scoped objects of the bench are named after it. */
const RELEASE_FULLNAME = "mokd-bench-operator";

function run(command: string, args: string[], input?: string): string {
  // helm and kubectl of the bed: `node test/bed/cli.ts run` puts them on the PATH and sets KUBECONFIG.
  const result = spawnSync(command, args, { input, encoding: "utf8", maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`${command} ${args[0]}: ${result.stderr || result.error}`);
  return result.stdout;
}

/**
 * Applies the chart's objects for the operator's identity, the release in `namespace` (where the Lease is);
 * returns the account's user name (system:serviceaccount:<namespace>:<name>).
 */
export function installOperatorAccount(root: string, namespace: string): string {
  const manifest = run("helm", [
    "template",
    "mokd",
    join(root, "charts/mokd-operator"),
    "-n",
    namespace,
    "--set",
    `fullnameOverride=${RELEASE_FULLNAME}`,
    "--set",
    "crds.enabled=false",
    "--set",
    "rbac.aggregateToDefaultRoles=false",
  ]);
  const objects = parseAllDocuments(manifest)
    .map((d) => d.toJS() as { kind?: string } | null)
    .filter((o) => o?.kind && KINDS.has(o.kind));
  const kinds = new Set(objects.map((o) => o!.kind));
  for (const kind of ["ServiceAccount", "FlowSchema"]) {
    if (!kinds.has(kind)) throw new Error(`the chart rendered no ${kind}`);
  }
  run("kubectl", ["apply", "-f", "-"], objects.map((o) => JSON.stringify(o)).join("\n"));
  return `system:serviceaccount:${namespace}:${RELEASE_FULLNAME}`;
}
