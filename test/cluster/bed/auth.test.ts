// RBAC is on and ServiceAccount tokens work, so the operator can be tested under its own identity. Also checks
// that the binaries are the stamped versions the docs promise.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api, VersionApi } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  adminKubeConfig,
  binDir,
  createTestNamespace,
  deleteNamespace,
  kubectl,
  serviceAccountKubeconfig,
  waitFor,
} from "../../bed/env.ts";

const run = promisify(execFile);
let ns: string;

beforeAll(async () => {
  ns = await createTestNamespace("bed-auth");
});
afterAll(async () => {
  if (ns) await deleteNamespace(ns);
});

describe("authentication and authorization", () => {
  it("refuses a ServiceAccount token without RBAC (403) and allows it after a RoleBinding", async () => {
    const admin = adminKubeConfig();
    await admin
      .makeApiClient(CoreV1Api)
      .createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "reader" } } });
    const saConfig = new KubeConfig();
    saConfig.loadFromFile(await serviceAccountKubeconfig(ns, "reader"));
    const asReader = saConfig.makeApiClient(CoreV1Api);

    const refused = await asReader
      .listNamespacedConfigMap({ namespace: ns })
      .catch((err: { code?: number }) => err);
    expect((refused as { code?: number }).code).toBe(403);

    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: "configmap-reader" },
        rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: "reader" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "configmap-reader" },
        subjects: [{ kind: "ServiceAccount", name: "reader", namespace: ns }],
      },
    });
    const list = await waitFor("reader allowed to list configmaps", () =>
      asReader.listNamespacedConfigMap({ namespace: ns }),
    );
    expect(list.items.map((cm) => cm.metadata?.name)).toContain("kube-root-ca.crt");
    // Still nothing beyond the Role.
    const secrets = await asReader
      .listNamespacedSecret({ namespace: ns })
      .catch((err: { code?: number }) => err);
    expect((secrets as { code?: number }).code).toBe(403);
  });

  it("passes the token to kubectl through the generated kubeconfig", async () => {
    const kubeconfig = await serviceAccountKubeconfig(ns, "default");
    const whoami = await kubectl(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"], {
      kubeconfig,
    });
    expect(whoami).toMatchObject({ code: 0, stdout: `system:serviceaccount:${ns}:default` });
  });
});

describe("versions", () => {
  it("serves /version as v1.36.3", async () => {
    const version = await adminKubeConfig().makeApiClient(VersionApi).getCode();
    expect(version).toMatchObject({ gitVersion: "v1.36.3", major: "1", minor: "36" });
  });

  it("ships kubectl v1.36.3", async () => {
    const { code, stdout } = await kubectl(["version", "--client", "-o", "json"]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout).clientVersion.gitVersion).toBe("v1.36.3");
  });

  it("ships helm v3.22.0 that assumes Kubernetes 1.36", async () => {
    const helm = join(binDir(), "helm");
    expect((await run(helm, ["version", "--template", "{{.Version}}"])).stdout).toBe("v3.22.0");
    const chart = await mkdtemp(join(tmpdir(), "bed-chart-"));
    await writeFile(join(chart, "Chart.yaml"), "apiVersion: v2\nname: probe\nversion: 0.1.0\n");
    await mkdir(join(chart, "templates"));
    await writeFile(join(chart, "templates", "v.yaml"), "# {{ .Capabilities.KubeVersion.Version }}\n");
    const { stdout } = await run(helm, ["template", chart]);
    await rm(chart, { recursive: true, force: true });
    expect(stdout).toContain("# v1.36");
  });
});
