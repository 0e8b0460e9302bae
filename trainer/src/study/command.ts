// The study commands of the CLI: `trainer study teacher|variant|report` (a pod's stage, by the contract in
// api/v1alpha1/study-contract.ts), what `fetch --study-stage` downloads for each, and `validate`'s line.
import {
  COMPLETION_INDEX_ENV,
  ConfigError,
  runCount,
  STUDY_ENV,
  studyStageNames,
  type DistillationStudy,
  type StudyStage,
} from "../../../api/v1alpha1/index.ts";
import type { InputField } from "../storage/inputs.ts";
import { loadStudyConfig } from "./config.ts";
import type { LocalStudyOptions } from "./local.ts";
import type { StudyStageOptions } from "./stage.ts";

type Env = Record<string, string | undefined>;

function stageOf(value: string | undefined, field: string): StudyStage {
  if (value && (studyStageNames as readonly string[]).includes(value)) return value as StudyStage;
  throw new ConfigError([{ field, message: `expected one of ${studyStageNames.join(", ")}` }]);
}

/** What each stage's init container downloads: the variant never fetches the teacher, the report nothing. */
export function studyInputFields(stage: string): InputField[] {
  const fields: Record<StudyStage, InputField[]> = {
    teacher: ["data.path", "teacher.model"],
    variant: ["data.path", "student.model"],
    report: [],
  };
  return fields[stageOf(stage, "--study-stage")];
}

/** --index, else $JOB_COMPLETION_INDEX (an Indexed Job's pod); the teacher and report default to 0. */
export function completionIndex(flag: string | undefined, stage: StudyStage, env: Env = process.env): number {
  const value = flag ?? env[COMPLETION_INDEX_ENV];
  if (value === undefined || value === "") {
    if (stage !== "variant") return 0;
    throw new ConfigError([
      {
        field: COMPLETION_INDEX_ENV,
        message: "a variant needs its index: run it in an Indexed Job, or pass --index",
      },
    ]);
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new ConfigError([
      { field: flag === undefined ? COMPLETION_INDEX_ENV : "--index", message: "expected an integer >= 0" },
    ]);
  return n;
}

export interface StudyCommandOptions extends Omit<StudyStageOptions, "config" | "index"> {
  configFile: string;
  index: string | undefined;
  variantReport?: LocalStudyOptions["variantReport"];
}

export async function runStudyStage(
  stageName: string | undefined,
  options: StudyCommandOptions,
  env: Env = process.env,
): Promise<void> {
  const stage = stageOf(stageName, "study");
  const config = loadStudyConfig(options.configFile, env);
  for (const field of config.template.unknownFields)
    options.log.warn(`config: unknown field ${field} (ignored: this trainer does not know it)`);
  const index = completionIndex(options.index, stage, env);
  const { configFile: _file, index: _index, variantReport, ...rest } = options;
  const o: StudyStageOptions = {
    ...rest,
    config,
    index,
    ...(env[STUDY_ENV] ? { studyName: env[STUDY_ENV] } : {}),
  };
  options.log.info(
    `study ${config.template.namespace}/${config.template.jobName}: ${stage} stage, index ${index}`,
  );
  if (stage === "teacher") {
    const { runTeacherStage } = await import("./teacher-pass.ts");
    await runTeacherStage(o);
  } else if (stage === "variant") {
    const { runVariantStage } = await import("./variant.ts");
    await runVariantStage(o, variantReport);
  } else {
    const { runReportStage } = await import("./report-stage.ts");
    await runReportStage(o, Math.max(1, options.expectGpus ?? 0));
  }
}

/** `trainer validate`'s line for a valid study. */
export function studyLine(study: DistillationStudy): string {
  const s = study.spec;
  const arms = [
    ...(s.variants.studentAlone ? ["alone"] : []),
    ...s.variants.automatic,
    ...(s.variants.fixedAlphas.length ? [`${s.variants.fixedAlphas.length} fixed cells`] : []),
  ];
  return (
    `study ${study.metadata.namespace ?? "default"}/${study.metadata.name}: ${arms.join(", ")} x ` +
    `${s.seeds.length} seed(s) = ${runCount(s)} runs, teacher ${s.template.teacher.model ?? s.template.teacher.architecture}`
  );
}
