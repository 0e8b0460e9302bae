// The trainer's configuration: its own part of a DistillationJob (TrainerSpec: teacher, student, data,
// objectives, strategy, training, output, metrics) plus the job's identity. What the operator mounts is exactly
// that (operator/src/builders/configmap.ts); a whole manifest (what a user kubectl-applies, or runs locally) is
// read the same way, its operator-only fields (runtime, runPolicy, queueName) set aside unparsed: their rules are
// the operator's. Fields the trainer does not know are reported (an older trainer image must not silently ignore
// a newer field).
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import {
  backendNames,
  ConfigError,
  parseTrainerSpec,
  TrainerSpec,
  unknownFields,
} from "../../api/v1alpha1/index.ts";

export const CONFIG_ENV = "MOKD_CONFIG";
export const JOB_NAME_ENV = "MOKD_JOB_NAME";
export const JOB_NAMESPACE_ENV = "MOKD_JOB_NAMESPACE";
export const DEFAULT_JOB_NAME = "local";
export const DEFAULT_NAMESPACE = "default";

export interface TrainerConfig {
  spec: TrainerSpec;
  /** Name and namespace of the DistillationJob: labels of every metric. */
  jobName: string;
  namespace: string;
  /** Where the config came from (for messages). */
  source: string;
  /** Fields of the config the trainer does not know (dotted paths): logged as warnings at start. */
  unknownFields: string[];
  /**
   * spec.runtime.backend of a whole manifest (a local run). In a pod the operator passes it as $MOKD_BACKEND
   * instead: runtime is the operator's section and is not in the mounted config.
   */
  runtimeBackend?: (typeof backendNames)[number];
}

type Env = Record<string, string | undefined>;

/** The config file: `--config <file>` wins over $MOKD_CONFIG. */
export function configPath(flag: string | undefined, env: Env = process.env): string {
  const path = flag ?? env[CONFIG_ENV];
  if (!path)
    throw new ConfigError([{ field: "", message: `no config: pass --config <file> or set ${CONFIG_ENV}` }]);
  return path;
}

/** Reads and validates a config file; every problem (unreadable file, bad YAML, bad field) is a ConfigError. */
export function loadConfig(path: string, env: Env = process.env): TrainerConfig {
  return parseConfig(readConfigFile(path), path, env);
}

function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError([{ field: "", message: `cannot read ${path}: ${(error as Error).message}` }], path);
  }
  try {
    // YAML is a superset of JSON: one parser reads both.
    return parseYaml(text);
  } catch (error) {
    throw new ConfigError([{ field: "", message: `not valid YAML/JSON: ${(error as Error).message}` }], path);
  }
}

/** A manifest has apiVersion/kind/spec at its root; anything else is taken as a bare spec. */
function isManifest(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  return "apiVersion" in value || "kind" in value || "spec" in value;
}

/** Root fields of a manifest, and the spec fields that are the operator's (not parsed by the trainer). */
const MANIFEST_FIELDS = new Set(["apiVersion", "kind", "metadata", "spec", "status"]);
export const OPERATOR_SPEC_FIELDS = new Set(["runtime", "runPolicy", "queueName"]);

function trainerPart(spec: unknown): unknown {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) return spec;
  return Object.fromEntries(Object.entries(spec).filter(([key]) => !OPERATOR_SPEC_FIELDS.has(key)));
}

const stringAt = (value: unknown, key: string): string | undefined => {
  const field =
    typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return typeof field === "string" && field !== "" ? field : undefined;
};

export function parseConfig(value: unknown, source: string, env: Env = process.env): TrainerConfig {
  const doc = value ?? {};
  const manifest = isManifest(doc);
  const specValue = trainerPart(manifest ? (doc.spec ?? {}) : doc);
  const spec = parseTrainerSpec(specValue, source);
  const unknown = unknownFields(TrainerSpec, specValue, ["spec"]);
  if (manifest) unknown.unshift(...Object.keys(doc).filter((k) => !MANIFEST_FIELDS.has(k)));
  const metadata = manifest ? doc.metadata : undefined;
  const runtimeBackend = manifest ? manifestBackend(doc.spec, source) : undefined;
  return {
    spec,
    jobName: env[JOB_NAME_ENV] || stringAt(metadata, "name") || DEFAULT_JOB_NAME,
    namespace: env[JOB_NAMESPACE_ENV] || stringAt(metadata, "namespace") || DEFAULT_NAMESPACE,
    source,
    unknownFields: unknown,
    ...(runtimeBackend ? { runtimeBackend } : {}),
  };
}

/** The one operator-section field a local run honours: spec.runtime.backend, checked against its enum. */
function manifestBackend(spec: unknown, source: string): TrainerConfig["runtimeBackend"] {
  const runtime =
    typeof spec === "object" && spec !== null ? (spec as Record<string, unknown>).runtime : undefined;
  const value = stringAt(runtime, "backend");
  if (value === undefined) return undefined;
  if (!(backendNames as readonly string[]).includes(value))
    throw new ConfigError(
      [{ field: "spec.runtime.backend", message: `expected one of ${backendNames.join(", ")}` }],
      source,
    );
  return value as TrainerConfig["runtimeBackend"];
}
