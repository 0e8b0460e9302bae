// The DistillationStudy API (distillation.mokd.io/v1alpha1): one teacher, many student variants, one answer.
//
// A study is the pilot a team runs before adopting MoKD: on their data and teacher, do the automatic weightings
// beat the fixed-weight grid they would otherwise search, and the student alone, and at what cost? It is its own
// kind, as Kubeflow Trainer keeps OptimizationJob apart from TrainJob: a DistillationJob is one run with one
// result; a study owns many runs and a comparison, with its own status and lifecycle (docs/operator.md).
//
// The template is a whole DistillationJob spec; each variant overrides only the weighting (strategy, and the
// objectives for the student alone) and the seed. The expansion into variants is a pure function of the spec,
// defined here once: the operator (index -> variant for status) and the trainer (index -> what to train) both
// call it, so they cannot disagree on what index 7 is.
import { z } from "zod";
import { DistillationJobSpec, Condition, GROUP, ObjectMeta, API_VERSION } from "./distillationjob.ts";
import { strategyNames, withRules, type CrossFieldRule, type TrainerSpec } from "./trainer-spec.ts";

export const STUDY_KIND = "DistillationStudy";
export const STUDY_PLURAL = "distillationstudies";
export const STUDY_SINGULAR = "distillationstudy";
// Not "ds": kubectl already maps it to DaemonSets.
export const STUDY_SHORT_NAMES = ["dstudy"];
export const STUDY_CRD_NAME = `${STUDY_PLURAL}.${GROUP}`;

/** The automatic weightings a study can compare (every multi-objective strategy but the fixed `sum`). */
export const automaticMethods = strategyNames.filter((n) => n !== "sum");
export type AutomaticMethod = (typeof automaticMethods)[number];

/** The fixed-weight grid's default: 7 cells that include classic KD's 0.9 and LS-KD's published ~0.99. */
export const DEFAULT_FIXED_ALPHAS = [0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99];
/** Completions of the variants' Indexed Job: variants x seeds. */
export const MAX_STUDY_RUNS = 500;

export const VariantsSpec = z
  .object({
    automatic: z
      .array(z.enum(automaticMethods as [AutomaticMethod, ...AutomaticMethod[]]))
      .max(automaticMethods.length)
      .default(["mokd", "mokd-amortized"])
      .describe("Automatic weightings to run (strategy names), each with the template's own settings."),
    fixedAlphas: z
      .array(z.number().gt(0).max(1))
      .max(32)
      .default(DEFAULT_FIXED_ALPHAS)
      .describe(
        "The fixed-weight grid of the template's distillation loss (strategy `sum`): alpha is the distillation weight, 1 - alpha the task's (the feature weight stays the template's). Empty: no grid. The best cell is chosen on validation accuracy.",
      ),
    studentAlone: z
      .boolean()
      .default(true)
      .describe("Also train the student alone (cross-entropy only, no teacher): what distillation adds."),
  })
  .describe("Which student variants the study trains; each runs once per seed.");
export type VariantsSpec = z.infer<typeof VariantsSpec>;

const studySpecShape = {
  template: DistillationJobSpec.prefault({}).describe(
    "The DistillationJob every variant runs (teacher, student, data, training, storage, runtime ...); a variant changes only `strategy` (and `objectives` for the student alone) and `training.seed`. `output` is the study's shared storage: the teacher's outputs, every variant's results and the study report go under it, so it must be an s3:// `output.uri` or a `runtime.volumes.output` claim every pod can mount (ReadWriteMany). `runPolicy` applies per stage: `backoffLimit` is each variant's own retry budget (the Indexed Job's backoffLimitPerIndex: one variant's failure never fails the others), `suspend` suspends the whole study, `ttlSecondsAfterFinished` deletes the study.",
  ),
  variants: VariantsSpec.prefault({}),
  seeds: z
    .array(z.number().int().min(0).max(2147483647))
    .min(1)
    .max(20)
    .default([1, 2, 3])
    .describe(
      "Seeds (training.seed) each variant runs with. With two or more, the status gives each automatic weighting's paired difference against the best fixed cell with a 95% t-interval (df = seeds - 1).",
    ),
  parallelism: z
    .number()
    .int()
    .min(1)
    .max(256)
    .default(4)
    .describe(
      "Most variant pods at once (the Indexed Job's parallelism). Under Kueue the queue's quota may admit fewer: the study admits partially, down to one pod.",
    ),
  teacherShards: z
    .number()
    .int()
    .min(1)
    .max(64)
    .default(1)
    .describe(
      "Pods of the teacher pass (an Indexed Job, one shard of the training split each). More than 1 needs a given teacher (`template.teacher.model`): a teacher trained on the spot is trained once, in one pod.",
    ),
};

