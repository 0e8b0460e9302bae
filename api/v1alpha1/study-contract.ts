// The trainer-operator contract of a DistillationStudy: which trainer command each stage's pods run, what their
// config file holds, which environment they read, where the stages leave their outputs in the study's shared
// storage, and the teacher pass's manifest. The operator builds the Jobs from these; the trainer reads and writes
// by them. Exit codes and termination messages are the DistillationJob's (exit-codes.ts, termination.ts; a
// variant's Result carries the study fields too).
//
// Stages (docs/operator.md, docs/trainer.md):
//   teacher  an Indexed Job of `teacherShards` completions: shard i computes the frozen teacher's outputs
//            (logits, and features when a variant's objectives read them) for its slice of the training split
//            and writes them under teacher/; shard 0 trains the teacher first when none is given.
//   variant  an Indexed Job of runCount(spec) completions: index -> expandVariants(spec)[index] ->
//            variantTrainerSpec; reads the teacher outputs (never the teacher model) and trains one student.
//   report   one pod after the variants ended (whatever their outcome): reads every variant's summary, writes
//            report.html and study-summary.json (a missing summary is a failed run).
import { posix } from "node:path";
import { z } from "zod";
import { API_VERSION } from "./distillationjob.ts";
import type { DistillationStudySpec } from "./distillationstudy.ts";
import { STUDY_KIND } from "./distillationstudy.ts";
import { TRAINER_SPEC_FIELDS, type TrainerSpec } from "./trainer-spec.ts";

export const studyStageNames = ["teacher", "variant", "report"] as const;
export type StudyStage = (typeof studyStageNames)[number];

// ---- Commands ----

/** The trainer container's args of a stage (the image's entrypoint is the trainer CLI, as for `train`). */
export const studyStageArgs = (stage: StudyStage): string[] => ["study", stage];
/**
 * The init container's args of a stage: the teacher stage fetches data.path and teacher.model; a variant
 * data.path and student.model (never teacher.model: it reads the teacher's outputs itself, from the shared
 * storage, verifying them); the report fetches nothing (run it without an init container, or with: it exits 0).
 */
export const studyFetchArgs = (stage: StudyStage): string[] => ["fetch", "--study-stage", stage];

// ---- Environment ----

/** Set by Kubernetes in every pod of an Indexed Job: the shard (teacher) or the variant's index. */
export const COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX";
/**
 * The study's name, set by the operator in every study pod (with MOKD_JOB_NAME = the study's name too, and
 * MOKD_JOB_NAMESPACE, MOKD_CONFIG, MOKD_BACKEND, MOKD_GPUS, MOKD_CACHE_DIR as for a DistillationJob). The
 * trainer adds it to every metric as `mokd_study`, and the variant's name (from the index) as `mokd_variant`
 * (`teacher-<shard>` in the teacher stage, `report` in the report's): one pod template serves every index, so
 * the operator cannot set a per-variant variable.
 */
export const STUDY_ENV = "MOKD_STUDY";
/** Metric labels of study pods (api/metrics.ts keeps mokd_job and mokd_namespace). */
export const STUDY_METRIC_LABELS = { study: "mokd_study", variant: "mokd_variant" } as const;
/** The `mokd_variant` label value of a teacher shard's and of the report's pod. */
export const teacherStageLabel = (shard: number) => `teacher-${shard}`;
export const REPORT_STAGE_LABEL = "report";

// ---- Config ----

/**
 * The config every study pod reads (the ConfigMap's `job.json`, mounted where MOKD_CONFIG points): the study as a
 * manifest, its template cut to the trainer's part (TRAINER_SPEC_FIELDS: runtime, runPolicy and queueName are the
 * operator's), and variants, seeds, teacherShards and parallelism as they are. JSON.
 */
export function studyTrainerConfig(study: {
  metadata: { name?: string; namespace?: string; uid?: string; generation?: number };
  spec: DistillationStudySpec;
}): Record<string, unknown> {
  const { name, namespace, uid, generation } = study.metadata;
  const { template, variants, seeds, teacherShards, parallelism } = study.spec;
  const trainerTemplate = Object.fromEntries(TRAINER_SPEC_FIELDS.map((f) => [f, template[f]]));
  return {
    apiVersion: API_VERSION,
    kind: STUDY_KIND,
    metadata: { name, namespace, uid, generation },
    spec: { template: trainerTemplate, variants, seeds, teacherShards, parallelism },
  };
}

// ---- Shared storage ----

/**
 * The study's shared storage: template.output.uri (an s3:// prefix) when set, else template.output.path (where
 * the operator mounts template.runtime.volumes.output, a ReadWriteMany claim, in every study pod). With a URI,
 * each pod writes under its own output.path and uploads there.
 */
export type SharedRoot = { kind: "s3"; uri: string } | { kind: "path"; path: string };

export function sharedRoot(template: Pick<TrainerSpec, "output">): SharedRoot {
  const { uri, path } = template.output;
  return uri ? { kind: "s3", uri: uri.replace(/\/+$/, "") } : { kind: "path", path };
}

