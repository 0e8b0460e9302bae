// The operator's side of object storage in the child Job: the `fetch` init container, credentials from a Secret
// (by reference only), the CA bundle, service account and env references; and the RBAC that does not grow for it.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { NON_RETRYABLE_EXIT_CODES } from "../../../../api/v1alpha1/index.ts";
import { buildJob } from "../../../../operator/src/builders/job.ts";
import { distillationJob, objectStorageJob } from "../../../fixtures/kube-objects.ts";

const remote = objectStorageJob();

describe("buildJob with object storage", () => {
  const spec = buildJob(remote).spec!.template.spec!;
  const trainer = spec.containers[0]!;
  const fetch = spec.initContainers?.[0];

  it("runs `trainer fetch` first, in the trainer's image, into a cache volume both mount", () => {
    expect(fetch).toMatchObject({
      name: "fetch",
      image: trainer.image,
      command: ["node", "trainer/src/cli.ts", "fetch"],
      securityContext: trainer.securityContext,
    });
    const cache = { name: "storage-cache", mountPath: "/mokd/cache" };
    expect(fetch?.volumeMounts).toContainEqual(cache);
    expect(trainer.volumeMounts).toContainEqual(cache);
    expect(spec.volumes).toContainEqual({ name: "storage-cache", emptyDir: {} });
    expect(fetch?.env).toContainEqual({ name: "MOKD_CACHE_DIR", value: "/mokd/cache" });
    // No GPU for a download.
    expect(fetch?.resources?.limits?.["nvidia.com/gpu"]).toBeUndefined();
  });

  it("passes credentials by Secret reference (the kubelet reads it, never the operator)", () => {
    const ref = (key: string, optional?: boolean) => ({
      name: key,
      valueFrom: { secretKeyRef: { name: "s3-credentials", key, ...(optional ? { optional } : {}) } },
    });
    for (const c of [trainer, fetch!]) {
      expect(c.env).toContainEqual(ref("AWS_ACCESS_KEY_ID"));
      expect(c.env).toContainEqual(ref("AWS_SECRET_ACCESS_KEY"));
      expect(c.env).toContainEqual(ref("AWS_SESSION_TOKEN", true));
    }
    expect(trainer.env).toContainEqual({
      name: "HF_TOKEN",
      valueFrom: { secretKeyRef: { name: "hf", key: "token" } },
    });
    expect(trainer.env).toContainEqual({
      name: "MODE",
      valueFrom: { configMapKeyRef: { name: "settings", key: "mode", optional: true } },
    });
    expect(trainer.env).toContainEqual({ name: "PLAIN", value: "1" });
  });

  it("mounts the CA bundle and points the trainer at it; service account without an API token", () => {
    expect(spec.volumes).toContainEqual({
      name: "storage-ca",
      configMap: { name: "internal-ca", items: [{ key: "ca.crt", path: "ca.crt" }] },
    });
    expect(trainer.env).toContainEqual({
      name: "MOKD_STORAGE_CA_BUNDLE",
      value: "/etc/mokd/storage-ca/ca.crt",
    });
    expect(spec.serviceAccountName).toBe("trainer");
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.imagePullSecrets).toEqual([{ name: "registry" }]);
  });

  it("fails the Job at once when the initializer exits with a storage code", () => {
    const rules = buildJob(remote).spec!.podFailurePolicy!.rules;
    expect(rules).toContainEqual({
      action: "FailJob",
      onExitCodes: { containerName: "fetch", operator: "In", values: [...NON_RETRYABLE_EXIT_CODES] },
    });
    expect(NON_RETRYABLE_EXIT_CODES).toEqual(expect.arrayContaining([4, 5, 6, 7]));
  });

  it("adds nothing for a job without remote inputs or outputs", () => {
    const local = buildJob(distillationJob()).spec!.template.spec!;
    expect(local.initContainers).toBeUndefined();
    expect(local.volumes?.map((v) => v.name)).not.toContain("storage-cache");
    expect(local.containers[0]!.env?.map((e) => e.name)).not.toContain("AWS_ACCESS_KEY_ID");
    expect(local.serviceAccountName).toBeUndefined();
  });

  it("outputs only in object storage: credentials, but no init container", () => {
    const out = buildJob(
      distillationJob({ output: { uri: "s3://results/x" }, storage: { credentialsSecret: "creds" } }),
    ).spec!.template.spec!;
    expect(out.initContainers).toBeUndefined();
    expect(out.containers[0]!.env?.map((e) => e.name)).toContain("AWS_SECRET_ACCESS_KEY");
  });
});

describe("the operator's RBAC with storage credentials", () => {
  it("does not grow to Secrets: the pod references them, the kubelet reads them", () => {
    const rules = parse(readFileSync("charts/mokd-operator/files/rbac-rules.yaml", "utf8")) as {
      apiGroups: string[];
      resources: string[];
    }[];
    const resources = rules.flatMap((r) => r.resources);
    expect(resources).not.toContain("secrets");
    expect(resources).not.toContain("*");
    expect(rules.flatMap((r) => r.apiGroups)).not.toContain("*");
    expect(resources).not.toContain("serviceaccounts");
  });
});