type StudySpec = z.output<z.ZodObject<typeof studySpecShape>>;

/** How many runs (variants x seeds) a spec asks for. */
export function runCount(spec: Pick<StudySpec, "variants" | "seeds">): number {
  const arms =
    spec.variants.automatic.length + spec.variants.fixedAlphas.length + (spec.variants.studentAlone ? 1 : 0);
  return arms * spec.seeds.length;
}

export const studySpecRules: CrossFieldRule<StudySpec>[] = [
  {
    cel: "self.template.objectives.distillation.enabled",
    message:
      "a study compares weightings of the distillation loss: template.objectives.distillation.enabled must be true",
    field: "template.objectives.distillation.enabled",
    holds: (s) => s.template.objectives.distillation.enabled,
  },
  {
    cel: "size(self.variants.automatic) + size(self.variants.fixedAlphas) + (self.variants.studentAlone ? 1 : 0) >= 1",
    message: "a study needs at least one variant (automatic, fixedAlphas or studentAlone)",
    field: "variants",
    holds: (s) => runCount(s) >= 1,
  },
  {
    cel: `(size(self.variants.automatic) + size(self.variants.fixedAlphas) + (self.variants.studentAlone ? 1 : 0)) * size(self.seeds) <= ${MAX_STUDY_RUNS}`,
    message: `at most ${MAX_STUDY_RUNS} runs (variants x seeds)`,
    field: "seeds",
    holds: (s) => runCount(s) <= MAX_STUDY_RUNS,
  },
  {
    cel: "self.seeds.all(x, self.seeds.exists_one(y, y == x))",
    message: "seeds must be unique",
    field: "seeds",
    holds: (s) => new Set(s.seeds).size === s.seeds.length,
  },
  {
    cel: "self.variants.fixedAlphas.all(x, self.variants.fixedAlphas.exists_one(y, y == x))",
    message: "fixedAlphas must be unique",
    field: "variants.fixedAlphas",
    holds: (s) => new Set(s.variants.fixedAlphas).size === s.variants.fixedAlphas.length,
  },
  {
    cel: "self.variants.automatic.all(x, self.variants.automatic.exists_one(y, y == x))",
    message: "automatic must be unique",
    field: "variants.automatic",
    holds: (s) => new Set(s.variants.automatic).size === s.variants.automatic.length,
  },
  {
    cel: "self.teacherShards == 1 || has(self.template.teacher.model)",
    message:
      "teacherShards > 1 needs a given teacher (template.teacher.model); a teacher trained on the spot is trained in one pod",
    field: "teacherShards",
    holds: (s) => s.teacherShards === 1 || s.template.teacher.model !== undefined,
  },
  {
    cel: "has(self.template.output.uri) || has(self.template.runtime.volumes.output)",
    message:
      "a study's pods share the teacher's outputs and their results: set template.output.uri (s3://) or template.runtime.volumes.output (a ReadWriteMany claim)",
    field: "template.output",
    holds: (s) => s.template.output.uri !== undefined || s.template.runtime.volumes.output !== undefined,
  },
  {
    cel: "self.variants == oldSelf.variants && self.seeds == oldSelf.seeds && self.teacherShards == oldSelf.teacherShards && self.parallelism == oldSelf.parallelism",
    message:
      "variants, seeds, teacherShards and parallelism are immutable (each stage's Job is built once): create a new DistillationStudy to change them",
    field: "variants",
    holds: () => true,
    transition: true,
  },
];

