// The study's children: the ConfigMap the trainer reads and the three stage Jobs, built from the same pod
// builder as a DistillationJob's trainer Job.
import { describe, expect, it } from "vitest";
import {
  DistillationStudy,
  expandVariants,
  NON_RETRYABLE_EXIT_CODES,
  runCount,
  studyTrainerConfig,
} from "../../../../api/v1alpha1/index.ts";
import { buildJob } from "../../../../operator/src/builders/job.ts";
import {
  buildReportJob,
  buildStudyConfigMap,
  buildTeacherJob,
  buildVariantsJob,
  KUEUE_MIN_PARALLELISM,
  stageSuspend,
} from "../../../../operator/src/builders/study.ts";
import { distillationJob } from "../../../fixtures/kube-objects.ts";
import { study } from "../../../fixtures/study.ts";

const trainerOf = (job: ReturnType<typeof buildTeacherJob>) =>
  job.spec!.template.spec!.containers.find((c) => c.name === "trainer")!;
const env = (job: ReturnType<typeof buildTeacherJob>) =>
  Object.fromEntries((trainerOf(job).env ?? []).map((e) => [e.name, e.value]));

describe("study ConfigMap", () => {
  it("holds the contract's trainer config (studyTrainerConfig) under job.json, owned by the study", () => {
    const s = study({ seeds: [1, 2] });
    const cm = buildStudyConfigMap(s);
    expect(cm.metadata?.name).toBe("pilot-study");
    expect(JSON.parse(cm.data!["job.json"]!)).toEqual(JSON.parse(JSON.stringify(studyTrainerConfig(s))));
    expect(cm.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: "DistillationStudy",
      uid: "study-uid",
      controller: true,
    });
  });
});

describe("teacher Job", () => {
  it("is Indexed with one completion per shard and fails the stage on a non-retriable exit", () => {
    const job = buildTeacherJob(
      study({
        teacherShards: 3,
        template: { output: { uri: "s3://bucket/p" }, teacher: { model: "s3://bucket/teacher.onnx" } },
      }),
    );
    expect(job.metadata?.name).toBe("pilot-teacher");
    expect(job.spec).toMatchObject({
      completionMode: "Indexed",
      completions: 3,
      parallelism: 3,
      backoffLimit: 3,
    });
    const rules = job.spec!.podFailurePolicy!.rules;
    expect(rules[0]).toMatchObject({
      action: "FailJob",
      onExitCodes: { containerName: "trainer", values: [...NON_RETRYABLE_EXIT_CODES] },
    });
    // A remote teacher is fetched by the initializer, with the stage's fetch args.
    expect(rules.map((r) => r.onExitCodes?.containerName)).toContain("fetch");
    expect(job.spec!.template.spec!.initContainers?.[0]?.command).toEqual([
      "node",
      "trainer/src/cli.ts",
      "fetch",
      "--study-stage",
      "teacher",
    ]);
    expect(trainerOf(job).command).toEqual(["node", "trainer/src/cli.ts", "study", "teacher"]);
  });

  it("runs the pod a DistillationJob of the template would run, plus the study's command, env and labels", () => {
    const s = study({
      template: { output: { uri: "s3://bucket/p" }, runtime: { gpus: 1, podLabels: { team: "a" } } },
    });
    const teacher = buildTeacherJob(s);
    const asJob = buildJob(
      distillationJob(
        { output: { uri: "s3://bucket/p" }, runtime: { gpus: 1, podLabels: { team: "a" } } },
        "pilot",
      ),
    );
    const strip = (c: ReturnType<typeof trainerOf>) => ({ ...c, command: undefined, env: undefined });
    expect(strip(trainerOf(teacher))).toEqual(strip(trainerOf(asJob)));
    expect(teacher.spec!.template.spec!.securityContext).toEqual(asJob.spec!.template.spec!.securityContext);
    expect(teacher.spec!.template.spec!.volumes?.find((v) => v.name === "config")?.configMap?.name).toBe(
      "pilot-study",
    );
    expect(env(teacher)).toMatchObject({
      MOKD_STUDY: "pilot",
      MOKD_JOB_NAME: "pilot",
      MOKD_CONFIG: "/etc/mokd/job.json",
      MOKD_GPUS: "1",
    });
    expect(teacher.spec!.template.metadata?.labels).toMatchObject({
      team: "a",
      "mokd.io/study-name": "pilot",
      "mokd.io/study-stage": "teacher",
    });
    expect(teacher.spec!.template.metadata?.labels?.["mokd.io/job-name"]).toBeUndefined();
  });
});

