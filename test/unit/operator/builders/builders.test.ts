import { describe, expect, it } from "vitest";
import { NON_RETRYABLE_EXIT_CODES } from "../../../../api/v1alpha1/index.ts";
import { buildConfigMap, CONFIGMAP_MAX_BYTES } from "../../../../operator/src/builders/configmap.ts";
import { SpecRefusal } from "../../../../operator/src/builders/spec-refusal.ts";
import { buildJob, desiredSuspend } from "../../../../operator/src/builders/job.ts";
import {
  boundedName,
  configMapNameFor,
  jobNameFor,
  legacyJobNameFor,
} from "../../../../operator/src/names.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import { distillationJob } from "../../../fixtures/kube-objects.ts";

describe("buildConfigMap", () => {
  it("holds the trainer's part of the defaulted spec and identity as job.json, owned by the DistillationJob", () => {
    const cm = buildConfigMap(distillationJob({ training: { epochs: 7 }, runPolicy: { backoffLimit: 2 } }));
    expect(cm.metadata?.name).toBe("mnist-config");
    expect(cm.metadata?.ownerReferences).toEqual([
      expect.objectContaining({ kind: "DistillationJob", name: "mnist", uid: "uid-1", controller: true }),
    ]);
    const config = JSON.parse(cm.data!["job.json"]!);
    expect(config.metadata).toMatchObject({ name: "mnist", namespace: "team-a" });
    expect(config.spec.training.epochs).toBe(7);
    expect(config.spec.strategy.name).toBe("mokd"); // a default filled in
    // Only the trainer's contract: the operator's fields stay with the operator.
    expect(Object.keys(config.spec)).toEqual([
      "teacher",
      "student",
      "data",
      "objectives",
      "strategy",
      "training",
      "output",
      "metrics",
      "storage",
    ]);
    const parsed = parseConfig(config, "job.json", {});
    expect(parsed.unknownFields).toEqual([]);
    expect(parsed.spec.training.epochs).toBe(7);
    expect([parsed.jobName, parsed.namespace]).toEqual(["mnist", "team-a"]);
  });
});

describe("buildConfigMap of a spec too large for a ConfigMap", () => {
  it("refuses it before the apiserver does, saying why (the job then fails with reason InvalidSpec)", () => {
    const dj = distillationJob();
    // As a spec that got past the schema (an older CRD) would be: the builder is the last line.
    // Only the trainer's part of the spec is in the ConfigMap (runtime is in the Job).
    dj.spec.teacher.model = "x".repeat(CONFIGMAP_MAX_BYTES);
    expect(() => buildConfigMap(dj)).toThrow(SpecRefusal);
    expect(() => buildConfigMap(dj)).toThrow(/over the ConfigMap limit of 1048576/);
  });
});