export const DistillationStudySpec = withRules(z.object(studySpecShape), studySpecRules).describe(
  "One teacher, several student variants over seeds, one comparison. Only template.runPolicy may change after creation.",
);
export type DistillationStudySpec = z.infer<typeof DistillationStudySpec>;
export type DistillationStudySpecInput = z.input<typeof DistillationStudySpec>;

// ---- Variants: the one expansion both sides use ----

export type VariantMethod = "alone" | "fixed" | AutomaticMethod;

export interface StudyVariant {
  /** The Indexed Job completion index that runs it. */
  index: number;
  /** The arm (variant without its seed): `alone`, `mokd`, `kd@0.9` ... Seeds of one arm are compared paired. */
  arm: string;
  /** `<arm>-s<seed>`, unique in the study, e.g. `kd@0.9-s2`. */
  name: string;
  method: VariantMethod;
  /** The distillation weight of a fixed cell. */
  alpha?: number;
  seed: number;
}

/** Arms in a fixed order (alone, automatic, fixed grid), each with every seed in spec order: index = position. */
export function expandVariants(
  spec: Pick<DistillationStudySpec, "variants" | "seeds" | "template">,
): StudyVariant[] {
  const loss = spec.template.objectives.distillation.loss;
  const arms: Omit<StudyVariant, "index" | "name" | "seed">[] = [
    ...(spec.variants.studentAlone ? [{ arm: "alone", method: "alone" as const }] : []),
    ...spec.variants.automatic.map((m) => ({ arm: m, method: m })),
    ...spec.variants.fixedAlphas.map((alpha) => ({
      arm: `${loss}@${alpha}`,
      method: "fixed" as const,
      alpha,
    })),
  ];
  return arms.flatMap((a, armIndex) =>
    spec.seeds.map((seed, seedIndex) => ({
      ...a,
      index: armIndex * spec.seeds.length + seedIndex,
      name: `${a.arm}-s${seed}`,
      seed,
    })),
  );
}

/** The trainer spec a variant trains: the template with the variant's weighting and seed. */
export function variantTrainerSpec<T extends TrainerSpec>(template: T, variant: StudyVariant): T {
  const training = { ...template.training, seed: variant.seed };
  if (variant.method === "alone") {
    return {
      ...template,
      training,
      objectives: {
        ...template.objectives,
        task: { ...template.objectives.task, enabled: true },
        distillation: { ...template.objectives.distillation, enabled: false },
        feature: { ...template.objectives.feature, enabled: false },
      },
      strategy: { ...template.strategy, name: "sum", weights: { ...template.strategy.weights, task: 1 } },
    };
  }
  if (variant.method === "fixed") {
    const alpha = variant.alpha ?? 0.5;
    // Rounded: 1 - 0.7 is 0.30000000000000004 in binary, and the weights show in logs and reports.
    const weights = {
      ...template.strategy.weights,
      task: Number((1 - alpha).toFixed(9)),
      distillation: alpha,
    };
    return { ...template, training, strategy: { ...template.strategy, name: "sum", weights } };
  }
  return { ...template, training, strategy: { ...template.strategy, name: variant.method } };
}

// ---- Status ----

export const studyPhases = ["Pending", "Running", "Suspended", "Succeeded", "Failed"] as const;
export const studyStages = ["Teacher", "Variants", "Report", "Done"] as const;
export const variantPhases = ["Pending", "Running", "Succeeded", "Failed"] as const;

const Accuracy = z.number().min(0).max(1);

