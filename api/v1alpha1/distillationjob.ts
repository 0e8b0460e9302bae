// The DistillationJob API (distillation.mokd.io/v1alpha1). The zod schemas here generate the CRD (api/generate.ts),
// give the TypeScript types, and parse the trainer's config.
import { z } from "zod";
import { section, strategyNames, trainerSpecShape } from "./trainer-spec.ts";

export const GROUP = "distillation.mokd.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "DistillationJob";
export const PLURAL = "distillationjobs";
export const SINGULAR = "distillationjob";
export const SHORT_NAMES = ["dj", "distjob"];
export const DEFAULT_TRAINER_IMAGE = "ghcr.io/mokd/trainer:0.1.0";

/**
 * A cross-field rule stated once: the CEL expression goes into the CRD (`x-kubernetes-validations`, so the
 * apiserver refuses bad objects) and the predicate into zod (so the trainer refuses the same config locally).
 */
export interface CrossFieldRule<T> {
  cel: string;
  message: string;
  /** Dotted path, relative to the object the rule sits on, of the field the message is about. */
  field: string;
  holds: (value: T) => boolean;
  /** A transition rule (uses oldSelf): checked by the apiserver only. */
  transition?: boolean;
}

export function withRules<S extends z.ZodType>(schema: S, rules: CrossFieldRule<z.output<S>>[]): S {
  const checked = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      if (!r.transition && !r.holds(value)) {
        ctx.addIssue({ code: "custom", message: r.message, path: r.field ? r.field.split(".") : [] });
      }
    }
  });
  return checked.meta({
    "x-kubernetes-validations": rules.map((r) => ({
      rule: r.cel,
      message: r.message,
      ...(r.field ? { fieldPath: `.${r.field}` } : {}),
    })),
  }) as unknown as S;
}

const Quantity = z
  .union([z.string(), z.number()])
  .meta({ "x-kubernetes-int-or-string": true })
  .describe("A Kubernetes resource quantity such as `2`, `500m`, `8Gi`.");

const ResourceList = z
  .object({ cpu: Quantity.optional(), memory: Quantity.optional() })
  .describe("CPU and memory (GPUs are set by `gpus`).");

const Toleration = z
  .object({
    key: z
      .string()
      .optional()
      .describe("Taint key the toleration applies to; empty with Exists: every taint."),
    operator: z
      .enum(["Exists", "Equal"])
      .optional()
      .describe("Exists (any value) or Equal (the value must match); Kubernetes' default is Equal."),
    value: z.string().optional().describe("Taint value to match with operator Equal."),
    effect: z
      .enum(["NoSchedule", "PreferNoSchedule", "NoExecute"])
      .optional()
      .describe("Taint effect to match; empty: every effect."),
    tolerationSeconds: z
      .number()
      .int()
      .optional()
      .describe("With effect NoExecute: how long the pod stays bound after the taint appears."),
  })
  .describe("A core/v1 Toleration.");

const EnvVar = z
  .object({
    name: z.string().min(1).describe("Variable name."),
    value: z.string().default("").describe("Variable value."),
  })
  .describe("An environment variable of the trainer container.");

const VolumeSource = z
  .object({
    claimName: z.string().min(1).describe("Name of a PersistentVolumeClaim in the job's namespace."),
    subPath: z.string().optional().describe("Sub-path inside the volume."),
  })
  .describe("A PersistentVolumeClaim to mount.");

/** The trainer's tfjs backends (trainer/src/backend): `auto` or one to force. */
export const backendNames = ["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"] as const;

