import { readFileSync, readdirSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClusterWriter } from "../../../../operator/src/controller/kube.ts";
import { NameConflictError } from "../../../../operator/src/controller/ownership.ts";
import type { KubeConfigLike } from "../../../../operator/src/lib/kube-http.ts";

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: unknown;
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve) => {
    let text = "";
    req.setEncoding("utf8").on("data", (c: string) => (text += c));
    req.on("end", () => resolve(text ? JSON.parse(text) : undefined));
  });
}

describe("KubeClusterWriter (through KubeHttp)", () => {
  const seen: Seen[] = [];
  let server: Server;
  let writer: KubeClusterWriter;
  let deleteStatus = 200;
  /** Objects that exist already, by path: a POST of one answers 409, a GET returns it. */
  const existing = new Map<string, object>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      void readJson(req).then((body) => {
        seen.push({ method: req.method!, url: req.url!, contentType: req.headers["content-type"], body });
        res.setHeader("Content-Type", "application/json");
        const path = req.url!.split("?")[0]!;
        if (
          req.method === "POST" &&
          existing.has(`${path}/${(body as { metadata: { name: string } }).metadata.name}`)
        ) {
          res.statusCode = 409;
          return res.end(JSON.stringify({ kind: "Status", reason: "AlreadyExists", message: "exists" }));
        }
        if (req.method === "GET" && existing.has(path)) return res.end(JSON.stringify(existing.get(path)));
        if (req.method === "DELETE") {
          res.statusCode = deleteStatus;
          return res.end(JSON.stringify({ kind: "Status", reason: "NotFound", message: "gone" }));
        }
        res.end(JSON.stringify({ ...(body as object), metadata: { resourceVersion: "42" } }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const kc: KubeConfigLike = {
      getCurrentCluster: () => ({ name: "t", server: `http://127.0.0.1:${port}`, skipTLSVerify: false }),
      applyToHTTPSOptions: async () => undefined,
    };
    writer = new KubeClusterWriter(kc);
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const owner = (uid: string) => [
    { apiVersion: "x/v1", kind: "DistillationJob", name: "a", uid, controller: true },
  ];

  it("creates new children and server-side applies the status under our field manager with force", async () => {
    seen.length = 0;
    await writer.applyConfigMap({ metadata: { name: "a-config", namespace: "ns" }, data: { x: "1" } });
    await writer.applyJob({ metadata: { name: "a", namespace: "ns" }, spec: { template: {} } });
    const rv = await writer.applyStatus("ns", "a", { phase: "Pending" });
    expect(rv).toBe("42");
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "POST /api/v1/namespaces/ns/configmaps?fieldManager=mokd-operator",
      "POST /apis/batch/v1/namespaces/ns/jobs?fieldManager=mokd-operator",
      "PATCH /apis/distillation.mokd.io/v1alpha1/namespaces/ns/distillationjobs/a/status?fieldManager=mokd-operator&force=true",
    ]);
    expect(seen[2]!.contentType).toBe("application/apply-patch+yaml");
    expect(seen[2]!.body).toMatchObject({
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationJob",
      metadata: { name: "a", namespace: "ns" },
      status: { phase: "Pending" },
    });
  });

  it("never applies over a child of that name it does not control (no adoption): NameConflictError", async () => {
    seen.length = 0;
    existing.set("/api/v1/namespaces/ns/configmaps/user-config", { metadata: { name: "user-config" } });
    existing.set("/apis/batch/v1/namespaces/ns/jobs/b", {
      metadata: { name: "b", ownerReferences: owner("other") },
    });
    const cm = { metadata: { name: "user-config", namespace: "ns", ownerReferences: owner("u1") }, data: {} };
    await expect(writer.applyConfigMap(cm)).rejects.toThrow(NameConflictError);
    const job = {
      metadata: { name: "b", namespace: "ns", ownerReferences: owner("u1") },
      spec: { template: {} },
    };
    await expect(writer.applyJob(job)).rejects.toThrow(/a Job named b already exists in namespace ns/);
    expect(seen.map((s) => s.method)).toEqual(["POST", "GET", "POST", "GET"]);
  });

  it("applies over a child it controls that the cache has not shown yet", async () => {
    seen.length = 0;
    existing.set("/apis/batch/v1/namespaces/ns/jobs/c", {
      metadata: { name: "c", ownerReferences: owner("u1") },
    });
    const job = {
      metadata: { name: "c", namespace: "ns", ownerReferences: owner("u1") },
      spec: { template: {} },
    };
    await writer.applyJob(job);
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "POST /apis/batch/v1/namespaces/ns/jobs?fieldManager=mokd-operator",
      "GET /apis/batch/v1/namespaces/ns/jobs/c",
      "PATCH /apis/batch/v1/namespaces/ns/jobs/c?fieldManager=mokd-operator&force=true",
    ]);
  });

  it("merge-patches only the given mutable fields of an existing Job (no apply: its template is immutable)", async () => {
    seen.length = 0;
    await writer.patchJob("ns", "a", { suspend: true, activeDeadlineSeconds: null });
    expect(seen).toEqual([
      {
        method: "PATCH",
        url: "/apis/batch/v1/namespaces/ns/jobs/a?fieldManager=mokd-operator",
        contentType: "application/merge-patch+json",
        body: { spec: { suspend: true, activeDeadlineSeconds: null } },
      },
    ]);
  });

  it("deletes only the incarnation with the given uid, in the background; absent is fine", async () => {
    seen.length = 0;
    deleteStatus = 404;
    await expect(writer.deleteDistillationJob("ns", "a", "uid-1")).resolves.toBeUndefined();
    expect(seen[0]).toMatchObject({
      method: "DELETE",
      url: "/apis/distillation.mokd.io/v1alpha1/namespaces/ns/distillationjobs/a",
      body: { propagationPolicy: "Background", preconditions: { uid: "uid-1" } },
    });
    deleteStatus = 409;
    await expect(writer.deleteDistillationJob("ns", "a", "uid-1")).rejects.toThrow();
  });
});

describe("operator runtime imports", () => {
  // Importing @kubernetes/client-node at run time costs ~80 MiB of RSS: the operator uses its types only.
  const files = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
    );
  it("imports only types from @kubernetes/client-node", () => {
    const root = join(import.meta.dirname, "../../../../operator/src");
    const valueImports = files(root).filter((file) =>
      /^import\s+(?!type\b)[^;]*?from\s+"@kubernetes\/client-node"/ms.test(readFileSync(file, "utf8")),
    );
    expect(files(root).length).toBeGreaterThan(10);
    expect(valueImports).toEqual([]);
  });
});
