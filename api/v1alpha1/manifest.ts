// A manifest file checked as `kubectl apply` and the apiserver would check it, in one pass: every document (and
// every item of a `kind: List`), apiVersion and kind, unknown fields refused with their path (kubectl's default
// --validate=strict) and a did-you-mean, metadata's name, and the whole DistillationJob schema with its
// cross-field rules. `trainer validate` and `trainer run` read files through this; the in-cluster path (a spec
// mounted by an operator, possibly older or newer than the trainer) stays lenient (trainer/src/config.ts).
import { parseAllDocuments } from "yaml";
import { API_VERSION, DistillationJob, KIND } from "./distillationjob.ts";
import { DistillationStudy, STUDY_KIND } from "./distillationstudy.ts";
import { isDns1123Subdomain, isLabelValue, isQualifiedName, LABEL_VALUE_MAX } from "./k8s-formats.ts";
import {
  ConfigError,
  parseDistillationJob,
  parseDistillationStudy,
  unknownFieldsOf,
  type FieldError,
} from "./parse.ts";
import { TRAINER_SPEC_FIELDS } from "./trainer-spec.ts";

/** metav1.ObjectMeta's fields: anything else under metadata is refused by the apiserver's strict decoding. */
export const OBJECT_META_FIELDS = [
  "name",
  "generateName",
  "namespace",
  "selfLink",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "labels",
  "annotations",
  "ownerReferences",
  "finalizers",
  "managedFields",
] as const;
const ROOT_FIELDS = ["apiVersion", "kind", "metadata", "spec", "status"];

/** One object of a file: a YAML document, or an item of a `kind: List` document. */
export interface ManifestObject {
  /** "document 2", or "document 1, items.0" for an item of a List. */
  where: string;
  /** Prefix of field paths within the document (["items", "0"] for a List item). */
  prefix: string[];
  value: unknown;
}

/** The result of checking one object: the parsed job (or study) when it is valid, else every error. */
export interface CheckedManifest extends ManifestObject {
  name?: string;
  job?: DistillationJob;
  study?: DistillationStudy;
  errors: FieldError[];
}

/** The kinds a manifest file may hold: a DistillationJob, or a DistillationStudy (one teacher, many students). */
const MANIFEST_KINDS = [KIND, STUDY_KIND] as const;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The objects of a manifest file. YAML 1.1 as kubectl reads it (`off` is a boolean there). Empty documents (a
 * trailing `---`) are skipped, as kubectl skips them; a file with no object at all is an error.
 */
export function readManifestObjects(text: string, source?: string): ManifestObject[] {
  const documents = parseAllDocuments(text, { version: "1.1" });
  const docs = Array.isArray(documents) ? documents : [documents];
  const yamlErrors = docs.flatMap((doc, i) =>
    doc.errors.map((e) => ({ field: "", message: `document ${i + 1} is not valid YAML: ${e.message}` })),
  );
  if (yamlErrors.length > 0) throw new ConfigError(yamlErrors, source);
  const objects = docs.flatMap((doc, i): ManifestObject[] => {
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return [];
    if (isRecord(value) && value.kind === "List" && Array.isArray(value.items))
      return value.items.map((item: unknown, j) => ({
        where: `document ${i + 1}, items.${j}`,
        prefix: ["items", String(j)],
        value: item,
      }));
    return [{ where: `document ${i + 1}`, prefix: [], value }];
  });
  if (objects.length === 0)
    throw new ConfigError(
      [{ field: "", message: "no object in the file (it is empty, or holds only comments or `---`)" }],
      source,
    );
  return objects;
}

/** Checks every object of a file; YAML errors and an empty file throw a ConfigError. */
export function checkManifestFile(text: string, source?: string): CheckedManifest[] {
  return readManifestObjects(text, source).map((o) => ({ ...o, ...checkManifest(o.value, o.prefix) }));
}

/** Checks one object as the apiserver would admit it (either kind), reporting every error in one pass. */
export function checkManifest(
  value: unknown,
  prefix: string[] = [],
): { name?: string; job?: DistillationJob; study?: DistillationStudy; errors: FieldError[] } {
  const at = (field: string) => [...prefix, field].filter(Boolean).join(".");
  if (!isRecord(value))
    return {
      errors: [{ field: at(""), message: "expected an object with apiVersion, kind, metadata and spec" }],
    };
  const name = isRecord(value.metadata) ? value.metadata.name : undefined;
  const named = typeof name === "string" ? { name } : {};
  const identity = identityErrors(value);
  if (identity.length > 0) return { ...named, errors: identity.map((e) => ({ ...e, field: at(e.field) })) };
  const isStudy = value.kind === STUDY_KIND;
  const errors = [...unknownFieldErrors(value), ...metadataErrors(value), ...specPresence(value)];
  let parsed: { job: DistillationJob } | { study: DistillationStudy } | undefined;
  try {
    parsed = isStudy ? { study: parseDistillationStudy(value) } : { job: parseDistillationJob(value) };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    errors.push(...error.errors);
  }
  const unique = [...new Map(errors.map((e) => [`${e.field}\0${e.message}`, e])).values()];
  return {
    ...named,
    ...(unique.length === 0 && parsed ? parsed : {}),
    errors: unique.map((e) => ({ ...e, field: at(e.field) })),
  };
}

