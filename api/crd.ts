// Generates the DistillationJob and DistillationStudy CustomResourceDefinitions from the zod schemas (one source of truth).
import { z } from "zod";
import {
  DistillationJobSpec,
  DistillationJobStatus,
  DistillationStudySpec,
  DistillationStudyStatus,
  STUDY_KIND,
  STUDY_PLURAL,
  STUDY_SHORT_NAMES,
  STUDY_SINGULAR,
  GROUP,
  KIND,
  PLURAL,
  SHORT_NAMES,
  SINGULAR,
  VERSION,
} from "./v1alpha1/index.ts";

type JsonSchema = { [key: string]: unknown };

const SAFE_INT = 9007199254740991;

/** Rewrites zod's JSON Schema into a Kubernetes structural schema. */
export function toStructural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toStructural);
  if (node === null || typeof node !== "object") return node;
  const s: JsonSchema = { ...(node as JsonSchema) };
  delete s.$schema;
  if (s.maximum === SAFE_INT) delete s.maximum;
  if (s.minimum === -SAFE_INT) delete s.minimum;
  if (s["x-kubernetes-int-or-string"]) {
    // int-or-string replaces zod's anyOf of string and number.
    delete s.anyOf;
    delete s.type;
  }
  if (s["x-kubernetes-preserve-unknown-fields"]) {
    delete s.properties;
    delete s.additionalProperties;
    // A scalar of several JSON types (a quantity: string or number) is declared without a type.
    if (s.anyOf) {
      delete s.anyOf;
      delete s.type;
    }
  }
  // Map keys are checked by CEL rules: structural schemas have no propertyNames.
  delete s.propertyNames;
  // Structural schemas forbid additionalProperties beside properties; unknown fields are pruned anyway.
  if (s.additionalProperties === false) delete s.additionalProperties;
  if (s.properties && typeof s.additionalProperties === "object") delete s.additionalProperties;
  for (const [key, value] of Object.entries(s)) {
    if (key === "default" || key === "enum" || key === "x-kubernetes-validations") continue;
    s[key] = toStructural(value);
  }
  return s;
}

function schemaOf(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  return toStructural(
    z.toJSONSchema(schema, { target: "openapi-3.0", io, unrepresentable: "throw" }),
  ) as JsonSchema;
}

/** What differs between our kinds' CRDs. */
interface KindCrd {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: Record<string, unknown>[];
}

function crdOf(k: KindCrd): Record<string, unknown> {
  // No default for spec itself: the apiserver checks a default against the spec-level CEL rules without filling
  // nested defaults first. `spec: {}` is enough; every field inside has its default.
  const spec = schemaOf(k.spec, "input");
  const status = schemaOf(k.status, "output");
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${k.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.singular,
        shortNames: k.shortNames,
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: k.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: k.description,
              properties: {
                apiVersion: { type: "string", description: "APIVersion of this object." },
                kind: { type: "string", description: "Kind of this object." },
                metadata: { type: "object" },
                spec,
                status,
              },
              required: ["spec"],
            },
          },
        },
      ],
    },
  };
}

export function buildCrd(): Record<string, unknown> {
  return crdOf({
    kind: KIND,
    plural: PLURAL,
    singular: SINGULAR,
    shortNames: SHORT_NAMES,
    description:
      "DistillationJob distils a teacher model into a student with multi-objective knowledge distillation (MoKD), run as a batch/v1 Job of trainer pods.",
    spec: DistillationJobSpec,
    status: DistillationJobStatus,
    printerColumns: JOB_COLUMNS,
  });
}

export function buildStudyCrd(): Record<string, unknown> {
  const crd = crdOf({
    kind: STUDY_KIND,
    plural: STUDY_PLURAL,
    singular: STUDY_SINGULAR,
    shortNames: STUDY_SHORT_NAMES,
    description:
      "DistillationStudy runs one teacher pass and many student variants (automatic weightings, a fixed-weight grid, the student alone) over seeds as Indexed Jobs, and compares them on validation accuracy.",
    spec: DistillationStudySpec,
    status: DistillationStudyStatus,
    printerColumns: STUDY_COLUMNS,
  });
  // No default for spec.template either (as for spec itself): the apiserver checks a default against the
  // template's CEL rules without filling its nested defaults first, and refuses the CRD. A study needs a template
  // anyway (its shared storage, template.output, has no default).
  type Node = { properties: Record<string, Node>; default?: unknown };
  const versions = (crd.spec as { versions: { schema: { openAPIV3Schema: Node } }[] }).versions;
  delete versions[0]!.schema.openAPIV3Schema.properties.spec!.properties.template!.default;
  return crd;
}

const JOB_COLUMNS: Record<string, unknown>[] = [
  { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Phase of the run" },
  {
    // The epoch count restarts when the student stage follows the teacher's: the stage says which.
    name: "Stage",
    type: "string",
    jsonPath: ".status.progress.stage",
    description: "Stage in progress: teacher or student",
  },
  {
    name: "Epoch",
    type: "integer",
    jsonPath: ".status.progress.epoch",
    description: "Current epoch of the stage",
  },
  {
    name: "Progress",
    type: "integer",
    jsonPath: ".status.trainerStatus.progressPercentage",
    description: "Percent of the run's steps done, every stage counted",
  },
  {
    name: "Student-Acc",
    type: "number",
    jsonPath: ".status.progress.studentAccuracy",
    description: "Student top-1 accuracy (validation while running, test when done)",
  },
  {
    name: "Conflict",
    type: "number",
    jsonPath: ".status.progress.conflictRate",
    description: "Fraction of steps with conflicting objective gradients",
  },
  {
    name: "Reason",
    type: "string",
    // The Running condition carries the current reason: why it waits, or how it ended.
    jsonPath: '.status.conditions[?(@.type=="Running")].reason',
    description: "Why the job is in its phase (e.g. Unschedulable, Completed, InvalidSpec)",
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

const STUDY_COLUMNS: Record<string, unknown>[] = [
  { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Phase of the study" },
  {
    name: "Stage",
    type: "string",
    jsonPath: ".status.stage",
    description: "Teacher, Variants, Report or Done",
  },
  { name: "Runs", type: "integer", jsonPath: ".status.runs", description: "Runs (variants x seeds)" },
  { name: "Succeeded", type: "integer", jsonPath: ".status.succeeded", description: "Runs succeeded" },
  { name: "Failed", type: "integer", jsonPath: ".status.failed", description: "Runs failed" },
  {
    name: "Best",
    type: "string",
    jsonPath: ".status.best.arm",
    description: "The best arm so far, chosen on mean validation accuracy",
  },
  {
    name: "Best-Val",
    type: "number",
    jsonPath: ".status.best.meanValidationAccuracy",
    description: "Its mean validation accuracy",
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];
