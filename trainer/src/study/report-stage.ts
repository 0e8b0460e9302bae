// `trainer study report`: after the variants ended, reads every variant's summary and the teacher pass's from
// the shared storage, computes the answer (answer.ts) and writes report.html, then study-summary.json (last: it
// marks the report done). A variant without a summary is a failed run, not a failed report.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StudyLayout, TeacherShardManifest, TeacherStageSummary } from "../../../api/v1alpha1/index.ts";
import { renderStudyReport } from "../report/study.ts";
import { studyAnswer, type StudyAnswer, type VariantSummary } from "./answer.ts";
import { outputPathOf, sharedStore, stageStorage, writeResult, type StudyStageOptions } from "./stage.ts";

export async function runReportStage(o: StudyStageOptions, devices = 1): Promise<StudyAnswer> {
  const started = performance.now();
  const { config, log } = o;
  const store = sharedStore(o, stageStorage(config.template.spec, log));
  const summaries: (VariantSummary | undefined)[] = [];
  for (const v of config.variants)
    summaries.push(await store.getJson<VariantSummary>(StudyLayout.variantSummary(v.name)));
  const teacherSummaries: TeacherStageSummary[] = [];
  for (let shard = 0; shard < config.teacherShards; shard++) {
    const parsed = TeacherStageSummary.safeParse(await store.getJson(StudyLayout.teacherSummary(shard)));
    if (parsed.success) teacherSummaries.push(parsed.data);
  }
  const manifest = TeacherShardManifest.safeParse(await store.getJson(StudyLayout.teacherShardManifest(0)));
  const answer = studyAnswer({
    study: { name: config.template.jobName, namespace: config.template.namespace },
    variants: config.variants,
    summaries,
    teacherSummaries,
    teacherShards: config.teacherShards,
    ...(manifest.success && manifest.data.teacher.accuracy !== undefined
      ? { teacherAccuracy: manifest.data.teacher.accuracy }
      : {}),
    devices,
  });
  log.info(`study report: ${answer.succeeded}/${answer.runs} runs succeeded`);
  const dir = outputPathOf(o);
  mkdirSync(dir, { recursive: true });
  const html = join(dir, StudyLayout.report);
  writeFileSync(html, renderStudyReport(answer));
  await store.putFile(html, StudyLayout.report);
  await store.putJson(StudyLayout.studySummary, answer);
  writeResult(o, {
    durationSeconds: Math.round(((performance.now() - started) / 1000) * 10) / 10,
    ...(store.root.kind === "s3"
      ? { outputUri: store.root.uri }
      : { modelPath: store.location(StudyLayout.report) }),
    ...(answer.teacher.accuracy !== undefined
      ? { teacherAccuracy: Math.round(answer.teacher.accuracy * 1e4) / 1e4 }
      : {}),
  });
  return answer;
}