/** apiVersion and kind first: for another kind, nothing else about the object is ours to judge. */
function identityErrors(value: Record<string, unknown>): FieldError[] {
  const { apiVersion, kind } = value;
  const looksLikeSpec =
    apiVersion === undefined && kind === undefined && TRAINER_SPEC_FIELDS.some((f) => f in value);
  const hint = looksLikeSpec
    ? " (this looks like a bare spec: put it under `spec:` of a DistillationJob)"
    : "";
  const errors: FieldError[] = [];
  if (!(MANIFEST_KINDS as readonly unknown[]).includes(kind))
    errors.push({
      field: "kind",
      message: `expected ${MANIFEST_KINDS.join(" or ")}, ${kind === undefined ? "missing" : `got ${JSON.stringify(kind)}`}${hint}`,
    });
  if (apiVersion !== API_VERSION)
    errors.push({
      field: "apiVersion",
      message: `expected ${API_VERSION}, ${apiVersion === undefined ? "missing" : `got ${JSON.stringify(apiVersion)}`}`,
    });
  return errors;
}

function unknownFieldErrors(value: Record<string, unknown>): FieldError[] {
  const root = Object.keys(value)
    .filter((k) => !ROOT_FIELDS.includes(k))
    .map((k) => ({ field: k, known: ROOT_FIELDS }));
  const metadata = isRecord(value.metadata) ? value.metadata : {};
  const meta = Object.keys(metadata)
    .filter((k) => !(OBJECT_META_FIELDS as readonly string[]).includes(k))
    .map((k) => ({ field: `metadata.${k}`, known: [...OBJECT_META_FIELDS] }));
  const specSchema = value.kind === STUDY_KIND ? DistillationStudy.shape.spec : DistillationJob.shape.spec;
  const spec = unknownFieldsOf(specSchema, value.spec, ["spec"]);
  return [...root, ...meta, ...spec].map(({ field, known }) => ({
    field,
    message: unknownFieldMessage(field, known),
  }));
}

function unknownFieldMessage(field: string, known: string[]): string {
  if (field === "metadata.spec")
    return "unknown field: spec is indented under metadata; move it to the top level";
  const name = field.split(".").at(-1)!;
  const guess = didYouMean(name, known);
  return `unknown field${guess ? ` (did you mean ${guess}?)` : ""}`;
}

/** The known name closest to `name` within a small edit distance (or equal but for case), if any. */
export function didYouMean(name: string, known: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.floor(name.length / 3));
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance <= limit && (!best || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(
        previous[j]! + 1,
        row[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    previous = row;
  }
  return previous[b.length]!;
}

const isDns1123Label = (v: string) =>
  v.length <= LABEL_VALUE_MAX && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(v);

/** What the apiserver checks of ObjectMeta that a DistillationJob's author writes. */
function metadataErrors(value: Record<string, unknown>): FieldError[] {
  const metadata = isRecord(value.metadata) ? value.metadata : {};
  const errors: FieldError[] = [];
  const { name, namespace, labels, annotations } = metadata;
  if (name === undefined || name === "")
    errors.push({ field: "metadata.name", message: "required (kubectl apply needs a name)" });
  else if (typeof name !== "string" || !isDns1123Subdomain(name))
    errors.push({
      field: "metadata.name",
      message:
        "must be a DNS subdomain: lowercase alphanumerics, '-' or '.', starting and ending with an alphanumeric",
    });
  if (namespace !== undefined && (typeof namespace !== "string" || !isDns1123Label(namespace)))
    errors.push({
      field: "metadata.namespace",
      message: "must be a DNS label: at most 63 lowercase alphanumerics or '-'",
    });
  for (const [field, map, checkValue] of [
    ["labels", labels, true],
    ["annotations", annotations, false],
  ] as const) {
    if (!isRecord(map)) continue;
    for (const [key, v] of Object.entries(map)) {
      if (!isQualifiedName(field === "annotations" ? key.toLowerCase() : key))
        errors.push({
          field: `metadata.${field}`,
          message: `key ${JSON.stringify(key)} is not a qualified name`,
        });
      if (checkValue && (typeof v !== "string" || !isLabelValue(v)))
        errors.push({
          field: `metadata.${field}.${key}`,
          message: "must be a label value (at most 63 characters)",
        });
    }
  }
  return errors;
}

/** The CRD requires spec (`spec: {}` takes every default); zod would fill it in silently. */
function specPresence(value: Record<string, unknown>): FieldError[] {
  if (value.spec !== undefined && value.spec !== null) return [];
  return [{ field: "spec", message: "required (`spec: {}` takes every default)" }];
}