export const RuntimeSpec = section(
  {
    backend: z
      .enum(backendNames)
      .default("auto")
      .describe(
        "tfjs backend of the trainer. `auto`: native TensorFlow when it loads (tensorflow-gpu first when an NVIDIA GPU is visible), wasm first for runs too small for TensorFlow's per-op cost (docs/trainer.md), then cpu. A named backend is forced: when it cannot load the run fails at once (BadConfig) naming the cause. With `gpus` > 0 the trainer pod fails when an NVIDIA GPU is visible but TensorFlow did not place its ops on it. The trainer's `--backend` flag and $MOKD_BACKEND override this field.",
      ),
    image: z.string().min(1).default(DEFAULT_TRAINER_IMAGE).describe("Trainer container image."),
    imagePullPolicy: z.enum(["Always", "IfNotPresent", "Never"]).optional().describe("Image pull policy."),
    imagePullSecrets: z.array(z.string().min(1)).optional().describe("Names of image pull secrets."),
    gpus: z
      .number()
      .int()
      .min(0)
      .max(16)
      .default(1)
      .describe("GPUs per trainer pod (the `nvidia.com/gpu` limit); 0 runs on CPU."),
    resources: z
      .object({ requests: ResourceList.optional(), limits: ResourceList.optional() })
      .optional()
      .describe("CPU and memory requests and limits of the trainer container."),
    nodeSelector: z.record(z.string(), z.string()).optional().describe("Node selector of the trainer pod."),
    tolerations: z.array(Toleration).optional().describe("Tolerations of the trainer pod."),
    affinity: z
      .looseObject({})
      .optional()
      .meta({ "x-kubernetes-preserve-unknown-fields": true })
      .describe("A core/v1 Affinity for the trainer pod, passed through unchanged."),
    priorityClassName: z.string().optional().describe("PriorityClass of the trainer pod."),
    podLabels: z.record(z.string(), z.string()).optional().describe("Extra labels of the trainer pod."),
    podAnnotations: z
      .record(z.string(), z.string())
      .optional()
      .describe("Extra annotations of the trainer pod."),
    env: z.array(EnvVar).optional().describe("Extra environment variables of the trainer container."),
    volumes: section(
      {
        data: VolumeSource.optional().describe("Mounted read-only at /data."),
        teacher: VolumeSource.optional().describe("Mounted read-only at /teacher."),
        output: VolumeSource.optional().describe("Mounted at /output (an emptyDir when unset)."),
        checkpoints: VolumeSource.optional().describe(
          "Mounted at /checkpoints (an emptyDir when unset: retries then restart from scratch).",
        ),
      },
      "PersistentVolumeClaims for data, teacher, output and checkpoints.",
    ),
  },
  "Where and how the trainer pod runs.",
);
export type RuntimeSpec = z.infer<typeof RuntimeSpec>;

export const RunPolicy = section(
  {
    backoffLimit: z
      .number()
      .int()
      .min(0)
      .max(100)
      .default(3)
      .describe("Retries of a failed trainer pod before the job fails (bad config or data fails at once)."),
    activeDeadlineSeconds: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("Wall-clock limit of the run; the job fails with reason DeadlineExceeded after it."),
    ttlSecondsAfterFinished: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("Delete the DistillationJob this long after it finishes; unset: keep."),
    suspend: z
      .boolean()
      .default(false)
      .describe("Suspend the run: its pods are deleted and it resumes from the last checkpoint when unset."),
  },
  "Retries, deadline, cleanup and suspension.",
);
export type RunPolicy = z.infer<typeof RunPolicy>;

type SpecShape = typeof trainerSpecShape & {
  runtime: typeof RuntimeSpec;
  runPolicy: typeof RunPolicy;
  queueName: z.ZodOptional<z.ZodString>;
};

const specShape: SpecShape = {
  ...trainerSpecShape,
  runtime: RuntimeSpec,
  runPolicy: RunPolicy,
  queueName: z
    .string()
    .min(1)
    .optional()
    .describe(
      "Kueue LocalQueue: set as the child Job's `kueue.x-k8s.io/queue-name` label so Kueue admits it.",
    ),
};

/** Fields that define the run: changing them mid-run would make checkpoints and results meaningless. */
export const IMMUTABLE_SPEC_FIELDS = [
  "teacher",
  "student",
  "data",
  "objectives",
  "strategy",
  "training",
  "output",
  "metrics",
  "runtime",
  "queueName",
] as const;

type Spec = z.output<z.ZodObject<SpecShape>>;

const enabledObjectives = (s: Spec) =>
  [s.objectives.task.enabled, s.objectives.distillation.enabled, s.objectives.feature.enabled].filter(Boolean)
    .length;

const multiObjectiveStrategies = strategyNames.filter((n) => n !== "sum");

export const specRules: CrossFieldRule<Spec>[] = [
  {
    cel: "self.objectives.task.enabled || self.objectives.distillation.enabled || self.objectives.feature.enabled",
    message: "at least one objective must be enabled",
    field: "objectives",
    holds: (s) => enabledObjectives(s) >= 1,
  },
  {
    cel:
      `!(self.strategy.name in ${JSON.stringify(multiObjectiveStrategies)}) || ` +
      "[self.objectives.task.enabled, self.objectives.distillation.enabled, self.objectives.feature.enabled]" +
      ".filter(e, e).size() >= 2",
    message: "strategies other than `sum` combine objectives: enable at least two",
    field: "strategy.name",
    holds: (s) => s.strategy.name === "sum" || enabledObjectives(s) >= 2,
  },
  {
    cel: "!has(self.teacher.featureLayer) || has(self.teacher.model)",
    message: "featureLayer applies to a loaded teacher: set teacher.model too",
    field: "teacher.featureLayer",
    holds: (s) => s.teacher.featureLayer === undefined || s.teacher.model !== undefined,
  },
  {
    cel: "!has(self.runtime.volumes.teacher) || has(self.teacher.model)",
    message: "a teacher volume needs teacher.model (a path under /teacher)",
    field: "runtime.volumes.teacher",
    holds: (s) => s.runtime.volumes.teacher === undefined || s.teacher.model !== undefined,
  },
  ...IMMUTABLE_SPEC_FIELDS.map((f): CrossFieldRule<Spec> => ({
    cel: `has(self.${f}) == has(oldSelf.${f}) && (!has(self.${f}) || self.${f} == oldSelf.${f})`,
    message: `spec.${f} is immutable: create a new DistillationJob to change it`,
    field: f,
    holds: () => true,
    transition: true,
  })),
];

