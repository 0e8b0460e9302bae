// The quality benchmark's teacher: trained once per fingerprint of the study's teacher and data blocks, saved under
// the study's cacheDir and reused; its test accuracy measured on the study's test split every time (trained now
// or reused, with or without student settings to run).
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  parseTrainerSpec,
  TrainerSpec,
  unknownFields,
  type ModelArchitecture,
} from "../../api/v1alpha1/index.ts";
import { forwardMacsPerSample, type Workload } from "../src/backend/workload.ts";
import { type LoadedDataset } from "../src/data/index.ts";
import { evaluateAccuracy } from "../src/engine/evaluate.ts";
import { loadTeacherAsData } from "../src/engine/teacher.ts";
import { trainTeacher } from "../src/engine/teacher-stage.ts";
import { buildNetwork, saveNetwork } from "../src/models/index.ts";
import type { Study } from "./study.ts";

type Log = (message: string) => void;

/** Parses a spec the bench built; a field the trainer does not know would silently change the study: refused. */
export function benchSpec(value: Record<string, unknown>, what: string): TrainerSpec {
  const unknown = unknownFields(TrainerSpec, value, ["spec"]);
  if (unknown.length) throw new Error(`${what}: fields the trainer does not know: ${unknown.join(", ")}`);
  return parseTrainerSpec(value, what);
}

export const hash = (value: unknown) =>
  createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 12);

export function teacherSpec(study: Study): TrainerSpec {
  const t = study.teacher;
  return benchSpec(
    {
      data: { ...study.data, maxTrainSamples: t.trainSamples },
      teacher: t.spec,
      training: { batchSize: t.batchSize, seed: t.seed, evaluationsPerEpoch: t.evaluationsPerEpoch },
      metrics: { port: 0 },
    },
    "teacher",
  );
}

/** Where the study's teacher is kept: one directory per fingerprint of its teacher and data blocks. */
export function teacherDir(study: Study): string {
  // The study's own teacher and data blocks, not the parsed spec: a field the schema gains later must not
  // retrain (delete the directory after changing how the trainer trains teachers).
  return join(study.cacheDir, `teacher-${hash({ teacher: study.teacher, data: study.data })}`);
}

export const teacherCached = (study: Study) => existsSync(join(teacherDir(study), "model.json"));

/**
 * The trainer's own `auto` rule applied to the study: the largest forward work per batch of its students (each
 * setting at its batch size) and of its teacher when it is trained now, as runWorkload weighs a run's models.
 * Undefined when nothing is trained (auto then takes its default order).
 */
export function studyWorkload(
  study: Study,
  settings: Study["settings"],
  data: Pick<LoadedDataset, "inputShape" | "numClasses">,
  trainsTeacher: boolean,
): Workload | undefined {
  const perBatch = (name: string, arch: ModelArchitecture, batchSize: number): Workload => ({
    forwardMacsPerBatch: forwardMacsPerSample(arch, data.inputShape, data.numClasses) * batchSize,
    model: name,
  });
  const loads = settings.map((s) => {
    const parsed = benchSpec({ student: s.student, training: s.training }, s.name);
    return perBatch(`student of ${s.name}`, parsed.student, parsed.training.batchSize);
  });
  if (trainsTeacher) {
    const t = teacherSpec(study);
    loads.push(perBatch("teacher", t.teacher, t.training.batchSize));
  }
  if (!loads.length) return undefined;
  return loads.reduce((a, b) => (b.forwardMacsPerBatch > a.forwardMacsPerBatch ? b : a));
}

export interface BenchTeacher {
  dir: string;
  trainedNow: boolean;
  /** Training time (0 when reused). */
  seconds: number;
  /** On the study's test split, measured whether trained now or reused. */
  testAccuracy: number;
}

/** The study's teacher: loaded from its fingerprint's directory, else trained there first; then tested. */
export async function obtainTeacher(study: Study, data: LoadedDataset, log: Log): Promise<BenchTeacher> {
  const dir = teacherDir(study);
  const trainedNow = !teacherCached(study);
  const seconds = trainedNow ? await trainInto(study, data, dir, log) : 0;
  const teacher = await loadTeacherAsData(dir, undefined, data, { info: log, warn: log });
  const testAccuracy = evaluateAccuracy(teacher, data.test, 256);
  teacher.model.dispose();
  return { dir, trainedNow, seconds, testAccuracy };
}

async function trainInto(study: Study, data: LoadedDataset, dir: string, log: Log): Promise<number> {
  const s = teacherSpec(study);
  const network = buildNetwork(s.teacher, data.inputShape, data.numClasses, s.training.seed, {
    name: "teacher",
  });
  log(`teacher: training ${JSON.stringify(study.teacher.spec)} on ${data.train.size} images into ${dir}`);
  const t0 = performance.now();
  const hooks = {
    onEpoch: (r: { epoch: number; validationAccuracy: number; seconds: number }) =>
      log(
        `teacher epoch ${r.epoch}: validation ${(r.validationAccuracy * 100).toFixed(2)}% (${r.seconds.toFixed(0)} s)`,
      ),
  };
  const settings = {
    epochs: s.teacher.epochs,
    learningRate: s.teacher.learningRate,
    batchSize: s.training.batchSize,
    seed: s.training.seed,
    evaluationsPerEpoch: s.training.evaluationsPerEpoch,
    keep: s.training.reportedModel,
  };
  await trainTeacher(network, data, settings, hooks);
  await saveNetwork({ ...network, inputNormalization: data.normalization }, dir);
  network.model.dispose();
  return (performance.now() - t0) / 1000;
}
