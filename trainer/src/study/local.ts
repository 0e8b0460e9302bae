// `trainer run <study.yaml>` (npm run job): the study's stages in one process, in the order the operator runs
// them: every teacher shard, every variant (one failing is recorded and the others run, as an Indexed Job's
// per-index retries isolate it), then the report. The shared storage is the template's output (a local
// directory, or its s3:// URI), so the files and the report are the cluster's.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { ExitCode, StudyLayout } from "../../../api/v1alpha1/index.ts";
import type { TrainerConfig } from "../config.ts";
import type { RunResult } from "../engine/run.ts";
import { StoppedError } from "../engine/stop.ts";
import type { StudyAnswer } from "./answer.ts";
import { runReportStage } from "./report-stage.ts";
import { outputPathOf, checkpointBaseOf, type StudyStageOptions } from "./stage.ts";
import { runTeacherStage } from "./teacher-pass.ts";
import { runVariantStage } from "./variant.ts";

export interface LocalStudyOptions extends Omit<StudyStageOptions, "index"> {
  /** Start over: remove the study's checkpoints, teacher pass and variants' outputs first. */
  fresh?: boolean;
  devices?: number;
  /** Writes a variant's own report before its outputs are uploaded (the CLI's run report). */
  variantReport?: (result: RunResult, config: TrainerConfig) => Promise<void>;
  /** Maps a variant's error to its exit code (and logs it). */
  failed?: (variant: string, error: unknown) => number;
}

export interface LocalStudyResult {
  answer: StudyAnswer;
  /** The first failed variant's exit code; 0 when every run succeeded. */
  exitCode: number;
}

export async function runStudyLocally(o: LocalStudyOptions): Promise<LocalStudyResult> {
  const { config, log } = o;
  if (o.fresh) {
    const out = outputPathOf({ ...o, index: 0 });
    for (const dir of [StudyLayout.teacherDir, "variants"])
      rmSync(join(out, dir), { recursive: true, force: true });
    rmSync(checkpointBaseOf({ ...o, index: 0 }), { recursive: true, force: true });
    log.info(`--fresh: removed the study's earlier teacher pass, variants and checkpoints`);
  }
  for (let shard = 0; shard < config.teacherShards; shard++) await runTeacherStage({ ...o, index: shard });
  let exitCode: number = ExitCode.Success;
  for (const variant of config.variants) {
    try {
      await runVariantStage({ ...o, index: variant.index }, o.variantReport);
    } catch (error) {
      if (error instanceof StoppedError) throw error;
      const code = o.failed?.(variant.name, error) ?? ExitCode.InternalError;
      if (exitCode === ExitCode.Success) exitCode = code;
    }
  }
  const answer = await runReportStage({ ...o, index: 0 }, o.devices);
  return { answer, exitCode };
}