describe("buildJob", () => {
  const base = distillationJob({
    runtime: {
      gpus: 1,
      podAnnotations: { a: "b" },
      podLabels: { team: "x" },
      env: [{ name: "FOO", value: "1" }],
    },
    runPolicy: { backoffLimit: 2, activeDeadlineSeconds: 600 },
  });
  const job = buildJob(base);
  const pod = job.spec!.template.spec!;
  const container = pod.containers[0]!;

  it("asks for nvidia.com/gpu limits and never restarts in place", () => {
    expect(container.resources?.limits?.["nvidia.com/gpu"]).toBe("1");
    expect(pod.restartPolicy).toBe("Never");
    expect(job.spec).toMatchObject({ backoffLimit: 2, activeDeadlineSeconds: 600, suspend: false });
  });

  it("fails at once on non-retryable exit codes and ignores disruptions", () => {
    const rules = job.spec!.podFailurePolicy!.rules;
    expect(rules[0]).toMatchObject({
      action: "FailJob",
      onExitCodes: { containerName: "trainer", operator: "In", values: [...NON_RETRYABLE_EXIT_CODES] },
    });
    expect(rules[1]).toMatchObject({ action: "Ignore", onPodConditions: [{ type: "DisruptionTarget" }] });
  });

  it("runs under the restricted Pod Security Standard without an API token", () => {
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
  });

  it("mounts the config, sets the trainer env and exposes the metrics port", () => {
    expect(container.env).toEqual(
      expect.arrayContaining([
        { name: "MOKD_CONFIG", value: "/etc/mokd/job.json" },
        { name: "MOKD_JOB_NAME", value: "mnist" },
        { name: "MOKD_JOB_NAMESPACE", value: "team-a" },
        // runtime is not in the trainer's config: its backend and GPU count come as variables.
        { name: "MOKD_BACKEND", value: "auto" },
        { name: "MOKD_GPUS", value: "1" },
        { name: "FOO", value: "1" },
      ]),
    );
    expect(container.volumeMounts).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: "config", mountPath: "/etc/mokd" })]),
    );
    expect(container.ports).toEqual([{ name: "metrics", containerPort: 9400, protocol: "TCP" }]);
    expect(container.terminationMessagePolicy).toBe("FallbackToLogsOnError");
  });

  it("uses emptyDirs for output and checkpoints without PVCs, and PVCs when given", () => {
    expect(pod.volumes?.find((v) => v.name === "output")?.emptyDir).toEqual({});
    expect(pod.volumes?.find((v) => v.name === "data")).toBeUndefined();
    const withPvcs = buildJob(
      distillationJob({
        runtime: { volumes: { data: { claimName: "ds" }, checkpoints: { claimName: "ck" } } },
      }),
    );
    const vols = withPvcs.spec!.template.spec!.volumes!;
    expect(vols.find((v) => v.name === "data")?.persistentVolumeClaim).toEqual({
      claimName: "ds",
      readOnly: true,
    });
    expect(vols.find((v) => v.name === "checkpoints")?.persistentVolumeClaim?.claimName).toBe("ck");
  });

  it("labels the pods and passes user labels and annotations through (ours win)", () => {
    const labels = job.spec!.template.metadata!.labels!;
    expect(labels).toMatchObject({
      "mokd.io/job-name": "mnist",
      "app.kubernetes.io/managed-by": "mokd-operator",
      team: "x",
    });
    expect(job.spec!.template.metadata!.annotations).toEqual({ a: "b" });
  });

  it("passes the Kueue queue name as a label and starts suspended for Kueue", () => {
    const queued = buildJob(distillationJob({ queueName: "gpu-queue" }));
    expect(queued.metadata?.labels?.["kueue.x-k8s.io/queue-name"]).toBe("gpu-queue");
    expect(queued.spec?.suspend).toBe(true);
    expect(job.metadata?.labels?.["kueue.x-k8s.io/queue-name"]).toBeUndefined();
  });

  it("leaves a Kueue-admitted Job running but suspends whenever runPolicy.suspend is set", () => {
    const queued = distillationJob({ queueName: "q" });
    expect(desiredSuspend(queued, false)).toBe(false);
    expect(desiredSuspend(queued, undefined)).toBe(true);
    expect(desiredSuspend(distillationJob({ queueName: "q", runPolicy: { suspend: true } }), false)).toBe(
      true,
    );
    expect(desiredSuspend(distillationJob({ runPolicy: { suspend: true } }), undefined)).toBe(true);
  });

  it("omits the GPU limit for gpus: 0 and replaces only the default image", () => {
    const cpu = buildJob(distillationJob({ runtime: { gpus: 0 } }), { trainerImage: "mirror/trainer:1" });
    const c = cpu.spec!.template.spec!.containers[0]!;
    expect(c.resources?.limits?.["nvidia.com/gpu"]).toBeUndefined();
    expect(c.image).toBe("mirror/trainer:1");
    const custom = buildJob(distillationJob({ runtime: { image: "mine:2" } }), {
      trainerImage: "mirror/trainer:1",
    });
    expect(custom.spec!.template.spec!.containers[0]!.image).toBe("mine:2");
  });

  it("keeps child names within the 63-character label limit, deterministically", () => {
    const long = "a".repeat(80);
    expect(boundedName(long)).toHaveLength(63);
    expect(boundedName(long)).toBe(boundedName(long));
    expect(boundedName(long)).not.toBe(boundedName("a".repeat(81)));
    expect(buildJob(distillationJob({}, long)).metadata?.name).toBe(jobNameFor(long));
  });

  it("gives two DistillationJobs two child names: names kept and names shortened cannot meet", () => {
    const dns = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
    const long = "train-" + "x".repeat(70);
    // The attack that worked against the old scheme: a job named exactly like another's shortened child.
    const impostor = legacyJobNameFor(long)!;
    expect(impostor).toHaveLength(63);
    expect(jobNameFor(impostor)).not.toBe(jobNameFor(long));
    expect(jobNameFor(long)).not.toBe(jobNameFor(jobNameFor(long)));
    // Kept: at most 62 characters; shortened: exactly 63. Disjoint by length, so a collision needs two long
    // names with the same 46-character prefix and the same 64 bits of SHA-256.
    const names = [
      "a",
      "a".repeat(62),
      "a".repeat(63),
      "a".repeat(64),
      "a".repeat(253),
      "a-".repeat(40),
      "a.".repeat(40) + "a",
      ...Array.from({ length: 2000 }, (_, i) => `${"job-".repeat(12)}${i}`),
    ];
    const jobNames = names.map(jobNameFor);
    expect(new Set(jobNames).size).toBe(names.length);
    for (const [i, name] of jobNames.entries()) {
      expect(name.length).toBe(names[i]!.length < 63 ? names[i]!.length : 63);
      expect(name).toMatch(dns);
    }
    // ConfigMaps: a kept name ends in "-config", a shortened one in hex digits.
    const configNames = names.map(configMapNameFor);
    expect(new Set(configNames).size).toBe(names.length);
    expect(configMapNameFor("a".repeat(253))).toMatch(/-[0-9a-f]{8}$/);
  });
});

