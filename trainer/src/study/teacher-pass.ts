// `trainer study teacher`: one shard of the study's teacher pass. Loads the given teacher, or (shard 0 of one:
// the schema refuses more) trains it once, with checkpoints and resume as `train` does; evaluates its test
// accuracy (shard 0); computes its outputs for the shard's slice of the training split (logits, and features
// when a variant's objectives read them), in inference mode without augmentation, as offline distillation does;
// and writes them to the shared storage, the shard's manifest last. A shard already complete for this data and
// teacher is taken as it is (a retried or re-run pod recomputes nothing).
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  shardRange,
  StudyLayout,
  TeacherShardManifest,
  teacherStageLabel,
  type TeacherStageSummary,
} from "../../../api/v1alpha1/index.ts";
import { selectBackend } from "../backend/index.ts";
import { runWorkload } from "../backend/workload.ts";
import { loadDataset, type LoadedDataset } from "../data/index.ts";
import { evaluateAccuracy } from "../engine/evaluate.ts";
import { specFingerprint } from "../engine/fingerprint.ts";
import { withImageSize } from "../engine/run.ts";
import { StoppedError } from "../engine/stop.ts";
import { TeacherOutputCache } from "../engine/teacher-cache.ts";
import { loadTeacherAsData, obtainTeacher, type TeacherHandle } from "../engine/teacher.ts";
import { closeServer, serveMetrics, telemetryHooks } from "../engine/telemetry.ts";
import { parameterCount } from "../models/index.ts";
import { cacheRoot, resolveInputs } from "../storage/inputs.ts";
import { JsonlWriter } from "../telemetry/jsonl.ts";
import { TrainerMetrics } from "../telemetry/metrics.ts";
import { ProgressDocument } from "../telemetry/progress.ts";
import { needsTeacherFeatures } from "./config.ts";
import type { SharedStore } from "./shared-store.ts";
import {
  outputPathOf,
  sharedStore,
  stageCheckpointPath,
  stageStorage,
  studyLabels,
  writeResult,
  type StudyStageOptions,
} from "./stage.ts";
import { dataFingerprint, encodeRows, teacherFingerprint } from "./teacher-outputs.ts";