export const DistillationJobSpec = withRules(z.object(specShape), specRules).describe(
  "What to distil and how to run it. Only runPolicy may change after creation.",
);
export type DistillationJobSpec = z.infer<typeof DistillationJobSpec>;
export type DistillationJobSpecInput = z.input<typeof DistillationJobSpec>;

export const phases = ["Pending", "Running", "Suspended", "Succeeded", "Failed"] as const;
export type Phase = (typeof phases)[number];

export const Condition = z
  .object({
    type: z.string().describe("Condition type: Created, Running, Suspended, Succeeded, Failed."),
    status: z.enum(["True", "False", "Unknown"]).describe("True, False or Unknown."),
    observedGeneration: z
      .number()
      .int()
      .optional()
      .describe("The generation the condition was computed from."),
    lastTransitionTime: z.string().describe("When status last changed (RFC 3339)."),
    reason: z.string().describe("CamelCase machine-readable reason."),
    message: z.string().describe("Human-readable detail."),
  })
  .describe("A metav1.Condition.");
export type Condition = z.infer<typeof Condition>;

const NumberMap = z.record(z.string(), z.number());

export const Progress = z
  .object({
    epoch: z.number().int().optional().describe("Current epoch (1-based)."),
    totalEpochs: z.number().int().optional().describe("Epochs of the run."),
    step: z.number().int().optional().describe("Global optimiser step."),
    stage: z.string().optional().describe("teacher or student."),
    losses: NumberMap.optional().describe("Latest loss per objective."),
    weights: NumberMap.optional().describe("Latest strategy weight per objective."),
    trainAccuracy: z.number().optional().describe("Train top-1 accuracy of the last epoch."),
    validationAccuracy: z.number().optional().describe("Validation top-1 accuracy of the last epoch."),
    studentAccuracy: z
      .number()
      .optional()
      .describe("Latest student accuracy (validation; test when finished)."),
    conflictRate: z
      .number()
      .optional()
      .describe("Fraction of steps whose objective gradients conflict (cos < 0)."),
    samplesPerSecond: z.number().optional().describe("Training throughput."),
    etaSeconds: z.number().optional().describe("Estimated seconds to completion."),
    lastUpdateTime: z.string().optional().describe("When progress was last read from the trainer."),
  })
  .describe("Live progress read from the trainer while it runs.");
export type Progress = z.infer<typeof Progress>;

export const Result = z
  .object({
    teacherAccuracy: z.number().optional().describe("Test top-1 accuracy of the teacher."),
    studentAccuracy: z.number().optional().describe("Test top-1 accuracy of the student."),
    bestEpoch: z.number().int().optional().describe("Epoch with the best validation accuracy."),
    conflictRate: z.number().optional().describe("Fraction of steps with conflicting gradients."),
    strategy: z.string().optional().describe("Weighting strategy used."),
    modelPath: z.string().optional().describe("Where the student model was written."),
    durationSeconds: z.number().optional().describe("Run time of the trainer."),
  })
  .describe("Final result, from the trainer's termination message.");
export type Result = z.infer<typeof Result>;

export const DistillationJobStatus = z
  .object({
    phase: z.enum(phases).optional().describe("Pending, Running, Suspended, Succeeded or Failed."),
    conditions: z
      .array(Condition)
      .optional()
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] })
      .describe("Latest observations of the job's state."),
    observedGeneration: z.number().int().optional().describe("The spec generation the status reflects."),
    startTime: z.string().optional().describe("When the trainer Job was created (RFC 3339)."),
    completionTime: z.string().optional().describe("When the job finished (RFC 3339)."),
    attempts: z.number().int().optional().describe("Trainer pods started so far."),
    jobName: z.string().optional().describe("Name of the child batch/v1 Job."),
    progress: Progress.optional(),
    result: Result.optional(),
  })
  .describe("Observed state of the DistillationJob.");
export type DistillationJobStatus = z.infer<typeof DistillationJobStatus>;

export const ObjectMeta = z.looseObject({
  name: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  generation: z.number().optional(),
  resourceVersion: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  creationTimestamp: z.union([z.string(), z.date()]).optional(),
  deletionTimestamp: z.union([z.string(), z.date()]).optional(),
});

/** A whole manifest, as kubectl would apply it (status optional). */
export const DistillationJob = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  metadata: ObjectMeta.prefault({}),
  spec: DistillationJobSpec.prefault({}),
  status: DistillationJobStatus.optional(),
});
export type DistillationJob = z.infer<typeof DistillationJob>;
export type DistillationJobInput = z.input<typeof DistillationJob>;
