// The DistillationJob API (distillation.mokd.io/v1alpha1). The zod schemas here generate the CRD (scripts/generate.ts),
// give the TypeScript types, and parse the trainer's config.
import { z } from "zod";
import {
  celChecked,
  Dns1123Subdomain,
  ENV_NAME_PATTERN,
  isLabelValue,
  isLocalDescendingPath,
  labelMap,
  LabelValue,
  MAX_MAP_ENTRIES,
  isQualifiedName,
  QUALIFIED_NAME_MAX,
  Quantity,
} from "./k8s-formats.ts";
import {
  section,
  trainerSpecRules,
  trainerSpecShape,
  withRules,
  type CrossFieldRule,
} from "./trainer-spec.ts";
import { Progress, TrainerStatus } from "./progress.ts";
import { CREDENTIAL_SECRET_KEYS } from "./storage.ts";

export const GROUP = "distillation.mokd.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "DistillationJob";
export const PLURAL = "distillationjobs";
export const SINGULAR = "distillationjob";
export const SHORT_NAMES = ["dj", "distjob"];
export const DEFAULT_TRAINER_IMAGE = "ghcr.io/mokd/trainer:0.1.0";

const ResourceList = z
  .object({ cpu: Quantity.optional(), memory: Quantity.optional() })
  .describe("CPU and memory (GPUs are set by `gpus`).");

type TolerationValue = {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
  tolerationSeconds?: number;
};

/** What the apiserver checks of a toleration (core/v1 validateTolerations), as CEL and zod. */
const tolerationRules: CrossFieldRule<TolerationValue>[] = [
  {
    cel: "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
    message: "value must be empty when operator is Exists",
    field: "value",
    holds: (t) => t.operator !== "Exists" || !t.value,
  },
  {
    cel: "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
    message: "operator must be Exists when key is empty",
    field: "operator",
    holds: (t) => Boolean(t.key) || t.operator === "Exists",
  },
  {
    cel: "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
    message: "effect must be NoExecute when tolerationSeconds is set",
    field: "effect",
    holds: (t) => t.tolerationSeconds === undefined || t.effect === "NoExecute",
  },
];

/** A taint key, or empty (with operator Exists: every taint). */
const TaintKey = celChecked(z.string().max(QUALIFIED_NAME_MAX), {
  cel: "self == '' || !format.qualifiedName().validate(self).hasValue()",
  message:
    "must be empty or a qualified name ([prefix/]name: name at most 63 alphanumerics, '-', '_' or '.')",
  holds: (k) => k === "" || isQualifiedName(k),
});

const Toleration = withRules(
  z.object({
    key: TaintKey.optional().describe("Taint key the toleration applies to; empty with Exists: every taint."),
    operator: z
      .enum(["Exists", "Equal"])
      .optional()
      .describe("Exists (any value) or Equal (the value must match); Kubernetes' default is Equal."),
    value: LabelValue.optional().describe("Taint value to match with operator Equal."),
    effect: z
      .enum(["NoSchedule", "PreferNoSchedule", "NoExecute"])
      .optional()
      .describe("Taint effect to match; empty: every effect."),
    tolerationSeconds: z
      .number()
      .int()
      .optional()
      .describe("With effect NoExecute: how long the pod stays bound after the taint appears."),
  }),
  tolerationRules,
).describe("A core/v1 Toleration.");

/** Variables the operator sets on the trainer container; a user's env may not shadow them. */
export const RESERVED_ENV_NAMES = [
  "MOKD_CONFIG",
  "MOKD_JOB_NAME",
  "MOKD_JOB_NAMESPACE",
  "MOKD_BACKEND",
  "MOKD_GPUS",
  "MOKD_CACHE_DIR",
  "MOKD_STORAGE_CA_BUNDLE",
] as const;

