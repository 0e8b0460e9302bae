// The children of a DistillationStudy, as pure functions of the study (and, for Kueue, of the suspend flag already
// on the cluster): its ConfigMap (the study spec the trainer's `study` commands read), then one batch/v1 Job per
// stage — the teacher pass (Indexed, one pod per shard), the variants (ONE Indexed Job, index = variant, see
// expandVariants), the report (one pod). Every pod is built from the template by the same pod builder a
// DistillationJob's trainer pod comes from (job.ts buildPodTemplate); a stage adds its command, labels and env.
import type { V1ConfigMap, V1EnvVar, V1Job, V1PodFailurePolicyRule } from "@kubernetes/client-node";
import {
  API_VERSION,
  KIND,
  NON_RETRYABLE_EXIT_CODES,
  runCount,
  STUDY_ENV,
  STUDY_KIND,
  studyFetchArgs,
  studyStageArgs,
  studyTrainerConfig,
  type DistillationStudy,
  type StudyStage as TrainerStage,
} from "../../../api/v1alpha1/index.ts";
import {
  COMPONENT,
  CONFIG_FILE,
  LABEL_APP_NAME,
  LABEL_COMPONENT,
  LABEL_INSTANCE,
  LABEL_KUEUE_QUEUE,
  LABEL_MANAGED_BY,
  LABEL_STUDY_NAME,
  LABEL_STUDY_STAGE,
  TRAINER_CONTAINER,
  boundedName,
  studyConfigMapNameFor,
  studyJobNameFor,
} from "../names.ts";
import type { OwnerJob } from "../owner-job.ts";
import { SpecRefusal } from "./spec-refusal.ts";
import { CONFIGMAP_MAX_BYTES } from "./configmap.ts";
import { buildPodTemplate, GPU_RESOURCE, type JobBuildOptions } from "./job.ts";
import { FETCH_CONTAINER, hasRemoteInputs } from "./storage.ts";

/** A DistillationStudy as the controller sees it: parsed and defaulted, with the identity children need. */
export interface OwnerStudy extends DistillationStudy {
  metadata: DistillationStudy["metadata"] & { name: string; namespace: string; uid: string };
}

export type StudyStage = "teacher" | "variants" | "report";

/** Kueue's partial admission (batch/Job): admit at least this many of `parallelism` pods when the quota is short. */
export const KUEUE_MIN_PARALLELISM = "kueue.x-k8s.io/job-min-parallelism";
/** The trainer's name of each stage (api/v1alpha1/study-contract.ts). */
const TRAINER_STAGE: Record<StudyStage, TrainerStage> = {
  teacher: "teacher",
  variants: "variant",
  report: "report",
};
/** The trainer CLI, as the image's entrypoint runs it (the command replaces the entrypoint's `train`). */
const TRAINER_CLI = ["node", "trainer/src/cli.ts"];

/**
 * The Kueue LocalQueue of a study: spec.template.queueName, else the study's `kueue.x-k8s.io/queue-name` label
 * (as queueNameOf for a DistillationJob).
 */
export function studyQueueName(study: OwnerStudy): string | undefined {
  return study.spec.template.queueName ?? (study.metadata.labels?.[LABEL_KUEUE_QUEUE] || undefined);
}

export function studyLabels(study: OwnerStudy, stage?: StudyStage): Record<string, string> {
  return {
    [LABEL_APP_NAME]: "mokd-trainer",
    [LABEL_INSTANCE]: boundedName(study.metadata.name),
    [LABEL_COMPONENT]: stage ? `study-${stage}` : "study-config",
    [LABEL_MANAGED_BY]: COMPONENT,
    [LABEL_STUDY_NAME]: boundedName(study.metadata.name),
    ...(stage ? { [LABEL_STUDY_STAGE]: stage } : {}),
  };
}