describe("variants Job", () => {
  const s = study({
    seeds: [1, 2, 3],
    parallelism: 8,
    variants: { fixedAlphas: [0.5, 0.9] },
    template: { output: { uri: "s3://bucket/p" }, runPolicy: { backoffLimit: 2 } },
  });
  const job = buildVariantsJob(s);

  it("is ONE Indexed Job, an index per variant and seed, each with its own retries, every index free to fail", () => {
    expect(runCount(s.spec)).toBe(15);
    expect(job.metadata?.name).toBe("pilot-variants");
    expect(job.spec).toMatchObject({
      completionMode: "Indexed",
      completions: 15,
      parallelism: 8,
      backoffLimitPerIndex: 2,
      maxFailedIndexes: 15,
    });
    expect(job.spec!.backoffLimit).toBeUndefined();
    expect(trainerOf(job).command).toEqual(["node", "trainer/src/cli.ts", "study", "variant"]);
  });

  it("fails only the index on a non-retriable exit code, and ignores disruptions", () => {
    const rules = job.spec!.podFailurePolicy!.rules;
    expect(rules[0]).toMatchObject({
      action: "FailIndex",
      onExitCodes: { containerName: "trainer", operator: "In", values: [...NON_RETRYABLE_EXIT_CODES] },
    });
    expect(rules.some((r) => r.action === "FailJob")).toBe(false);
    expect(rules.at(-1)).toEqual({
      action: "Ignore",
      onPodConditions: [{ type: "DisruptionTarget", status: "True" }],
    });
  });

  it("never asks for more pods than runs", () => {
    const small = study({ seeds: [1], parallelism: 50, variants: { automatic: ["mokd"], fixedAlphas: [] } });
    expect(buildVariantsJob(small).spec?.parallelism).toBe(2);
  });

  it("under Kueue: the queue label on every stage Job, partial admission down to one pod on the variants", () => {
    const queued = study({
      parallelism: 8,
      template: { output: { uri: "s3://bucket/p" }, queueName: "gpus" },
    });
    for (const j of [buildTeacherJob(queued), buildVariantsJob(queued), buildReportJob(queued)]) {
      expect(j.metadata?.labels?.["kueue.x-k8s.io/queue-name"]).toBe("gpus");
      // A new Job starts suspended under Kueue; Kueue admits it.
      expect(j.spec?.suspend).toBe(true);
    }
    expect(buildVariantsJob(queued).metadata?.annotations?.[KUEUE_MIN_PARALLELISM]).toBe("1");
    expect(buildTeacherJob(queued).metadata?.annotations?.[KUEUE_MIN_PARALLELISM]).toBeUndefined();
    // The study's own label names the queue too; no queue: no partial admission annotation.
    const labelled = study({}, { "kueue.x-k8s.io/queue-name": "team" });
    expect(buildVariantsJob(labelled).metadata?.labels?.["kueue.x-k8s.io/queue-name"]).toBe("team");
    expect(buildVariantsJob(study()).metadata?.annotations?.[KUEUE_MIN_PARALLELISM]).toBeUndefined();
  });

  it("suspends with runPolicy.suspend; under Kueue keeps what is on the cluster", () => {
    expect(
      stageSuspend(
        study({ template: { output: { uri: "s3://bucket/p" }, runPolicy: { suspend: true } } }),
        false,
      ),
    ).toBe(true);
    expect(stageSuspend(study(), undefined)).toBe(false);
    const queued = study({ template: { output: { uri: "s3://bucket/p" }, queueName: "q" } });
    expect(stageSuspend(queued, false)).toBe(false);
    expect(stageSuspend(queued, undefined)).toBe(true);
  });
});

describe("report Job", () => {
  it("one pod, `study report`, no GPU and no initializer", () => {
    const s = study({
      template: {
        output: { uri: "s3://bucket/p" },
        data: { path: "s3://bucket/data" },
        runtime: { gpus: 1 },
      },
    });
    const job = buildReportJob(s);
    expect(job.spec).toMatchObject({ completions: 1, parallelism: 1 });
    expect(job.spec?.completionMode).toBeUndefined();
    expect(trainerOf(job).command).toEqual(["node", "trainer/src/cli.ts", "study", "report"]);
    expect(trainerOf(job).resources?.limits?.["nvidia.com/gpu"]).toBeUndefined();
    // MOKD_GPUS stays the runs' devices: the report computes device-seconds with it.
    expect(env(job).MOKD_GPUS).toBe("1");
    expect(job.spec!.template.spec!.initContainers).toBeUndefined();
    expect(job.spec!.podFailurePolicy!.rules.map((r) => r.onExitCodes?.containerName)).not.toContain("fetch");
  });
});

describe("names", () => {
  it("keeps a long study's Job names within a DNS label with room for the index", () => {
    const long = DistillationStudy.parse({
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationStudy",
      metadata: { name: "x".repeat(70), namespace: "a", uid: "u" },
      spec: { template: { output: { uri: "s3://bucket/p" } } },
    });
    const job = buildVariantsJob(long as Parameters<typeof buildVariantsJob>[0]);
    expect(job.metadata!.name!.length).toBeLessThanOrEqual(59);
    expect(expandVariants(long.spec).length).toBeLessThan(1000);
  });
});