const KeyRef = z
  .object({
    name: Dns1123Subdomain.describe("Name of the object."),
    key: z.string().min(1).max(253).describe("The key."),
    optional: z.boolean().optional().describe("Start the pod even when the object or key is missing."),
  })
  .describe("A key of a Secret or ConfigMap.");

const EnvVar = withRules(
  z.object({
    name: z
      .string()
      .min(1)
      .max(4096)
      .regex(new RegExp(ENV_NAME_PATTERN), "must be printable ASCII characters other than '='")
      .describe("Variable name (printable ASCII, no `=`)."),
    value: z.string().default("").describe("Variable value (empty with valueFrom)."),
    valueFrom: withRules(
      z.object({
        secretKeyRef: KeyRef.optional().describe("A key of a Secret in the job's namespace."),
        configMapKeyRef: KeyRef.optional().describe("A key of a ConfigMap in the job's namespace."),
      }),
      [
        {
          cel: "has(self.secretKeyRef) != has(self.configMapKeyRef)",
          message: "set exactly one of secretKeyRef and configMapKeyRef",
          field: "",
          holds: (v) => (v.secretKeyRef === undefined) !== (v.configMapKeyRef === undefined),
        },
      ],
    )
      .optional()
      .describe(
        "Take the value from a Secret or ConfigMap key (read by the kubelet when it starts the pod: the operator never reads Secrets).",
      ),
  }),
  [
    {
      cel: "!has(self.valueFrom) || !has(self.value) || self.value == ''",
      message: "set value or valueFrom, not both",
      field: "value",
      holds: (e) => !e.valueFrom || e.value === "",
    },
  ],
).describe("An environment variable of the trainer container.");

const envRules: CrossFieldRule<{ name: string }[]>[] = [
  {
    cel: `self.all(e, !(e.name in ${JSON.stringify(RESERVED_ENV_NAMES)}))`,
    message: `${RESERVED_ENV_NAMES.join(", ")} are set by the operator`,
    field: "",
    holds: (env) => env.every((e) => !(RESERVED_ENV_NAMES as readonly string[]).includes(e.name)),
  },
  {
    // The CRD refuses duplicates through the list-map keys (the apiserver's "Duplicate value"); zod here.
    message: "names must be unique",
    field: "",
    holds: (env) => new Set(env.map((e) => e.name)).size === env.length,
  },
];

const EnvList = withRules(z.array(EnvVar).max(MAX_MAP_ENTRIES), envRules).meta({
  "x-kubernetes-list-type": "map",
  "x-kubernetes-list-map-keys": ["name"],
});

const SubPath = celChecked(z.string().max(4096), {
  cel: "!self.startsWith('/') && !self.matches('(^|/)[.][.](/|$)')",
  message: "must be a relative path without '..' (it must stay inside the volume)",
  holds: isLocalDescendingPath,
});

