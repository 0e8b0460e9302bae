// `trainer study variant`: one run of the study. Its index names the variant (expandVariants, the one expansion
// the operator uses too), variantTrainerSpec gives what it trains, and it trains as `train` does (runJob: data,
// student, strategy, checkpoints and resume, telemetry, outputs) but for the teacher: its outputs come from the
// study's shared teacher pass, verified, and the teacher model is never loaded (the network it is given has no
// model: touching it throws). The student alone reads no teacher outputs at all. Its outputs go under
// variants/<name>/ of the shared storage; its termination message carries what the study's status needs.
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import {
  ConfigError,
  sharedRoot,
  STUDY_KIND,
  studyCheckpointSuffix,
  StudyLayout,
  variantTrainerSpec,
  type StudyVariant,
  type TrainerSpec,
  type VariantStudyFields,
} from "../../../api/v1alpha1/index.ts";
import type { Batch, Network } from "../contracts.ts";
import type { TrainerConfig } from "../config.ts";
import { runJob, type ProvidedTeacher, type RunResult } from "../engine/run.ts";
import type { TeacherOutputs, TeacherOutputSource } from "../engine/teacher-cache.ts";
import type { LoadedDataset } from "../data/index.ts";
import {
  outputPathOf,
  sharedStore,
  stageCheckpointPath,
  stageStorage,
  studyLabels,
  type StudyStageOptions,
} from "./stage.ts";
import { dataFingerprint, readTeacherOutputs, teacherFingerprint } from "./teacher-outputs.ts";

/** The variant an index names; an index outside the study is the operator's mistake, named. */
export function variantAt(o: Pick<StudyStageOptions, "config" | "index">): StudyVariant {
  const variant = o.config.variants[o.index];
  if (!variant)
    throw new ConfigError([
      {
        field: "JOB_COMPLETION_INDEX",
        message: `${o.index} is not a variant of this ${STUDY_KIND} (it has ${o.config.variants.length} runs)`,
      },
    ]);
  return variant;
}

/** A teacher of the right shape and no model: a study variant has only its outputs. */
export function outputsOnlyTeacher(numClasses: number, featureDim: number, parameters: number): Network {
  return {
    numClasses,
    featureDim,
    parameters,
    get model(): never {
      throw new Error(
        "a study variant never loads the teacher: its outputs come from the shared teacher pass",
      );
    },
  };
}

/** The student alone reads no teacher output: zeros of the right shape, which no enabled objective reads. */
class NoTeacherOutputs implements TeacherOutputSource {
  private readonly numClasses: number;
  constructor(numClasses: number) {
    this.numClasses = numClasses;
  }
  outputs(batch: Batch): TeacherOutputs {
    return { teacherLogits: tf.zeros([batch.indices.length, this.numClasses]) };
  }
}

/** The variant's trainer spec with its own output and checkpoint locations in the study's storage. */
export function variantSpec(template: TrainerSpec, variant: StudyVariant): TrainerSpec {
  const spec = variantTrainerSpec(template, variant);
  const root = sharedRoot(template);
  const dir = StudyLayout.variantDir(variant.name);
  const checkpointsUri = template.output.checkpoints.uri;
  const suffix = studyCheckpointSuffix({ variant: variant.name });
  return {
    ...spec,
    output: {
      ...spec.output,
      uri: root.kind === "s3" ? `${root.uri}/${dir}` : undefined,
      checkpoints: {
        ...spec.output.checkpoints,
        uri: checkpointsUri ? `${checkpointsUri.replace(/\/+$/, "")}/${suffix}` : undefined,
      },
      // The compression report measures the teacher, which a variant never loads.
      compression: { ...spec.output.compression, enabled: false },
    },
  };
}

export async function runVariantStage(
  o: StudyStageOptions,
  beforeUpload?: (result: RunResult, config: TrainerConfig) => Promise<void>,
): Promise<RunResult> {
  const variant = variantAt(o);
  const template = o.config.template;
  const spec = variantSpec(template.spec, variant);
  const config: TrainerConfig = { ...template, spec };
  const dir = StudyLayout.variantDir(variant.name);
  const store = sharedStore(o, stageStorage(template.spec, o.log));
  const alone = variant.method === "alone";
  const study: VariantStudyFields = {
    name: variant.name,
    index: variant.index,
    arm: variant.arm,
    seed: variant.seed,
    method: variant.method,
    ...(variant.alpha !== undefined ? { alpha: variant.alpha } : {}),
    teacherOutputs: alone ? "none" : "shared",
  };
  o.log.info(`study variant ${variant.index}: ${variant.name} (${variant.arm}, seed ${variant.seed})`);

  const teacher = async ({ dataset }: { dataset: LoadedDataset }): Promise<ProvidedTeacher> => {
    if (alone) {
      const info = { path: "", source: "loaded" as const, accuracy: Number.NaN };
      const network = outputsOnlyTeacher(dataset.numClasses, 0, 0);
      return {
        handle: { network, info, history: [] },
        outputs: new NoTeacherOutputs(dataset.numClasses),
        dispose: () => {},
      };
    }
    const fingerprint = dataFingerprint(dataset);
    const { cache, manifests } = await readTeacherOutputs(store, {
      shards: o.config.teacherShards,
      samples: dataset.train.size,
      numClasses: dataset.numClasses,
      dataFingerprint: fingerprint,
      teacherFingerprint: teacherFingerprint(template.spec),
      needsFeatures: spec.objectives.feature.enabled,
    });
    const first = manifests[0]!;
    study.teacherOutputsUri = store.location(StudyLayout.teacherDir);
    study.dataFingerprint = fingerprint;
    o.log.info(
      `teacher outputs: ${manifests.length} shard(s) from ${study.teacherOutputsUri}, verified (sha256, data, teacher)`,
    );
    const network = outputsOnlyTeacher(dataset.numClasses, cache.featureDim, first.teacher.parameters ?? 0);
    const info = {
      path: study.teacherOutputsUri,
      source: first.teacher.source,
      accuracy: first.teacher.accuracy ?? Number.NaN,
      ...(first.teacher.validationAccuracy !== undefined
        ? { validationAccuracy: first.teacher.validationAccuracy }
        : {}),
    };
    return { handle: { network, info, history: [] }, outputs: cache, dispose: () => {} };
  };

  return runJob({
    config,
    outputPath: join(outputPathOf(o), dir),
    checkpointPath: stageCheckpointPath(o, { variant: variant.name }),
    ...(o.backend ? { backend: o.backend } : {}),
    ...(o.expectGpus !== undefined ? { expectGpus: o.expectGpus } : {}),
    ...(o.metricsPort !== undefined ? { metricsPort: o.metricsPort } : {}),
    ...(o.metricsLingerSeconds !== undefined ? { metricsLingerSeconds: o.metricsLingerSeconds } : {}),
    ...(o.terminationLog ? { terminationLog: o.terminationLog } : {}),
    ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
    ...(o.hooks ? { hooks: o.hooks } : {}),
    ...(o.stop ? { stop: o.stop } : {}),
    log: o.log,
    teacher,
    inputFields: ["data.path", "student.model"],
    metricLabels: studyLabels(o, variant.name),
    summaryFields: { study },
    resultFields: (summary) => ({
      variant: variant.name,
      teacherSource: study.teacherOutputs,
      bestValidationAccuracy: Math.round(summary.bestValidationAccuracy * 1e4) / 1e4,
      ...(summary.epochsToTarget !== undefined ? { epochsToTarget: summary.epochsToTarget } : {}),
    }),
    ...(beforeUpload ? { beforeUpload: (r: RunResult) => beforeUpload(r, config) } : {}),
  });
}