export const VariantStatus = z
  .object({
    index: z.number().int().min(0).describe("Completion index of the variants' Indexed Job."),
    name: z.string().describe("`<arm>-s<seed>`."),
    arm: z.string().describe("The variant without its seed: alone, a strategy name, or `<loss>@<alpha>`."),
    seed: z.number().int().describe("training.seed of this run."),
    phase: z.enum(variantPhases).describe("Pending, Running, Succeeded or Failed."),
    attempts: z.number().int().min(0).optional().describe("Pods started for this index."),
    bestValidationAccuracy: Accuracy.optional().describe("Best validation top-1 accuracy over its epochs."),
    testAccuracy: Accuracy.optional().describe("Test top-1 accuracy of the run's final student."),
    bestEpoch: z.number().int().optional().describe("Epoch of the best validation accuracy."),
    epochsToTarget: z
      .number()
      .int()
      .nullable()
      .optional()
      .describe(
        "First epoch whose validation accuracy reached template.training.targetAccuracy (null: never).",
      ),
    durationSeconds: z.number().min(0).optional().describe("Trainer run time of the successful attempt."),
    deviceSeconds: z
      .number()
      .min(0)
      .optional()
      .describe(
        "GPU-seconds (runtime.gpus 1) or CPU-seconds (gpus 0) the run held: durationSeconds x devices.",
      ),
    reason: z.string().optional().describe("Why it failed (the trainer's reason)."),
    message: z.string().optional().describe("What failed."),
  })
  .describe("One run of the study.");
export type VariantStatus = z.infer<typeof VariantStatus>;

export const ArmSummary = z
  .object({
    arm: z.string(),
    seeds: z.number().int().describe("Succeeded runs of the arm."),
    meanValidationAccuracy: Accuracy.describe("Mean best validation accuracy over its seeds."),
    meanTestAccuracy: Accuracy.optional().describe(
      "Mean test accuracy over its seeds (reported, never chosen on).",
    ),
    deviceSeconds: z.number().min(0).describe("GPU- or CPU-seconds of all its runs."),
  })
  .describe("An arm's figures over its seeds.");

export const Comparison = z
  .object({
    arm: z.string().describe("An automatic weighting."),
    against: z.string().describe("The best fixed cell, chosen on mean validation accuracy."),
    pairs: z.number().int().describe("Seeds where both succeeded (the pairs)."),
    meanDifference: z.number().describe("Mean paired difference of test accuracy (arm - against)."),
    lower: z
      .number()
      .optional()
      .describe("95% t-interval, lower bound (df = pairs - 1; absent with one pair)."),
    upper: z.number().optional().describe("95% t-interval, upper bound."),
    wins: z.number().int().describe("Pairs where the arm's test accuracy is higher."),
  })
  .describe("An automatic weighting against the best fixed cell, paired by seed.");

export const DistillationStudyStatus = z
  .object({
    phase: z.enum(studyPhases).optional().describe("Pending, Running, Suspended, Succeeded or Failed."),
    stage: z.enum(studyStages).optional().describe("Teacher, Variants, Report or Done."),
    conditions: z
      .array(Condition)
      .optional()
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] })
      .describe("Latest observations of the study's state."),
    observedGeneration: z.number().int().optional(),
    startTime: z.string().optional(),
    completionTime: z.string().optional(),
    teacherJobName: z.string().optional().describe("The teacher pass's Job."),
    variantsJobName: z.string().optional().describe("The variants' Indexed Job."),
    runs: z.number().int().optional().describe("Runs in the study (variants x seeds)."),
    succeeded: z.number().int().optional().describe("Runs succeeded."),
    failed: z.number().int().optional().describe("Runs failed (after their own retries)."),
    variants: z
      .array(VariantStatus)
      .optional()
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["index"] })
      .describe("One entry per run, by index."),
    arms: z.array(ArmSummary).optional().describe("Each arm over its seeds."),
    best: z
      .object({
        arm: z.string(),
        meanValidationAccuracy: Accuracy,
        meanTestAccuracy: Accuracy.optional(),
      })
      .optional()
      .describe("The winner, chosen on mean validation accuracy (never on test)."),
    comparisons: z.array(Comparison).optional(),
    teacherAccuracy: Accuracy.optional().describe("The teacher's test accuracy."),
    reportUri: z
      .string()
      .optional()
      .describe("Where the study report (HTML and study-summary.json) was written."),
  })
  .describe("Observed state of the DistillationStudy.");
export type DistillationStudyStatus = z.infer<typeof DistillationStudyStatus>;

export const DistillationStudy = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(STUDY_KIND),
  metadata: ObjectMeta.prefault({}),
  spec: DistillationStudySpec.prefault({}),
  status: DistillationStudyStatus.optional(),
});
export type DistillationStudy = z.infer<typeof DistillationStudy>;
export type DistillationStudyInput = z.input<typeof DistillationStudy>;