const VolumeSource = z
  .object({
    claimName: Dns1123Subdomain.describe("Name of a PersistentVolumeClaim in the job's namespace."),
    subPath: SubPath.optional().describe("Sub-path inside the volume (relative, without `..`)."),
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
        "tfjs backend of the trainer. `auto`: native TensorFlow when it loads (tensorflow-gpu first when an NVIDIA GPU is visible), wasm first for runs too small for TensorFlow's per-op cost (docs/trainer.md), then cpu. A named backend is forced: when it cannot load the run fails at once (BadConfig) naming the cause. With `gpus` > 0 the trainer pod fails when an NVIDIA GPU is visible but TensorFlow did not place its ops on it. The operator passes it to the trainer as $MOKD_BACKEND; the trainer's `--backend` flag overrides it.",
      ),
    image: z
      .string()
      .min(1)
      .max(4096)
      .regex(/^\S(.*\S)?$/, "must not start or end with whitespace")
      .default(DEFAULT_TRAINER_IMAGE)
      .describe("Trainer container image."),
    imagePullPolicy: z.enum(["Always", "IfNotPresent", "Never"]).optional().describe("Image pull policy."),
    imagePullSecrets: z
      .array(Dns1123Subdomain)
      .max(MAX_MAP_ENTRIES)
      .optional()
      .describe("Names of image pull secrets."),
    gpus: z
      .number()
      .int()
      .min(0)
      .max(1)
      .default(1)
      .describe(
        "GPUs of the trainer pod (the `nvidia.com/gpu` limit): 1, or 0 to run on the CPU. At most 1 because the trainer trains on one device (TensorFlow's first GPU; there is no data parallelism): more would be reserved and sit idle.",
      ),
    resources: z
      .object({ requests: ResourceList.optional(), limits: ResourceList.optional() })
      .optional()
      .describe("CPU and memory requests and limits of the trainer container."),
    nodeSelector: labelMap(LabelValue).optional().describe("Node selector of the trainer pod (node labels)."),
    tolerations: z
      .array(Toleration)
      .max(MAX_MAP_ENTRIES)
      .optional()
      .describe("Tolerations of the trainer pod."),
    affinity: z
      .looseObject({})
      .optional()
      .meta({ "x-kubernetes-preserve-unknown-fields": true })
      .describe("A core/v1 Affinity for the trainer pod, passed through unchanged."),
    priorityClassName: Dns1123Subdomain.optional().describe("PriorityClass of the trainer pod."),
    podLabels: labelMap(LabelValue).optional().describe("Extra labels of the trainer pod."),
    podAnnotations: labelMap(z.string(), true)
      .optional()
      .describe("Extra annotations of the trainer pod (keys are qualified names)."),
    serviceAccountName: Dns1123Subdomain.optional().describe(
      "ServiceAccount of the trainer pod, for a cloud's workload identity (EKS IRSA, GKE or Azure Workload Identity) to give it object-storage access. No API token is mounted either way (the identity webhooks project their own token volume; the trainer never calls the API server). Unset: the namespace's default account.",
    ),
    env: EnvList.optional().describe(
      "Extra environment variables of the trainer container (unique names; not the operator's MOKD_* ones).",
    ),
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

/** Like KubeRay's pre-running deadline: long enough for a large image pull, short of a stuck job. */
export const DEFAULT_PENDING_DEADLINE_SECONDS = 600;

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
    pendingDeadlineSeconds: z
      .number()
      .int()
      .min(0)
      .default(DEFAULT_PENDING_DEADLINE_SECONDS)
      .describe(
        "Longest a trainer pod may stay unstarted (unschedulable, image pulls, a quota or missing PriorityClass refusing it) before the job fails with that reason; suspension and Kueue admission do not count; 0: wait forever.",
      ),
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
  queueName: celChecked(z.string().min(1).max(63), {
    cel: "!format.labelValue().validate(self).hasValue()",
    message: "must be a label value (a Kueue LocalQueue name): at most 63 alphanumerics, '-', '_' or '.'",
    holds: isLabelValue,
  })
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
  "storage",
  "runtime",
  "queueName",
] as const;

type Spec = z.output<z.ZodObject<SpecShape>>;

