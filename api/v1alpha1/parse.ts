// Parsing of DistillationJob manifests and specs with errors that name each bad field.
import { z } from "zod";
import { DistillationJob, DistillationJobSpec } from "./distillationjob.ts";

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