function studyMetadata(study: OwnerStudy, name: string, stage?: StudyStage) {
  const { namespace, uid } = study.metadata;
  return {
    name,
    namespace,
    labels: studyLabels(study, stage),
    ownerReferences: [
      {
        apiVersion: API_VERSION,
        kind: STUDY_KIND,
        name: study.metadata.name,
        uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ],
  };
}

/** The study config the trainer reads (studyTrainerConfig: identity and the defaulted spec, never the status). */
export function studyConfig(study: OwnerStudy): string {
  return JSON.stringify(studyTrainerConfig(study), null, 2) + "\n";
}

/** Throws a SpecRefusal when the study config would not fit a ConfigMap. */
export function buildStudyConfigMap(study: OwnerStudy): V1ConfigMap {
  const config = studyConfig(study);
  const bytes = Buffer.byteLength(CONFIG_FILE) + Buffer.byteLength(config);
  if (bytes > CONFIGMAP_MAX_BYTES) {
    throw new SpecRefusal(
      `spec: the study config would be ${bytes} bytes, over the ConfigMap limit of ${CONFIGMAP_MAX_BYTES}`,
    );
  }
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: studyMetadata(study, studyConfigMapNameFor(study.metadata.name)),
    data: { [CONFIG_FILE]: config },
  };
}

/** The template as a DistillationJob of the study's identity: what the shared pod builder takes. */
function templateJob(study: OwnerStudy): OwnerJob {
  const { name, namespace, uid, labels } = study.metadata;
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, namespace, uid, ...(labels ? { labels } : {}) },
    spec: study.spec.template,
  };
}

/**
 * The study's variable on top of the operator's (MOKD_CONFIG, MOKD_JOB_NAME = the study ...): the trainer labels
 * its metrics with it. JOB_COMPLETION_INDEX (the shard or the variant) is the Job controller's, on every pod of
 * an Indexed Job.
 */
const studyEnv = (study: OwnerStudy): V1EnvVar[] => [{ name: STUDY_ENV, value: study.metadata.name }];

const withEnv = (env: V1EnvVar[] | undefined, extra: V1EnvVar[]): V1EnvVar[] => {
  const names = new Set(extra.map((e) => e.name));
  return [...(env ?? []).filter((e) => !names.has(e.name)), ...extra];
};

/**
 * Whether a stage's Job starts suspended: runPolicy.suspend suspends the study's current stage; under Kueue a new
 * Job starts suspended and Kueue un-suspends it on admission (so an existing one keeps what is on the cluster).
 */
export function stageSuspend(study: OwnerStudy, observedSuspend: boolean | undefined): boolean {
  if (study.spec.template.runPolicy.suspend) return true;
  if (!studyQueueName(study)) return false;
  return observedSuspend ?? true;
}

