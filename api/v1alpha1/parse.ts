// Parsing of DistillationJob manifests and specs with errors that name each bad field.
import { z } from "zod";
import { DistillationJob, DistillationJobSpec } from "./distillationjob.ts";
import { TrainerSpec } from "./trainer-spec.ts";

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
  innerType?: z.ZodType;
  in?: z.ZodType;
  element?: z.ZodType;
}

const defOf = (schema: z.ZodType) => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The object schema under defaults, optionals and pipes, if there is one. */
function objectSchema(schema: z.ZodType): Def | undefined {
  let def = defOf(schema);
  for (;;) {
    if (def.type === "object") return def;
    const inner = def.innerType ?? def.in;
    if (!inner) return undefined;
    def = defOf(inner);
  }
}

/**
 * Dotted paths of the fields of `value` that `schema` does not know (zod drops them silently): an older trainer
 * told about a newer field says so instead of ignoring it. Arrays are walked element by element.
 */
export function unknownFields(schema: z.ZodType, value: unknown, prefix: string[] = []): string[] {
  if (Array.isArray(value)) {
    const element = arrayElement(schema);
    return element ? value.flatMap((v, i) => unknownFields(element, v, [...prefix, String(i)])) : [];
  }
  const def = objectSchema(schema);
  if (!def?.shape || typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([key, v]) => {
    const field = def.shape![key];
    return field ? unknownFields(field, v, [...prefix, key]) : [[...prefix, key].join(".")];
  });
}

function arrayElement(schema: z.ZodType): z.ZodType | undefined {
  let def = defOf(schema);
  for (;;) {
    if (def.type === "array") return def.element;
    const inner = def.innerType ?? def.in;
    if (!inner) return undefined;
    def = defOf(inner);
  }
}