export async function runTeacherStage(o: StudyStageOptions): Promise<TeacherStageSummary> {
  const started = performance.now();
  const { config, log } = o;
  const shard = o.index;
  if (shard >= config.teacherShards)
    throw new Error(`teacher shard ${shard} of ${config.teacherShards}: no such completion index`);
  const template = config.template.spec;
  const storage = stageStorage(template, log);
  const spec = storage
    ? await resolveInputs(template, storage, o.cacheDir ?? cacheRoot(), ["data.path", "teacher.model"])
    : template;
  const dataset = await loadDataset(await withImageSize(spec.data, spec));
  const workload = runWorkload(spec, dataset.inputShape, dataset.numClasses);
  const backend = await selectBackend(
    o.backend ?? config.template.runtimeBackend ?? "auto",
    log.info,
    workload,
  );
  const store = sharedStore(o, storage);
  const range = shardRange(dataset.train.size, config.teacherShards, shard);
  const expected = {
    dataFingerprint: dataFingerprint(dataset),
    teacherFingerprint: teacherFingerprint(template),
  };
  log.info(
    `teacher pass: shard ${shard + 1} of ${config.teacherShards}, training samples ${range.start}..` +
      `${range.start + range.count} of ${dataset.train.size} -> ${store.location(StudyLayout.teacherDir)}`,
  );
  const done = await completedShard(store, shard, expected);
  if (done) {
    log.info(`teacher pass: shard ${shard} is already complete for this data and teacher: reused`);
    return finish(
      o,
      store,
      summaryOf(shard, config.teacherShards, "reused", done.teacher.accuracy, range.count, started),
    );
  }
  const localDir = join(outputPathOf(o), StudyLayout.teacherDir);
  mkdirSync(localDir, { recursive: true });
  const metrics = new TrainerMetrics(config.template.jobName, config.template.namespace, {
    ...studyLabels(o, teacherStageLabel(shard)),
  });
  metrics.backend(backend.choice, backend.tensorflowVersion, backend.device);
  const stepsPerEpoch = Math.ceil(dataset.train.size / spec.training.batchSize);
  const progress = new ProgressDocument(
    spec.teacher.model ? {} : { teacher: { epochs: spec.teacher.epochs, stepsPerEpoch } },
  );
  const server = await serveMetrics(metrics, progress, o.metricsPort ?? spec.metrics.port, log);
  const jsonl = new JsonlWriter(join(localDir, `metrics-${shard}.jsonl`));
  try {
    const hooks = telemetryHooks(metrics, progress, jsonl, o.hooks);
    const teacher = await teacherOf(o, spec, dataset, shard, localDir, hooks);
    const accuracy =
      shard === 0
        ? (teacher.info.accuracy ?? evaluateAccuracy(teacher.network, dataset.test, 256))
        : undefined;
    if (accuracy !== undefined) {
      metrics.testAccuracy("teacher", accuracy);
      progress.testAccuracy("teacher", accuracy);
      log.info(`teacher (${teacher.info.source}) test accuracy ${(accuracy * 100).toFixed(2)}%`);
    }
    const withFeatures = needsTeacherFeatures(config);
    if (dataset.train.augments)
      log.warn("teacher pass: training augmentation is on; the stored outputs are of the unaugmented inputs");
    const t0 = performance.now();
    const cache = await TeacherOutputCache.fill(
      teacher.network,
      dataset.train,
      withFeatures,
      spec.training.batchSize * 4,
      o.stop,
      range,
    );
    if (!cache) throw new StoppedError(undefined);
    log.info(
      `teacher pass: ${withFeatures ? "logits and features" : "logits"} of ${range.count} samples in ` +
        `${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const source = teacher.info.source;
    await publishShard(
      store,
      localDir,
      {
        version: 1,
        shard,
        shards: config.teacherShards,
        samples: dataset.train.size,
        ...range,
        numClasses: cache.numClasses,
        featureDim: cache.featureDim,
        ...expected,
        teacher: {
          source,
          ...(accuracy !== undefined ? { accuracy } : {}),
          ...(teacher.info.validationAccuracy !== undefined
            ? { validationAccuracy: teacher.info.validationAccuracy }
            : {}),
          parameters: parameterCount(teacher.network),
        },
        createdAt: new Date().toISOString(),
      },
      cache,
      source === "trained" && shard === 0,
    );
    teacher.network.model.dispose();
    return finish(o, store, summaryOf(shard, config.teacherShards, source, accuracy, range.count, started));
  } finally {
    await closeServer(server);
  }
}

/** The given teacher (loaded), or the one trained on the spot (resumed from its checkpoints after a restart). */
async function teacherOf(
  o: StudyStageOptions,
  spec: StudyStageOptions["config"]["template"]["spec"],
  dataset: LoadedDataset,
  shard: number,
  localDir: string,
  hooks: ReturnType<typeof telemetryHooks>,
): Promise<TeacherHandle> {
  if (spec.teacher.model) {
    const source = { ...spec.teacher, model: spec.teacher.model };
    const network = await loadTeacherAsData(source, spec.teacher.featureLayer, dataset, o.log);
    const accuracy = shard === 0 ? evaluateAccuracy(network, dataset.test, 256) : Number.NaN;
    return { network, info: { path: spec.teacher.model, source: "loaded", accuracy }, history: [] };
  }
  return obtainTeacher(spec, dataset, {
    outputPath: localDir,
    modelDir: join(outputPathOf(o), StudyLayout.teacherModel),
    checkpointPath: stageCheckpointPath(o, { teacherShard: shard }),
    hooks,
    ...(o.stop ? { stop: o.stop } : {}),
    log: o.log,
    fingerprint: specFingerprint(spec),
  });
}

/** The shard's manifest when it is complete and was computed on this data by this teacher. */
async function completedShard(
  store: SharedStore,
  shard: number,
  expected: { dataFingerprint: string; teacherFingerprint: string },
): Promise<TeacherShardManifest | undefined> {
  const parsed = TeacherShardManifest.safeParse(await store.getJson(StudyLayout.teacherShardManifest(shard)));
  if (!parsed.success) return undefined;
  const m = parsed.data;
  return m.dataFingerprint === expected.dataFingerprint &&
    m.teacherFingerprint === expected.teacherFingerprint
    ? m
    : undefined;
}

/** Writes the rows, then (shard 0) the trained teacher, then the manifest: the manifest marks the shard done. */
async function publishShard(
  store: SharedStore,
  localDir: string,
  manifest: Omit<TeacherShardManifest, "bytes" | "sha256">,
  cache: TeacherOutputCache,
  withModel: boolean,
): Promise<void> {
  const bytes = encodeRows(cache);
  const file = join(localDir, `shard-${manifest.shard}.bin`);
  writeFileSync(file, bytes);
  await store.putFile(file, StudyLayout.teacherShard(manifest.shard));
  if (withModel) {
    const modelDir = join(localDir, "..", StudyLayout.teacherModel);
    await store.putDirectory(modelDir, StudyLayout.teacherModel);
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  await store.putJson(StudyLayout.teacherShardManifest(manifest.shard), {
    ...manifest,
    bytes: bytes.byteLength,
    sha256,
  } satisfies TeacherShardManifest);
}

function summaryOf(
  shard: number,
  shards: number,
  teacher: TeacherStageSummary["teacher"],
  accuracy: number | undefined,
  samples: number,
  started: number,
): TeacherStageSummary {
  return {
    stage: "teacher",
    shard,
    shards,
    teacher,
    teacherTrainings: teacher === "trained" ? 1 : 0,
    ...(accuracy !== undefined && Number.isFinite(accuracy) ? { accuracy } : {}),
    samples,
    durationSeconds: (performance.now() - started) / 1000,
  };
}

async function finish(o: StudyStageOptions, store: SharedStore, summary: TeacherStageSummary) {
  await store.putJson(StudyLayout.teacherSummary(summary.shard), summary);
  const teacherDir = store.location(StudyLayout.teacherDir);
  writeResult(o, {
    ...(summary.accuracy !== undefined ? { teacherAccuracy: Math.round(summary.accuracy * 1e4) / 1e4 } : {}),
    teacherSource: summary.teacher,
    durationSeconds: Math.round(summary.durationSeconds * 10) / 10,
    ...(store.root.kind === "s3" ? { outputUri: teacherDir } : { modelPath: teacherDir }),
  });
  return summary;
}