/** The non-retriable exit codes of the trainer (and its `fetch` initializer), mapped to `action`. */
function exitCodeRules(
  study: OwnerStudy,
  action: "FailJob" | "FailIndex",
  stage: StudyStage,
): V1PodFailurePolicyRule[] {
  const fetches = stage !== "report" && hasRemoteInputs(templateJob(study));
  const containers = [TRAINER_CONTAINER, ...(fetches ? [FETCH_CONTAINER] : [])];
  return [
    ...containers.map((containerName) => ({
      action,
      onExitCodes: { containerName, operator: "In", values: [...NON_RETRYABLE_EXIT_CODES] },
    })),
    // Evictions, preemption and node drains are not the trainer's fault: not counted as retries.
    { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
  ];
}

/** The pod template of a stage: the shared trainer pod with the stage's command, env and labels. */
function stageTemplate(study: OwnerStudy, stage: StudyStage, options: JobBuildOptions) {
  const template = buildPodTemplate(
    templateJob(study),
    { ...options, configMapName: studyConfigMapNameFor(study.metadata.name) },
    studyLabels(study, stage),
  );
  const pod = template.spec!;
  const trainer = pod.containers.find((c) => c.name === TRAINER_CONTAINER)!;
  trainer.command = [...TRAINER_CLI, ...studyStageArgs(TRAINER_STAGE[stage])];
  trainer.env = withEnv(trainer.env, studyEnv(study));
  // The report only reads results and renders them: no GPU for it (MOKD_GPUS stays: the report's devices per run).
  if (stage === "report") {
    const limits = Object.entries(trainer.resources?.limits ?? {}).filter(([name]) => name !== GPU_RESOURCE);
    trainer.resources = { ...trainer.resources, limits: Object.fromEntries(limits) };
  }
  // The `fetch` initializer fetches what the stage reads (the report reads only the shared storage: none).
  if (stage === "report") delete pod.initContainers;
  for (const init of pod.initContainers ?? []) {
    init.command = [...TRAINER_CLI, ...studyFetchArgs(TRAINER_STAGE[stage])];
    init.env = withEnv(init.env, studyEnv(study));
  }
  return template;
}

function stageJob(study: OwnerStudy, stage: StudyStage, options: JobBuildOptions): V1Job {
  const { runPolicy } = study.spec.template;
  const metadata = studyMetadata(study, studyJobNameFor(study.metadata.name, stage), stage);
  const queue = studyQueueName(study);
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: queue ? { ...metadata, labels: { ...metadata.labels, [LABEL_KUEUE_QUEUE]: queue } } : metadata,
    spec: {
      ...(runPolicy.activeDeadlineSeconds ? { activeDeadlineSeconds: runPolicy.activeDeadlineSeconds } : {}),
      suspend: stageSuspend(study, options.observedSuspend),
      template: stageTemplate(study, stage, options),
    },
  };
}

/** The teacher pass: Indexed, one pod per shard; any non-retriable exit fails the stage (and the study). */
export function buildTeacherJob(study: OwnerStudy, options: JobBuildOptions = {}): V1Job {
  const job = stageJob(study, "teacher", options);
  const shards = study.spec.teacherShards;
  job.spec = {
    ...job.spec!,
    completionMode: "Indexed",
    completions: shards,
    parallelism: shards,
    backoffLimit: study.spec.template.runPolicy.backoffLimit,
    podFailurePolicy: { rules: exitCodeRules(study, "FailJob", "teacher") },
  };
  return job;
}

/**
 * The variants: ONE Indexed Job, index = variant (expandVariants). Each index has its own retry budget
 * (backoffLimitPerIndex) and every index may fail (maxFailedIndexes = completions): one variant's failure never
 * fails the others; a non-retriable exit fails only its index (FailIndex). Under Kueue, partial admission: a
 * quota smaller than parallelism admits fewer pods, down to one.
 */
export function buildVariantsJob(study: OwnerStudy, options: JobBuildOptions = {}): V1Job {
  const job = stageJob(study, "variants", options);
  const runs = runCount(study.spec);
  const parallelism = Math.min(study.spec.parallelism, runs);
  job.spec = {
    ...job.spec!,
    completionMode: "Indexed",
    completions: runs,
    parallelism,
    backoffLimitPerIndex: study.spec.template.runPolicy.backoffLimit,
    maxFailedIndexes: runs,
    podFailurePolicy: { rules: exitCodeRules(study, "FailIndex", "variants") },
  };
  if (studyQueueName(study) && parallelism > 1)
    job.metadata!.annotations = { ...job.metadata!.annotations, [KUEUE_MIN_PARALLELISM]: "1" };
  return job;
}

/** The report: one pod reading every variant's results from the shared storage (`study report`). */
export function buildReportJob(study: OwnerStudy, options: JobBuildOptions = {}): V1Job {
  const job = stageJob(study, "report", options);
  job.spec = {
    ...job.spec!,
    completions: 1,
    parallelism: 1,
    backoffLimit: study.spec.template.runPolicy.backoffLimit,
    podFailurePolicy: { rules: exitCodeRules(study, "FailJob", "report") },
  };
  return job;
}

export const STAGE_BUILDERS: Record<StudyStage, (s: OwnerStudy, o?: JobBuildOptions) => V1Job> = {
  teacher: buildTeacherJob,
  variants: buildVariantsJob,
  report: buildReportJob,
};
