// The trainer's configuration: a DistillationJob manifest (what a user kubectl-applies) or just its spec (what the
// operator mounts), parsed by the api/v1alpha1 schema so the trainer and the CRD cannot disagree.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import {
  ConfigError,
  parseDistillationJob,
  parseDistillationJobSpec,
  type DistillationJobSpec,
} from "../../api/v1alpha1/index.ts";

export const CONFIG_ENV = "MOKD_CONFIG";
export const JOB_NAME_ENV = "MOKD_JOB_NAME";
export const JOB_NAMESPACE_ENV = "MOKD_JOB_NAMESPACE";
export const DEFAULT_JOB_NAME = "local";
export const DEFAULT_NAMESPACE = "default";

export interface TrainerConfig {
  spec: DistillationJobSpec;
  /** Name and namespace of the DistillationJob: labels of every metric. */
  jobName: string;
  namespace: string;
  /** Where the config came from (for messages). */
  source: string;
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
function isManifest(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  return "apiVersion" in value || "kind" in value || "spec" in value;
}

export function parseConfig(value: unknown, source: string, env: Env = process.env): TrainerConfig {
  const doc = value ?? {};
  if (isManifest(doc)) {
    const job = parseDistillationJob(doc, source);
    return {
      spec: job.spec,
      jobName: env[JOB_NAME_ENV] || job.metadata.name || DEFAULT_JOB_NAME,
      namespace: env[JOB_NAMESPACE_ENV] || job.metadata.namespace || DEFAULT_NAMESPACE,
      source,
    };
  }
  return {
    spec: parseDistillationJobSpec(doc, source),
    jobName: env[JOB_NAME_ENV] || DEFAULT_JOB_NAME,
    namespace: env[JOB_NAMESPACE_ENV] || DEFAULT_NAMESPACE,
    source,
  };
}
