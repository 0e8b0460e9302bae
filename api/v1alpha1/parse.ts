// Parsing of DistillationJob manifests and specs with errors that name each bad field.
import { z } from "zod";
import { DistillationJob, DistillationJobSpec } from "./distillationjob.ts";
import { TrainerSpec } from "./trainer-spec.ts";
import { DistillationStudy } from "./distillationstudy.ts";

export interface FieldError {
  /** Dotted path from the root of what was parsed, e.g. `spec.training.epochs`. */
  field: string;
  message: string;
}

export class ConfigError extends Error {
  readonly errors: FieldError[];
  constructor(errors: FieldError[], source?: string) {
    const where = source ? ` in ${source}` : "";
    super(
      `invalid DistillationJob${where}:\n` +
        errors.map((e) => `  ${e.field || "(root)"}: ${e.message}`).join("\n"),
    );
    this.name = "ConfigError";
    this.errors = errors;
  }
}

function fieldErrors(error: z.ZodError, prefix: string[]): FieldError[] {
  return error.issues.map((issue) => ({
    field: [...prefix, ...issue.path.map(String)].join("."),
    message: issue.message,
  }));
}

function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  prefix: string[],
  source?: string,
): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ConfigError(fieldErrors(result.error, prefix), source);
  return result.data;
}

/** Parses a whole manifest (apiVersion, kind, metadata, spec), applying every default. */
export function parseDistillationJob(value: unknown, source?: string): DistillationJob {
  return parseWith(DistillationJob, value, [], source);
}

/** Parses a whole DistillationStudy manifest, applying every default. */
export function parseDistillationStudy(value: unknown, source?: string): DistillationStudy {
  return parseWith(DistillationStudy, value, [], source);
}

/** Parses a DistillationJob spec alone, applying every default. */
export function parseDistillationJobSpec(value: unknown, source?: string): DistillationJobSpec {
  return parseWith(DistillationJobSpec, value, ["spec"], source);
}

/** Parses the trainer's part of a spec alone (no runtime or operator rules), applying every default. */
export function parseTrainerSpec(value: unknown, source?: string): TrainerSpec {
  return parseWith(TrainerSpec, value, ["spec"], source);
}

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  catchall?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  element?: z.ZodType;
}

const defOf = (schema: z.ZodType) => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The first def of `type` under defaults, optionals and pipes, if there is one. */
function unwrap(schema: z.ZodType, type: "object" | "array"): Def | undefined {
  let def = defOf(schema);
  for (;;) {
    if (def.type === type) return def;
    const inner = def.innerType ?? def.in;
    if (!inner) return undefined;
    def = defOf(inner);
  }
}

/** A field the schema does not know, with the names it does know at that level (for a did-you-mean). */
export interface UnknownField {
  field: string;
  known: string[];
}

/**
 * The fields of `value` that `schema` does not know (zod drops them silently), as dotted paths. Arrays are walked
 * element by element; maps (records) and open objects (a looseObject, e.g. the pass-through affinity) accept any
 * key.
 */
export function unknownFieldsOf(schema: z.ZodType, value: unknown, prefix: string[] = []): UnknownField[] {
  if (Array.isArray(value)) {
    const element = unwrap(schema, "array")?.element;
    return element ? value.flatMap((v, i) => unknownFieldsOf(element, v, [...prefix, String(i)])) : [];
  }
  const def = unwrap(schema, "object");
  if (!def?.shape || typeof value !== "object" || value === null) return [];
  const shape = def.shape;
  const open = def.catchall !== undefined && defOf(def.catchall).type !== "never";
  return Object.entries(value).flatMap(([key, v]) => {
    const field = shape[key];
    if (field) return unknownFieldsOf(field, v, [...prefix, key]);
    return open ? [] : [{ field: [...prefix, key].join("."), known: Object.keys(shape) }];
  });
}

/**
 * Dotted paths of the fields of `value` that `schema` does not know: an older trainer told about a newer field
 * says so instead of ignoring it.
 */
export function unknownFields(schema: z.ZodType, value: unknown, prefix: string[] = []): string[] {
  return unknownFieldsOf(schema, value, prefix).map((u) => u.field);
}