/**
 * The spec's trainer part travels in a ConfigMap (the apiserver limits its data to 1 MiB; the builder,
 * operator/src/builders/configmap.ts, checks the exact size) and the rest in the Job's pod template. A spec near
 * that size (very large env values, annotations or affinity) is refused whole, before either is built.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024 - 4096;
const configBytes = (s: Spec) => Buffer.byteLength(JSON.stringify(s, null, 2));

export const specRules: CrossFieldRule<Spec>[] = [
  {
    // No CEL: the apiserver cannot measure it. The operator fails such a job with reason InvalidSpec.
    message: `the spec is too large (at most ${MAX_CONFIG_BYTES} bytes of JSON: its trainer part travels in a ConfigMap, the rest in the Job)`,
    field: "runtime",
    holds: (s) => configBytes(s) <= MAX_CONFIG_BYTES,
  },
  // The trainer's own rules (trainer-spec.ts).
  ...trainerSpecRules,
  {
    cel:
      "!has(self.storage.credentialsSecret) || !has(self.runtime.env) || self.runtime.env.all(e, !(e.name in " +
      JSON.stringify(CREDENTIAL_SECRET_KEYS) +
      "))",
    message: `storage.credentialsSecret sets ${CREDENTIAL_SECRET_KEYS.join(", ")}: do not set them in runtime.env too`,
    field: "runtime.env",
    holds: (s) =>
      !s.storage.credentialsSecret ||
      (s.runtime.env ?? []).every((e) => !(CREDENTIAL_SECRET_KEYS as readonly string[]).includes(e.name)),
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

export const Result = z
  .object({
    teacherAccuracy: z.number().optional().describe("Test top-1 accuracy of the teacher."),
    studentAccuracy: z.number().optional().describe("Test top-1 accuracy of the student."),
    bestEpoch: z.number().int().optional().describe("Epoch with the best validation accuracy."),
    conflictRate: z.number().optional().describe("Fraction of steps with conflicting gradients."),
    strategy: z.string().optional().describe("Weighting strategy used."),
    modelPath: z.string().optional().describe("Where the student model was written."),
    outputUri: z
      .string()
      .optional()
      .describe(
        "The s3:// prefix holding the uploaded outputs (spec.output.uri), once every upload completed.",
      ),
    checkpointUri: z
      .string()
      .optional()
      .describe("The s3:// location of the last checkpoint uploaded (spec.output.checkpoints.uri)."),
    durationSeconds: z.number().optional().describe("Run time of the trainer."),
    onnxModelPath: z
      .string()
      .optional()
      .describe("Where the ONNX student was written (absent when not requested or its parity check failed)."),
    sizeRatio: z
      .number()
      .optional()
      .describe("Teacher size on disk / student size on disk (compression report)."),
    speedup: z
      .number()
      .optional()
      .describe(
        "Teacher batch-1 p50 latency / student batch-1 p50 latency, in the student's fastest published runtime.",
      ),
    bestValidationAccuracy: z
      .number()
      .optional()
      .describe("Best validation top-1 accuracy of the student over its evaluations."),
    epochsToTarget: z
      .number()
      .nullable()
      .optional()
      .describe("First epoch whose validation accuracy reached training.targetAccuracy (null: never)."),
    teacherSource: z
      .enum(["trained", "loaded", "reused", "shared", "none"])
      .optional()
      .describe(
        "Where the teacher (or its outputs) came from: trained or loaded by this run, reused from a completed pass, the study's shared teacher pass, or none (the student alone).",
      ),
    variant: z.string().optional().describe("The study variant this run trained (`<arm>-s<seed>`)."),
  })
  .describe("Final result, from the trainer's termination message.");
export type Result = z.infer<typeof Result>;

export const Disruption = z
  .object({
    pod: z.string().describe("The disrupted trainer pod."),
    podUID: z.string().describe("Its UID: the disruption is counted in attempts once, by this UID."),
    reason: z
      .string()
      .describe(
        "The reason of the pod's DisruptionTarget condition (PreemptionByScheduler, EvictionByEvictionAPI, DeletionByTaintManager, TerminationByKubelet, DeletionByPodGC).",
      ),
    message: z.string().optional().describe("The message of that condition."),
    time: z.string().optional().describe("When the pod became a disruption target (RFC 3339)."),
  })
  .describe(
    "The last trainer pod disrupted from outside (preempted, evicted, drained, deleted by the taint manager): the Job ignores such a pod's failure and starts a new one; the operator counts it as an attempt and records an event.",
  );
export type Disruption = z.infer<typeof Disruption>;

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
    lastDisruption: Disruption.optional(),
    jobName: z.string().optional().describe("Name of the child batch/v1 Job."),
    progress: Progress.optional(),
    trainerStatus: TrainerStatus.optional(),
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
