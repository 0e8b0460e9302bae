// A study's configuration as the trainer reads it: the template's trainer part (a TrainerSpec, read leniently as
// `train` reads a job's, so an older or newer operator's extra fields are reported, not fatal) and the variants,
// expanded once by api/v1alpha1's expandVariants. In a pod it comes from the ConfigMap the operator mounts
// (studyTrainerConfig); locally from a whole DistillationStudy manifest, checked strictly first.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import {
  ConfigError,
  DistillationStudySpec,
  expandVariants,
  STUDY_KIND,
  type DistillationStudy,
  type StudyVariant,
  type TrainerSpec,
} from "../../../api/v1alpha1/index.ts";
import { parseConfig, type TrainerConfig, JOB_NAMESPACE_ENV } from "../config.ts";

type Env = Record<string, string | undefined>;

export interface StudyConfig {
  /** The template as a job config: its spec, the study's name and namespace, where it came from. */
  template: TrainerConfig;
  variants: StudyVariant[];
  seeds: number[];
  teacherShards: number;
}

/** What the trainer needs of the study spec besides the template (the template is parsed on its own). */
const StudyRunSpec = z.object({
  variants: DistillationStudySpec.shape.variants,
  seeds: DistillationStudySpec.shape.seeds,
  teacherShards: DistillationStudySpec.shape.teacherShards,
});

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** The config file of a study pod ($MOKD_CONFIG or --config): a DistillationStudy manifest, JSON or YAML. */
export function loadStudyConfig(path: string, env: Env = process.env): StudyConfig {
  let value: unknown;
  try {
    value = parseYaml(readFileSync(path, "utf8"));
  } catch (error) {
    throw new ConfigError([{ field: "", message: `cannot read ${path}: ${(error as Error).message}` }], path);
  }
  return parseStudyConfig(value, path, env);
}

export function parseStudyConfig(value: unknown, source: string, env: Env = process.env): StudyConfig {
  if (!isRecord(value) || value.kind !== STUDY_KIND || !isRecord(value.spec))
    throw new ConfigError(
      [{ field: "kind", message: `expected a ${STUDY_KIND} manifest with a spec` }],
      source,
    );
  const parsed = StudyRunSpec.safeParse(value.spec);
  if (!parsed.success)
    throw new ConfigError(
      parsed.error.issues.map((i) => ({
        field: ["spec", ...i.path.map(String)].join("."),
        message: i.message,
      })),
      source,
    );
  const metadata = isRecord(value.metadata) ? value.metadata : {};
  // The template read as a job manifest named after the study: its metrics carry the study's name as mokd_job.
  const template = parseConfig(
    { apiVersion: value.apiVersion, kind: "DistillationJob", metadata, spec: value.spec.template ?? {} },
    source,
    env,
  );
  const namespace = env[JOB_NAMESPACE_ENV] || template.namespace;
  return fromSpec({ ...template, namespace }, parsed.data);
}

/** A strictly checked local manifest (manifest-file.ts) as the study config. */
export function studyFromManifest(
  study: DistillationStudy,
  source: string,
  env: Env = process.env,
): StudyConfig {
  const template = parseConfig(
    {
      apiVersion: study.apiVersion,
      kind: "DistillationJob",
      metadata: study.metadata,
      spec: study.spec.template,
    },
    source,
    env,
  );
  return fromSpec(template, study.spec);
}

function fromSpec(template: TrainerConfig, spec: z.output<typeof StudyRunSpec>): StudyConfig {
  const withTemplate = {
    ...spec,
    template: template.spec as TrainerSpec & DistillationStudySpec["template"],
  };
  return {
    template,
    variants: expandVariants(withTemplate),
    seeds: spec.seeds,
    teacherShards: spec.teacherShards,
  };
}

/** Whether any variant reads the teacher's features (the pass then stores them). */
export function needsTeacherFeatures(config: StudyConfig): boolean {
  const { objectives } = config.template.spec;
  return objectives.feature.enabled && config.variants.some((v) => v.method !== "alone");
}