/** `relative` (a StudyLayout path) under the shared root, as an s3:// URI or a file path. */
export function sharedLocation(root: SharedRoot, relative: string): string {
  return root.kind === "s3" ? `${root.uri}/${relative}` : posix.join(root.path, relative);
}

/** Paths under the shared root. A stage writes its marker file (the one its reader waits for) last. */
export const StudyLayout = {
  teacherDir: "teacher",
  /** Float32 little-endian rows of the shard's samples, in training-split order: logits then features. */
  teacherShard: (shard: number) => `teacher/shard-${shard}.bin`,
  /** The shard's manifest (TeacherShardManifest), written after its .bin: a shard without one is not done. */
  teacherShardManifest: (shard: number) => `teacher/shard-${shard}.json`,
  /** The teacher stage's summary per shard (TeacherStageSummary): what it computed and whether it trained. */
  teacherSummary: (shard: number) => `teacher/summary-${shard}.json`,
  /** The teacher shard 0 trained (when none was given): saved for the user; no variant loads it. */
  teacherModel: "teacher/model",
  variantDir: (name: string) => `variants/${name}`,
  /** The variant's RunSummary plus `study` (VariantStudyFields), written after its model, before its upload. */
  variantSummary: (name: string) => `variants/${name}/summary.json`,
  variantMetrics: (name: string) => `variants/${name}/metrics.jsonl`,
  report: "report.html",
  /** The study's answer (StudySummaryFile), written by the report stage after report.html. */
  studySummary: "study-summary.json",
} as const;

/**
 * A stage's own checkpoint location under template.output.checkpointPath and checkpoints.uri, so no two pods of a
 * study share one: `teacher-<shard>` or `variants/<name>`.
 */
export function studyCheckpointSuffix(stage: { teacherShard: number } | { variant: string }): string {
  return "teacherShard" in stage ? `teacher-${stage.teacherShard}` : `variants/${stage.variant}`;
}

/** The slice of `samples` training samples shard `index` of `shards` computes: contiguous, sizes differ by <= 1. */
export function shardRange(samples: number, shards: number, index: number): { start: number; count: number } {
  const base = Math.floor(samples / shards);
  const extra = samples % shards;
  const start = index * base + Math.min(index, extra);
  return { start, count: base + (index < extra ? 1 : 0) };
}

// ---- The teacher pass ----

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const TeacherShardManifest = z.object({
  version: z.literal(1),
  shard: z.number().int().min(0),
  shards: z.number().int().min(1),
  /** Training samples of the whole split, and this shard's slice of them. */
  samples: z.number().int().min(0),
  start: z.number().int().min(0),
  count: z.number().int().min(0),
  numClasses: z.number().int().min(1),
  /** Teacher feature width stored per row after the logits (0: logits only). */
  featureDim: z.number().int().min(0),
  bytes: z.number().int().min(0),
  sha256: Sha256,
  /** The training split's content (data spec, split seed, sizes, labels and pixels): variants compare theirs. */
  dataFingerprint: z.string(),
  /** The teacher (its spec, and for a trained one the template's seed and recipe): variants compare theirs. */
  teacherFingerprint: z.string(),
  teacher: z.object({
    source: z.enum(["trained", "loaded"]),
    /** Test accuracy (shard 0 evaluates it; other shards leave it out). */
    accuracy: z.number().min(0).max(1).optional(),
    validationAccuracy: z.number().min(0).max(1).optional(),
    parameters: z.number().int().min(0).optional(),
  }),
  createdAt: z.string(),
});
export type TeacherShardManifest = z.infer<typeof TeacherShardManifest>;

/** What one teacher-stage pod did: the count a test (and a user) reads to see the teacher trained once. */
export const TeacherStageSummary = z.object({
  stage: z.literal("teacher"),
  shard: z.number().int().min(0),
  shards: z.number().int().min(1),
  /** trained: this pod trained it; loaded: template.teacher.model; reused: a completed shard was found. */
  teacher: z.enum(["trained", "loaded", "reused"]),
  teacherTrainings: z.number().int().min(0).max(1),
  accuracy: z.number().min(0).max(1).optional(),
  samples: z.number().int().min(0),
  durationSeconds: z.number().min(0),
});
export type TeacherStageSummary = z.infer<typeof TeacherStageSummary>;

/** The fields a variant adds to its summary.json (`study`). */
export const VariantStudyFields = z.object({
  name: z.string(),
  index: z.number().int().min(0),
  arm: z.string(),
  seed: z.number().int(),
  method: z.string(),
  alpha: z.number().optional(),
  /** shared: read from the teacher pass; none: the student alone needs no teacher. Never the live teacher. */
  teacherOutputs: z.enum(["shared", "none"]),
  /** The shard manifests' location and fingerprint it verified (absent for `none`). */
  teacherOutputsUri: z.string().optional(),
  dataFingerprint: z.string().optional(),
});
export type VariantStudyFields = z.infer<typeof VariantStudyFields>;
