import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import type * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeHttp } from "../../../../operator/src/lib/kube-http.ts";
import { LightKubeConfig, loadKubeConfig } from "../../../../operator/src/lib/kubeconfig.ts";

const b64 = (text: string) => Buffer.from(text).toString("base64");

const KUBECONFIG = `
apiVersion: v1
kind: Config
current-context: second
clusters:
- name: one
  cluster: { server: https://one.example:6443 }
- name: two
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: ${b64("CA PEM")}
    tls-server-name: kubernetes
users:
- name: admin
  user:
    client-certificate: certs/admin.crt
    client-key-data: ${b64("KEY PEM")}
- name: robot
  user: { token: abc }
contexts:
- name: first
  context: { cluster: one, user: robot }
- name: second
  context: { cluster: two, user: admin, namespace: team-a }
`;

describe("LightKubeConfig", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("follows current-context to its cluster and user, resolving relative files against the kubeconfig", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kc-"));
    writeFileSync(join(dir, "config"), KUBECONFIG);
    const certs = join(dir, "certs");
    mkdirSync(certs);
    writeFileSync(join(certs, "admin.crt"), "CERT PEM");
    const kc = LightKubeConfig.fromFile(join(dir, "config"));
    expect(kc.getCurrentCluster().server).toBe("https://127.0.0.1:6443");
    expect(kc.namespace).toBe("team-a");
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    expect(String(opts.ca)).toBe("CA PEM");
    expect(String(opts.cert)).toBe("CERT PEM");
    expect(String(opts.key)).toBe("KEY PEM");
    expect(opts.servername).toBe("kubernetes");
    expect(opts.headers).toBeUndefined();
  });

  it("sends a static token as a bearer token", async () => {
    const kc = LightKubeConfig.fromString(
      KUBECONFIG.replace("current-context: second", "current-context: first"),
    );
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    expect(opts.headers).toEqual({ Authorization: "Bearer abc" });
    expect(opts.ca).toBeUndefined();
  });

  it("builds the in-cluster config from the pod's ServiceAccount and re-reads a rotated token", async () => {
    vi.useFakeTimers({ now: 0 });
    const sa = mkdtempSync(join(tmpdir(), "sa-"));
    writeFileSync(join(sa, "token"), "token-1\n");
    writeFileSync(join(sa, "ca.crt"), "CLUSTER CA");
    writeFileSync(join(sa, "namespace"), "mokd-system");
    const env = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };
    const kc = LightKubeConfig.inCluster(env, sa);
    expect(kc.getCurrentCluster().server).toBe("https://10.96.0.1:443");
    expect(kc.namespace).toBe("mokd-system");
    const auth = async () => {
      const opts: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(opts);
      return { ca: String(opts.ca), authorization: (opts.headers as Record<string, string>).Authorization };
    };
    expect(await auth()).toEqual({ ca: "CLUSTER CA", authorization: "Bearer token-1" });
    writeFileSync(join(sa, "token"), "token-2\n");
    expect((await auth()).authorization).toBe("Bearer token-1"); // cached
    vi.advanceTimersByTime(61_000);
    expect((await auth()).authorization).toBe("Bearer token-2");
  });

  it("brackets an IPv6 service host", () => {
    const kc = LightKubeConfig.inCluster({ KUBERNETES_SERVICE_HOST: "fd00::1" }, "/nonexistent");
    expect(kc.getCurrentCluster().server).toBe("https://[fd00::1]:443");
  });

  it("names the missing context", () => {
    expect(() => LightKubeConfig.fromString("current-context: nope")).toThrow(/nope/);
  });

  it("merges a $KUBECONFIG list as kubectl does: first file wins per name and for current-context", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kc-merge-"));
    mkdirSync(join(dir, "b"));
    writeFileSync(join(dir, "b", "ca.crt"), "CA OF B");
    writeFileSync(
      join(dir, "a.yaml"),
      "users:\n- name: robot\n  user: { token: from-a }\n", // no current-context, no clusters
    );
    writeFileSync(
      join(dir, "b", "config"),
      [
        "current-context: ctx",
        "clusters:\n- name: c\n  cluster: { server: https://b.example, certificate-authority: ca.crt }",
        "users:\n- name: robot\n  user: { token: from-b }",
        "contexts:\n- name: ctx\n  context: { cluster: c, user: robot, namespace: ns-b }",
      ].join("\n"),
    );
    const env = {
      KUBECONFIG: [join(dir, "a.yaml"), join(dir, "missing"), join(dir, "b", "config")].join(":"),
    };
    const kc = LightKubeConfig.fromDefault(env);
    expect(kc.getCurrentCluster().server).toBe("https://b.example");
    expect(kc.namespace).toBe("ns-b");
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    expect(opts.headers).toEqual({ Authorization: "Bearer from-a" }); // the first file's user of that name
    expect(String(opts.ca)).toBe("CA OF B"); // relative to the file that names it
  });

  /** A kubeconfig (JSON is YAML) whose user gets a token from an exec plugin, or from an auth-provider. */
  const execUser = (token: string, server = "https://eks.example", authProvider = false) => {
    const credential = {
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      status: { token },
    };
    const exec = {
      apiVersion: "client.authentication.k8s.io/v1",
      command: "sh",
      args: ["-c", `echo '${JSON.stringify(credential)}'`],
      interactiveMode: "Never",
    };
    return JSON.stringify({
      "current-context": "eks",
      clusters: [{ name: "c", cluster: { server, "insecure-skip-tls-verify": true } }],
      users: [{ name: "aws", user: authProvider ? { "auth-provider": { name: "oidc" } } : { exec } }],
      contexts: [{ name: "eks", context: { cluster: "c", user: "aws", namespace: "ml" } }],
    });
  };

  it("refuses an exec or auth-provider user in the light loader, naming the plugin", () => {
    expect(() => LightKubeConfig.fromString(execUser("t"))).toThrow(/exec plugin.*loadKubeConfig/);
    expect(() => LightKubeConfig.fromString(execUser("t", undefined, true))).toThrow(/auth-provider plugin/);
  });

  it("runs an exec plugin (as for EKS/AKS/GKE) and sends its token", async () => {
    const seen: (string | undefined)[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.setHeader("Content-Type", "application/json");
      res.end("{}");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const dir = mkdtempSync(join(tmpdir(), "kc-exec-"));
    const server_ = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    writeFileSync(join(dir, "config"), execUser("exec-token", server_));
    try {
      const { kubeConfig, namespace } = await loadKubeConfig({ KUBECONFIG: join(dir, "config") });
      expect(namespace).toBe("ml");
      const http = new KubeHttp(kubeConfig);
      await http.request("/api/v1/namespaces");
      http.close();
      expect(seen).toEqual(["Bearer exec-token"]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
