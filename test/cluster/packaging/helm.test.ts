// The chart against the real control plane: lint, server-side dry runs of every rendering, and a release's
// life (install, upgrade with a CRD change, uninstall keeping the CRD) with the bed's helm and kubectl.
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { CHART_DIR, CRD_PATH } from "../../../scripts/generate.ts";
import { parseDistillationJob } from "../../../api/v1alpha1/index.ts";
import { buildJob } from "../../../operator/src/builders/job.ts";
import { loadConfig } from "../../../operator/src/config.ts";
import type { OwnerJob } from "../../../operator/src/builders/common.ts";
import {
  binDir,
  createTestNamespace,
  deleteNamespace,
  kubeconfigPath,
  kubectl,
  serviceAccountKubeconfig,
  waitCrdEstablished,
  waitFor,
} from "../../bed/env.ts";
import { ensureCrd, Jobs, startOperator, type OperatorProcess } from "../operator/harness.ts";

const run = promisify(execFile);
const CRD_NAME = "distillationjobs.distillation.mokd.io";
/** The chart installs the DistillationStudy CRD beside the job's; other tests apply it too. */
const STUDY_CRD_NAME = "distillationstudies.distillation.mokd.io";

/** Lets `release` adopt the chart's CRDs that exist already (created from crds/ by other tests), as users would. */
async function adoptCrds(release: string, releaseNamespace: string): Promise<void> {
  for (const name of [CRD_NAME, STUDY_CRD_NAME]) {
    if ((await kubectl(["get", "crd", name])).code !== 0) continue;
    await kubectl(["label", "crd", name, "app.kubernetes.io/managed-by=Helm", "--overwrite"]);
    // prettier-ignore
    await kubectl(["annotate", "crd", name, `meta.helm.sh/release-name=${release}`,
      `meta.helm.sh/release-namespace=${releaseNamespace}`, "--overwrite"]);
  }
}
const CHART_CRD = join("files", "crds", "distillation.mokd.io_distillationjobs.yaml");
const MONITORING_ON = [
  "serviceMonitor.enabled=true",
  "podMonitor.enabled=true",
  "prometheusRule.enabled=true",
];
const EVERYTHING_ON = [
  ...MONITORING_ON,
  "networkPolicy.enabled=true",
  "networkPolicy.trainerNamespaces={team-a}",
  "networkPolicy.trainerEgress.restrict=true",
  "podDisruptionBudget.enabled=true",
];