describe("a safe default trainer pod", () => {
  const containerOf = (spec: Parameters<typeof distillationJob>[0], options = {}) =>
    buildJob(distillationJob(spec), options).spec!.template.spec!.containers[0]!;

  it("has a read-only root filesystem with a writable /tmp, /output and /checkpoints", () => {
    const job = buildJob(distillationJob());
    const c = job.spec!.template.spec!.containers[0]!;
    expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
    const writable = c.volumeMounts!.filter((m) => !m.readOnly).map((m) => m.mountPath);
    expect(writable.sort()).toEqual(["/checkpoints", "/output", "/tmp"]);
    const tmp = job.spec!.template.spec!.volumes!.find((v) => v.name === "tmp");
    expect(tmp?.emptyDir).toBeDefined();
  });

  it("requests and limits CPU and memory by default, so a quota'd namespace admits it", () => {
    expect(containerOf({}).resources).toMatchObject({
      requests: { cpu: "1", memory: "2Gi" },
      limits: { cpu: "4", memory: "8Gi" },
    });
  });

  it.each<[string, Parameters<typeof distillationJob>[0], object]>([
    [
      "a request above the default limit raises the limit",
      { runtime: { resources: { requests: { memory: "16Gi" } } } },
      { requests: { memory: "16Gi" }, limits: { memory: "16Gi" } },
    ],
    [
      "a request below it keeps the default limit",
      { runtime: { resources: { requests: { cpu: 0.5 } } } },
      { requests: { cpu: "0.5" }, limits: { cpu: "4" } },
    ],
    [
      "a limit alone stays alone (Kubernetes takes it as the request)",
      { runtime: { resources: { limits: { cpu: "500m" } } } },
      { limits: { cpu: "500m" } },
    ],
  ])("keeps request <= limit: %s", (_what, spec, expected) => {
    const r = containerOf(spec).resources!;
    expect(r).toMatchObject(expected);
    if ("limits" in expected && !("requests" in expected)) expect(r.requests?.cpu).toBeUndefined();
  });

  it("takes other defaults from the operator, or none", () => {
    const none = { requests: {}, limits: {} };
    expect(containerOf({ runtime: { gpus: 0 } }, { resourceDefaults: none }).resources).toEqual({});
    const small = { requests: { cpu: "100m" }, limits: { memory: "1Gi" } };
    expect(containerOf({ runtime: { gpus: 0 } }, { resourceDefaults: small }).resources).toEqual({
      requests: { cpu: "100m" },
      limits: { memory: "1Gi" },
    });
  });
});
