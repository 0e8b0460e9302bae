// Teacher acquisition: the teacher of a run, in order of preference the one a checkpoint names, a configured
// model, one this run already trained (saved with the checkpoints), or a freshly trained one. A teacher the
// trainer saves carries the input normalisation it was trained with; a loaded teacher that carries one sees its
// inputs in that normalisation whatever the student's data uses (a per-channel affine layer in front of it).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TrainerSpec } from "../../../api/v1alpha1/index.ts";
import type { EpochRecord, Network } from "../contracts.ts";
import { DataError, type LoadedDataset, type Normalization } from "../data/index.ts";
import {
  buildNetwork,
  loadTeacherOfAnyFormat,
  parameterCount,
  saveNetwork,
  withInputNormalization,
  type TeacherSource,
} from "../models/index.ts";
import { evaluateAccuracy } from "./evaluate.ts";
import type { CheckpointOptions, StageHooks } from "./stage.ts";
import type { StopSignal } from "./stop.ts";
import type { TeacherInfo } from "./student-stage.ts";
import type { Logger } from "./telemetry.ts";
import { removeTeacherCheckpoints, trainTeacher } from "./teacher-stage.ts";

/** Where a trained teacher is described (path, accuracy, spec fingerprint), next to the checkpoints. */
const TEACHER_INFO_FILE = "teacher-info.json";
/** Checkpoints of an unfinished teacher stage (removed once the teacher is saved). */
const TEACHER_PROGRESS_DIR = "teacher-progress";

export interface TeacherHandle {
  network: Network;
  info: TeacherInfo;
  history: EpochRecord[];
}

export interface TeacherContext {
  outputPath: string;
  checkpointPath: string;
  hooks: StageHooks;
  stop?: StopSignal;
  log: Logger;
  /** The teacher a resumed student checkpoint names. */
  resumed?: TeacherInfo;
  fingerprint: string;
  /** After each teacher checkpoint (uploads it when checkpoints go to object storage). */
  afterCheckpoint?: CheckpointOptions["afterSave"];
  /** Where a trained teacher is saved (default <outputPath>/teacher). */
  modelDir?: string;
}

export async function obtainTeacher(
  spec: TrainerSpec,
  dataset: LoadedDataset,
  ctx: TeacherContext,
): Promise<TeacherHandle> {
  const saved = ctx.resumed ?? readTeacherInfo(ctx.checkpointPath, ctx.fingerprint);
  if (saved && existsSync(join(saved.path, "model.json"))) {
    ctx.log.info(`teacher: reusing ${saved.path}`);
    const network = await loadTeacherAsData(saved.path, spec.teacher.featureLayer, dataset, ctx.log);
    return { network, info: saved, history: [] };
  }
  if (spec.teacher.model) {
    const source = { ...spec.teacher, model: spec.teacher.model };
    const network = await loadTeacherAsData(source, spec.teacher.featureLayer, dataset, ctx.log);
    const info: TeacherInfo = {
      path: spec.teacher.model,
      source: "loaded",
      accuracy: evaluateAccuracy(network, dataset.test, 256),
    };
    return { network, info, history: [] };
  }
  return trainAndSaveTeacher(spec, dataset, ctx);
}

/**
 * Loads a teacher, wrapping any failure as bad data (exit 3): a missing or malformed model is not retryable.
 * A teacher that carries its training normalisation gets its inputs converted from the dataset's.
 */
export async function loadTeacherAsData(
  pathOrSource: string | TeacherSource,
  featureLayer: string | undefined,
  dataset: LoadedDataset,
  log: Logger,
): Promise<Network> {
  const source = typeof pathOrSource === "string" ? { model: pathOrSource, featureLayer } : pathOrSource;
  const path = source.model;
  let network: Network;
  try {
    network = await loadTeacherOfAnyFormat(source, dataset.inputShape);
  } catch (error) {
    if (error instanceof DataError) throw error;
    throw new DataError(path, `cannot load teacher: ${(error as Error).message}`);
  }
  if (network.numClasses !== dataset.numClasses)
    throw new DataError(
      path,
      `the teacher has ${network.numClasses} outputs, the data ${dataset.numClasses} classes`,
    );
  const own = network.inputNormalization;
  if (!own || sameNormalization(own, dataset.normalization)) return network;
  log.info(
    `teacher: converting inputs from the data's normalisation (${describe(dataset.normalization)}) to the ` +
      `teacher's (${describe(own)})`,
  );
  return withInputNormalization(network, dataset.normalization, own);
}

const describe = (n: Normalization) =>
  `${n.kind}, mean ${n.mean.map((m) => m.toFixed(4)).join("/")}, std ${n.std.map((s) => s.toFixed(4)).join("/")}`;

function sameNormalization(a: Normalization, b: Normalization): boolean {
  const close = (x: number[], y: number[]) =>
    x.length === y.length && x.every((v, i) => Math.abs(v - y[i]!) <= 1e-6 * Math.max(1, Math.abs(v)));
  return close(a.mean, b.mean) && close(a.std, b.std);
}

async function trainAndSaveTeacher(
  spec: TrainerSpec,
  dataset: LoadedDataset,
  ctx: TeacherContext,
): Promise<TeacherHandle> {
  const seed = spec.training.seed + 1;
  const network = buildNetwork(spec.teacher, dataset.inputShape, dataset.numClasses, seed, {
    name: "teacher",
  });
  ctx.log.info(`teacher: training ${spec.teacher.architecture} (${parameterCount(network)} parameters)`);
  const settings = {
    epochs: spec.teacher.epochs,
    learningRate: spec.teacher.learningRate,
    batchSize: spec.training.batchSize,
    seed,
    evaluationsPerEpoch: spec.training.evaluationsPerEpoch,
    keep: spec.training.reportedModel,
  };
  const progress = join(ctx.checkpointPath, TEACHER_PROGRESS_DIR);
  const checkpoints = {
    dir: progress,
    fingerprint: ctx.fingerprint,
    log: (m: string) => ctx.log.info(m),
    ...(ctx.afterCheckpoint ? { afterSave: ctx.afterCheckpoint } : {}),
  };
  const result = await trainTeacher(network, dataset, settings, ctx.hooks, ctx.stop, checkpoints);
  network.model.trainable = false;
  const trained: Network = { ...network, inputNormalization: dataset.normalization };
  await saveNetwork(trained, ctx.modelDir ?? join(ctx.outputPath, "teacher"));
  // A copy next to the checkpoints, which outlive the output directory in a pod (emptyDir output).
  const persistent = join(ctx.checkpointPath, "teacher");
  await saveNetwork(trained, persistent);
  const info: TeacherInfo = {
    path: persistent,
    source: "trained",
    accuracy: evaluateAccuracy(network, dataset.test, 256),
    validationAccuracy:
      settings.keep === "best-validation"
        ? (result.best?.validationAccuracy ?? result.history.at(-1)?.validationAccuracy)
        : result.history.at(-1)?.validationAccuracy,
    fingerprint: ctx.fingerprint,
  };
  writeFileSync(join(ctx.checkpointPath, TEACHER_INFO_FILE), JSON.stringify(info));
  removeTeacherCheckpoints(progress);
  return { network: trained, info, history: result.history };
}

function readTeacherInfo(checkpointPath: string, fingerprint: string): TeacherInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(join(checkpointPath, TEACHER_INFO_FILE), "utf8")) as TeacherInfo;
    return info.fingerprint === fingerprint ? info : undefined;
  } catch {
    return undefined;
  }
}