async function helm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(
      join(binDir(), "helm"),
      [`--kubeconfig=${kubeconfigPath()}`, ...args],
      {
        maxBuffer: 64 << 20,
      },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

const setArgs = (values: string[]) => values.flatMap((v) => ["--set", v]);

async function render(namespace: string, values: string[] = [], chart = CHART_DIR): Promise<string> {
  const r = await helm(["template", "mokd", chart, "-n", namespace, ...setArgs(values)]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

function kinds(manifest: string): string[] {
  return parseAllDocuments(manifest)
    .map((d) => d.toJS() as { kind?: string } | null)
    .flatMap((o) => (o?.kind ? [o.kind] : []));
}

async function dryRun(manifest: string): Promise<void> {
  const r = await kubectl(["apply", "--dry-run=server", "-f", "-"], { input: manifest });
  expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
  // The namespace enforces and warns at the restricted Pod Security level: the operator's pod template passes.
  expect(r.stderr).not.toMatch(/PodSecurity/);
}

/** Minimal monitoring.coreos.com CRDs (schemaless) so the Prometheus Operator objects can be dry-run too. */
function monitoringCrdStubs(): string {
  const stub = (kind: string, plural: string) => ({
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.monitoring.coreos.com`, labels: { "mokd-test": "stub" } },
    spec: {
      group: "monitoring.coreos.com",
      scope: "Namespaced",
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [
        {
          name: "v1",
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
        },
      ],
    },
  });
  const stubs = [
    stub("ServiceMonitor", "servicemonitors"),
    stub("PodMonitor", "podmonitors"),
    stub("PrometheusRule", "prometheusrules"),
  ];
  return stubs.map((s) => JSON.stringify(s)).join("\n---\n");
}

interface K8sObject {
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  spec?: Record<string, unknown>;
}

function objects(manifest: string): K8sObject[] {
  return parseAllDocuments(manifest).flatMap((d) => {
    const o = d.toJS() as K8sObject | null;
    return o?.kind ? [o] : [];
  });
}

/** The pod template the operator builds for a default DistillationJob: what the monitors must select. */
function trainerPodTemplate() {
  const dj = parseDistillationJob({
    apiVersion: "distillation.mokd.io/v1alpha1",
    kind: "DistillationJob",
    metadata: { name: "x", namespace: "team-a", uid: "00000000-0000-0000-0000-000000000000" },
  }) as OwnerJob;
  return buildJob(dj).spec!.template;
}

let namespace = "";
beforeAll(async () => {
  namespace = await createTestNamespace("helm");
  const labelled = await kubectl([
    "label",
    "namespace",
    namespace,
    "pod-security.kubernetes.io/enforce=restricted",
    "pod-security.kubernetes.io/warn=restricted",
  ]);
  expect(labelled.code, labelled.stderr).toBe(0);
});
afterAll(async () => {
  if (namespace) await deleteNamespace(namespace);
});

describe("chart", () => {
  it("lints clean, with defaults and with every option on", async () => {
    for (const values of [[], EVERYTHING_ON, ["watchNamespace=team-a", "leaderElection.enabled=false"]]) {
      const r = await helm(["lint", "--strict", CHART_DIR, ...setArgs(values)]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain("0 chart(s) failed");
    }
  });

  it("refuses values the schema does not allow", async () => {
    const r = await helm(["template", "mokd", CHART_DIR, "--set", "replicaCount=-1", "--set", "typo=1"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/replicaCount/);
    expect(r.stderr).toMatch(/typo/);
  });

  it("renders manifests the API server accepts (server-side dry run)", async () => {
    const manifest = await render(namespace, [
      "networkPolicy.enabled=true",
      `networkPolicy.trainerNamespaces={${namespace}}`,
      "networkPolicy.trainerEgress.restrict=true",
      "podDisruptionBudget.enabled=true",
    ]);
    expect(kinds(manifest)).toEqual(
      expect.arrayContaining([
        "CustomResourceDefinition",
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "ConfigMap",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "FlowSchema",
        "PriorityLevelConfiguration",
      ]),
    );
    expect(kinds(manifest)).not.toContain("ServiceMonitor");
    await dryRun(manifest);
  });

  it("selects the trainer pods the operator builds, on their metrics port", async () => {
    const template = trainerPodTemplate();
    const podLabels = template.metadata!.labels!;
    const metricsPort = template.spec!.containers[0]!.ports!.find((p) => p.name === "metrics")!;
    const manifest = await render(namespace, [
      ...MONITORING_ON,
      "networkPolicy.enabled=true",
      "networkPolicy.trainerNamespaces={team-a}",
    ]);
    const docs = objects(manifest);
    const podMonitor = docs.find((d) => d.kind === "PodMonitor")!.spec as {
      selector: { matchLabels: Record<string, string> };
      podMetricsEndpoints: { port: string }[];
    };
    expect(podLabels).toMatchObject(podMonitor.selector.matchLabels);
    expect(podMonitor.podMetricsEndpoints[0]!.port).toBe(metricsPort.name);
    const trainerPolicy = docs.find((d) => d.kind === "NetworkPolicy" && d.metadata?.namespace === "team-a")!
      .spec as {
      podSelector: { matchLabels: Record<string, string> };
      ingress: { ports: { port: number | string }[] }[];
    };
    expect(podLabels).toMatchObject(trainerPolicy.podSelector.matchLabels);
    // By name: the policy follows each job's spec.metrics.port.
    expect(trainerPolicy.ingress[0]!.ports[0]!.port).toBe(metricsPort.name);
    const custom = buildJob(
      parseDistillationJob({
        apiVersion: "distillation.mokd.io/v1alpha1",
        kind: "DistillationJob",
        metadata: { name: "y", namespace: "team-a", uid: "u" },
        spec: { metrics: { port: 9999 } },
      }) as OwnerJob,
    ).spec!.template.spec!.containers[0]!.ports!;
    expect(custom).toEqual([
      expect.objectContaining({ name: trainerPolicy.ingress[0]!.ports[0]!.port, containerPort: 9999 }),
    ]);
  });

  it("puts the trainer NetworkPolicy where trainers run: the watched namespace, or the listed ones", async () => {
    const policies = async (values: string[]) =>
      objects(await render(namespace, ["networkPolicy.enabled=true", ...values]))
        .filter((d) => d.kind === "NetworkPolicy" && d.metadata?.name?.endsWith("-trainers"))
        .map((d) => d.metadata!.namespace);
    expect(await policies(["watchNamespace=team-a"])).toEqual(["team-a"]);
    expect(await policies(["networkPolicy.trainerNamespaces={a,b}"])).toEqual(["a", "b"]);
    // Cluster-wide with no list: the chart cannot know where trainers run, and says so.
    const r = await helm(["template", "mokd", CHART_DIR, "--set", "networkPolicy.enabled=true"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("networkPolicy.trainerNamespaces");
  });

  it("restricts trainer egress to DNS plus the listed destinations when asked", async () => {
    const manifest = await render(namespace, [
      "networkPolicy.enabled=true",
      "watchNamespace=team-a",
      "networkPolicy.trainerEgress.restrict=true",
      "networkPolicy.trainerEgress.to[0].ports[0].port=443",
    ]);
    const policy = objects(manifest).find((d) => d.metadata?.name?.endsWith("-trainers"))!.spec as {
      policyTypes: string[];
      egress: { ports: { port: number }[] }[];
    };
    expect(policy.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(policy.egress.flatMap((e) => e.ports.map((p) => p.port))).toEqual([53, 53, 443]);
    const open = objects(await render(namespace, ["networkPolicy.enabled=true", "watchNamespace=team-a"]));
    expect(
      (open.find((d) => d.metadata?.name?.endsWith("-trainers"))!.spec as { policyTypes: string[] })
        .policyTypes,
    ).toEqual(["Ingress"]);
  });

  it("lets users with edit create DistillationJobs but not write their status; view reads them", async () => {
    const roles = objects(await render(namespace)).filter(
      (d) => d.kind === "ClusterRole" && /-(edit|view)$/.test(d.metadata?.name ?? ""),
    );
    expect(roles.map((r) => r.metadata!.name)).toEqual([
      "mokd-mokd-operator-edit",
      "mokd-mokd-operator-view",
    ]);
    const applied = await kubectl(["apply", "-f", "-"], {
      input: roles.map((r) => JSON.stringify(r)).join("\n"),
    });
    expect(applied.code, applied.stderr).toBe(0);
    const bind = (user: string, role: string) =>
      kubectl([
        "-n",
        namespace,
        "create",
        "rolebinding",
        `${user}-${role}`,
        `--clusterrole=${role}`,
        `--user=${user}`,
      ]);
    expect((await bind("alice", "edit")).code).toBe(0);
    expect((await bind("bob", "view")).code).toBe(0);
    /** A SubjectAccessReview (needs no CRD installed, unlike `kubectl auth can-i`'s resource lookup). */
    const can = async (user: string, verb: string, resource: string) => {
      const [plural, subresource] = resource.split("/");
      const review = {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user,
          resourceAttributes: {
            namespace,
            verb,
            group: "distillation.mokd.io",
            resource: plural,
            ...(subresource ? { subresource } : {}),
          },
        },
      };
      const r = await kubectl(["create", "-o", "json", "-f", "-"], { input: JSON.stringify(review) });
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { status: { allowed?: boolean } }).status.allowed ? "yes" : "no";
    };
    try {
      // The clusterrole-aggregation controller folds our rules into edit/view within moments.
      await waitFor(
        "aggregated into edit",
        async () => (await can("alice", "create", "distillationjobs")) === "yes",
      );
      expect(await can("alice", "delete", "distillationjobs")).toBe("yes");
      expect(await can("alice", "patch", "distillationjobs/status")).toBe("no");
      expect(await can("alice", "update", "distillationjobs/status")).toBe("no");
      await waitFor(
        "aggregated into view",
        async () => (await can("bob", "list", "distillationjobs")) === "yes",
      );
      expect(await can("bob", "create", "distillationjobs")).toBe("no");
    } finally {
      await kubectl([
        "delete",
        "clusterrole",
        "mokd-mokd-operator-edit",
        "mokd-mokd-operator-view",
        "--ignore-not-found",
      ]);
    }
  });

  it("configures the operator through settings it understands", async () => {
    // prettier-ignore
    const manifest = await render("mokd-system", [
      "watchNamespace=team-a", "trainerImage=mirror/trainer:1", "logLevel=debug", "concurrency=3", "metrics.port=9090",
      "trainerResources.requests.cpu=250m", "trainerResources.limits.cpu=",
    ]);
    const deployment = objects(manifest).find((d) => d.kind === "Deployment")!.spec as {
      template: {
        spec: {
          containers: { env: { name: string; value?: string }[]; ports: { containerPort: number }[] }[];
        };
      };
    };
    const container = deployment.template.spec.containers[0]!;
    // Downward-API values as the kubelet would fill them in.
    const env = Object.fromEntries(
      container.env.map((e) => [e.name, e.value ?? `pod-${e.name.toLowerCase()}`]),
    );
    const config = loadConfig([], env);
    expect(config).toMatchObject({
      namespace: "team-a",
      trainerImage: "mirror/trainer:1",
      logLevel: "debug",
      concurrency: 3,
      port: 9090,
      leaderElect: true,
      leaseNamespace: "mokd-system",
      trainerCpuRequest: "250m",
      trainerMemoryRequest: "2Gi",
      trainerCpuLimit: "",
      trainerMemoryLimit: "8Gi",
    });
    expect(container.ports[0]!.containerPort).toBe(config.port);
  });

  it("refuses a cluster older than 1.31 (the CRD's CEL uses the format library) and takes subchart globals", async () => {
    const old = await helm(["template", "mokd", CHART_DIR, "--kube-version", "1.30.0"]);
    expect(old.code).not.toBe(0);
    expect(old.stderr).toMatch(/kubeVersion|kubernetes version/i);
    const ok = await helm([
      "template",
      "mokd",
      CHART_DIR,
      "--kube-version",
      "1.31.0",
      "--set",
      "global.registry=x",
    ]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("sets the heap through heapLimitMiB, passes trainer pull secrets, and refuses env the chart sets", async () => {
    const manifest = await render("mokd-system", [
      "heapLimitMiB=256",
      "trainerImagePullSecrets={regcred,mirror}",
    ]);
    const deployment = objects(manifest).find((d) => d.kind === "Deployment")!.spec as {
      template: { spec: { containers: { env: { name: string; value?: string }[] }[] } };
    };
    const env = deployment.template.spec.containers[0]!.env;
    expect(env.filter((e) => e.name === "NODE_OPTIONS").map((e) => e.value)).toEqual([
      "--max-semi-space-size=2 --max-old-space-size=256",
    ]);
    const values = Object.fromEntries(env.map((e) => [e.name, e.value ?? "x"]));
    expect(loadConfig([], values).trainerImagePullSecrets).toEqual(["regcred", "mirror"]);
    const duplicate = await helm([
      "template",
      "mokd",
      CHART_DIR,
      "--set",
      "extraEnv[0].name=NODE_OPTIONS",
      "--set",
      "extraEnv[0].value=x",
    ]);
    expect(duplicate.code).not.toBe(0);
    expect(duplicate.stderr).toContain("heapLimitMiB");
  });

  it("leaves the CRD out when crds.enabled=false", async () => {
    expect(kinds(await render(namespace, ["crds.enabled=false"]))).not.toContain("CustomResourceDefinition");
  });

  it("renders a Role instead of a ClusterRole in single-namespace mode", async () => {
    const manifest = await render(namespace, [`watchNamespace=${namespace}`, "networkPolicy.enabled=true"]);
    expect(kinds(manifest)).not.toContain("ClusterRole");
    expect(kinds(manifest)).toEqual(expect.arrayContaining(["Role", "RoleBinding"]));
    await dryRun(manifest);
  });

  it("gives the operator's Lease requests their own priority level: the apiserver classifies them so", async () => {
    // Unique cluster-scoped names; only the ServiceAccount and the flowcontrol objects are applied.
    const manifest = await render(namespace, [`fullnameOverride=${namespace}-apf`]);
    const applied = objects(manifest).filter((o) =>
      ["ServiceAccount", "FlowSchema", "PriorityLevelConfiguration"].includes(o.kind ?? ""),
    );
    expect(applied.map((o) => o.kind).sort()).toEqual([
      "FlowSchema",
      "PriorityLevelConfiguration",
      "ServiceAccount",
    ]);
    const name = `${namespace}-apf-${namespace}-leader-election`;
    const r = await kubectl(["apply", "-f", "-"], {
      input: applied.map((o) => JSON.stringify(o)).join("\n"),
    });
    expect(r.code, r.stderr).toBe(0);
    try {
      const level = await kubectl([
        "get",
        "prioritylevelconfiguration",
        name,
        "-o",
        "jsonpath={.metadata.uid}",
      ]);
      expect(level.code, level.stderr).toBe(0);
      const token = await serviceAccountKubeconfig(namespace, `${namespace}-apf`);
      // The APF filter runs before authorization and names the level it chose in a response header, even on
      // the 403 this account gets (the Lease Role is not applied here): the classification, not the access.
      const classified = async () => {
        const get = await kubectl([`--kubeconfig=${token}`, "-v=8", "-n", namespace, "get", "lease", "x"]);
        return new RegExp(`X-Kubernetes-Pf-Prioritylevel-Uid: ${level.stdout}`, "i").test(get.stderr);
      };
      await waitFor("the Lease GET classified into the operator's level", classified);
      // The FlowSchema's other requests stay where they were: a pod list is not in this level.
      const pods = await kubectl([`--kubeconfig=${token}`, "-v=8", "-n", namespace, "get", "pods"]);
      expect(pods.stderr).toMatch(/X-Kubernetes-Pf-Prioritylevel-Uid/i);
      expect(pods.stderr).not.toContain(level.stdout);
      // Its level exists: the apiserver's config controller marks the FlowSchema not dangling.
      const condition = `jsonpath={.status.conditions[?(@.type=="Dangling")].status}`;
      await waitFor(
        "the FlowSchema not dangling",
        async () => (await kubectl(["get", "flowschema", name, "-o", condition])).stdout === "False",
      );
    } finally {
      await kubectl(["delete", "flowschema,prioritylevelconfiguration", name, "--wait=false"]);
    }
  });

  it("renders ServiceMonitor, PodMonitor and PrometheusRule the API server accepts", async () => {
    const stubs = monitoringCrdStubs();
    const created = await kubectl(["apply", "-f", "-"], { input: stubs });
    expect(created.code, created.stderr).toBe(0);
    try {
      for (const plural of ["servicemonitors", "podmonitors", "prometheusrules"])
        await waitCrdEstablished(`${plural}.monitoring.coreos.com`);
      const manifest = await render(namespace, [...MONITORING_ON, "serviceMonitor.labels.release=kps"]);
      expect(kinds(manifest)).toEqual(
        expect.arrayContaining(["ServiceMonitor", "PodMonitor", "PrometheusRule"]),
      );
      const docs = parseAllDocuments(manifest).map((d) => d.toJS() as Record<string, never>);
      const rule = docs.find((d) => d?.kind === "PrometheusRule") as unknown as {
        spec: { groups: { rules: { annotations: { summary: string } }[] }[] };
      };
      // Not templated by Helm: Prometheus gets its own {{ $labels }} templates.
      expect(JSON.stringify(rule.spec.groups)).toContain("{{ $labels.mokd_job }}");
      await dryRun(manifest);
    } finally {
      await kubectl(["delete", "crd", "-l", "mokd-test=stub", "--wait=false"]);
    }
  });
});

describe("release", () => {
  const release = `mokd-${Math.random().toString(36).slice(2, 7)}`;
  let chartCopy = "";

  beforeAll(() => {
    chartCopy = mkdtempSync(join(tmpdir(), "mokd-chart-"));
    cpSync(CHART_DIR, chartCopy, { recursive: true });
  });
  afterAll(async () => {
    await helm(["uninstall", release, "-n", namespace, "--wait=false"]);
    // Other tests share the CRD: put back exactly the generated one.
    await kubectl(["replace", "-f", CRD_PATH]);
    rmSync(chartCopy, { recursive: true, force: true });
  });

  const column = async () =>
    (
      await kubectl([
        "get",
        "crd",
        CRD_NAME,
        "-o",
        "jsonpath={.spec.versions[0].additionalPrinterColumns[*].name}",
      ])
    ).stdout;

  it("installs, upgrades a changed CRD, and keeps the CRD on uninstall", async () => {
    // Another test may already have created the CRDs from crds/: let this release adopt them, as users would.
    await adoptCrds(release, namespace);
    const install = await helm(["install", release, chartCopy, "-n", namespace, "--set", "replicaCount=1"]);
    expect(install.code, install.stderr).toBe(0);
    expect(install.stdout).toContain("MoKD distillation");
    const keep = await kubectl([
      "get",
      "crd",
      CRD_NAME,
      "-o",
      "jsonpath={.metadata.annotations.helm\\.sh/resource-policy}",
    ]);
    expect(keep.stdout, keep.stderr + install.stdout).toBe("keep");
    const deploy = await kubectl([
      "get",
      "deploy",
      "-n",
      namespace,
      "-l",
      `app.kubernetes.io/instance=${release}`,
      "-o",
      "name",
    ]);
    expect(deploy.stdout.trim()).not.toBe("");
    expect(await column()).not.toContain("Strategy");

    // A new chart version whose CRD gained a printer column: `helm upgrade` applies it (CRDs are templates).
    const crdFile = join(chartCopy, CHART_CRD);
    const changed = readFileSync(crdFile, "utf8").replace(
      "      additionalPrinterColumns:\n",
      "      additionalPrinterColumns:\n        - name: Strategy\n          type: string\n          jsonPath: .spec.strategy.name\n",
    );
    expect(changed).toContain("name: Strategy");
    writeFileSync(crdFile, changed);
    const upgrade = await helm(["upgrade", release, chartCopy, "-n", namespace, "--reuse-values"]);
    expect(upgrade.code, upgrade.stderr).toBe(0);
    expect(await column()).toContain("Strategy");

    const uninstall = await helm(["uninstall", release, "-n", namespace]);
    expect(uninstall.code, uninstall.stderr).toBe(0);
    expect((await kubectl(["get", "crd", CRD_NAME])).code).toBe(0);
    const gone = await kubectl([
      "get",
      "deploy,sa,svc,cm",
      "-n",
      namespace,
      "-l",
      `app.kubernetes.io/instance=${release}`,
      "-o",
      "name",
    ]);
    expect(gone.stdout.trim()).toBe("");
  });

  it("installs a second release beside the first with crds.enabled=false (one release owns the CRD)", async () => {
    const second = await createTestNamespace("helm-second");
    const first = `${release}-a`;
    const other = `${release}-b`;
    try {
      // The CRDs are kept from earlier releases (resource-policy keep): let the first release adopt them.
      await adoptCrds(first, namespace);
      const a = await helm(["install", first, CHART_DIR, "-n", namespace, "--set", "replicaCount=0"]);
      expect(a.code, a.stderr).toBe(0);
      // prettier-ignore
      const clash = await helm(["install", other, CHART_DIR, "-n", second, "--set", "replicaCount=0",
        "--set", `watchNamespace=${second}`]);
      expect(clash.code).not.toBe(0);
      expect(clash.stderr).toContain(CRD_NAME);
      // prettier-ignore
      const b = await helm(["install", other, CHART_DIR, "-n", second, "--set", "replicaCount=0",
        "--set", `watchNamespace=${second}`, "--set", "crds.enabled=false"]);
      expect(b.code, b.stderr).toBe(0);
      expect(b.stdout).toContain("crds.enabled=false");
    } finally {
      await helm(["uninstall", other, "-n", second, "--wait=false"]);
      await helm(["uninstall", first, "-n", namespace, "--wait=false"]);
      await deleteNamespace(second);
    }
  });
});

describe("a release watching several namespaces", () => {
  it("reconciles a DistillationJob in each listed namespace under the release's Roles, and none elsewhere", async () => {
    await ensureCrd();
    const release = `mokd-ns-${Math.random().toString(36).slice(2, 7)}`;
    const [teamA, teamB, unwatched] = [
      await createTestNamespace("helm-watch-a"),
      await createTestNamespace("helm-watch-b"),
      await createTestNamespace("helm-unwatched"),
    ];
    let operator: OperatorProcess | undefined;
    try {
      // prettier-ignore
      const install = await helm(["install", release, CHART_DIR, "-n", namespace, "--set", "replicaCount=0",
        "--set", "crds.enabled=false", "--set", `watchNamespaces={${teamA},${teamB}}`]);
      expect(install.code, install.stderr).toBe(0);
      // The operator as the chart's Deployment would run it: the release's ServiceAccount, its two Roles, the
      // settings its env gives (MOKD_OPERATOR_NAMESPACES), the lease in the release namespace.
      const kubeconfig = await serviceAccountKubeconfig(namespace, `${release}-mokd-operator`);
      operator = startOperator(kubeconfig, teamA, [
        `--namespaces=${teamA},${teamB}`,
        `--lease-namespace=${namespace}`,
        `--lease-name=${release}`,
      ]);
      const [a, b, elsewhere] = [new Jobs(teamA), new Jobs(teamB), new Jobs(unwatched)];
      await Promise.all([a.create("first"), b.create("second"), elsewhere.create("ignored")]);
      await a.waitStatus("first", "a status", (s) => s.phase !== undefined, 90_000);
      await b.waitStatus("second", "a status", (s) => s.phase !== undefined, 90_000);
      expect((await elsewhere.get("ignored"))?.status).toBeUndefined();
      expect(operator.logs()).not.toMatch(/forbidden/i);
    } catch (error) {
      if (operator) console.log(operator.logs());
      throw error;
    } finally {
      await operator?.kill();
      await helm(["uninstall", release, "-n", namespace, "--wait=false"]);
      await Promise.all([teamA, teamB, unwatched].map((ns) => deleteNamespace(ns)));
    }
  });
});
