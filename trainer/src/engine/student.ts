// One student trained against a teacher, as the spec says: network, objectives, strategy and optimiser built
// from the spec, the student stage run, the kept weights tested.
import type { TrainerSpec } from "../../../api/v1alpha1/index.ts";
import type { Checkpoint } from "../checkpoint/index.ts";
import type { Dataset, EpochRecord, EvaluationRecord, Network } from "../contracts.ts";
import { buildNetwork, loadStudentTopology, parameterCount } from "../models/index.ts";
import { buildObjectives } from "../objectives/index.ts";
import { createStrategy, strategyWarnings } from "../strategies/index.ts";
import { evaluateAccuracy } from "./evaluate.ts";
import { createOptimizer } from "./optimizer.ts";
import type { CheckpointOptions, StageHooks } from "./stage.ts";
import type { StopSignal } from "./stop.ts";
import { runStudentStage, type StudentState, type TeacherInfo } from "./student-stage.ts";
import type { TeacherOutputSource } from "./teacher-cache.ts";
import type { Logger } from "./telemetry.ts";

export interface StudentRun {
  network: Network;
  /** Test accuracy of the kept weights (training.reportedModel). */
  accuracy: number;
  history: EpochRecord[];
  evaluations: EvaluationRecord[];
  best?: EvaluationRecord;
  steps: number;
  measuredSteps: number;
  conflictSteps: number;
  /** Steps skipped because their losses or gradients were not finite. */
  nonFiniteSteps: number;
  elapsedSeconds: number;
  strategy: string;
}

export interface StudentRunOptions {
  hooks: StageHooks;
  stop?: StopSignal;
  checkpoint?: CheckpointOptions;
  resume?: Checkpoint<StudentState>;
  fingerprint?: string;
  measureEvery?: number;
  /** The teacher's outputs from a source the caller filled (shared by runs with one teacher and dataset). */
  teacherOutputs?: TeacherOutputSource;
  log: Logger;
}

/** Trains one student against a teacher and evaluates it on the test split. */
export async function trainStudent(
  spec: TrainerSpec,
  dataset: Dataset,
  teacher: { network: Network; info?: TeacherInfo },
  opts: StudentRunOptions,
): Promise<StudentRun> {
  const { seed } = spec.training;
  const student = await buildStudent(spec, dataset);
  const dims = {
    studentFeatureDim: student.featureDim,
    teacherFeatureDim: teacher.network.featureDim,
    numClasses: dataset.numClasses,
  };
  const { objectives, variables, projector } = buildObjectives(spec.objectives, dims, seed);
  // The names come from the built objectives, never from a second reading of the spec: a list that disagreed
  // with the losses left a weight undefined and crashed prom-client ("Value is not a valid number: undefined").
  const strategy = createStrategy(
    spec.strategy,
    objectives.map((o) => o.name),
  );
  const stepsPerEpoch = Math.ceil(dataset.train.size / spec.training.batchSize);
  const optimizer = createOptimizer(spec.training, undefined, stepsPerEpoch);
  const kind = spec.student.model ?? spec.student.architecture;
  opts.log.info(`student: ${kind} (${parameterCount(student)} parameters), strategy ${strategy.name}`);
  for (const warning of strategyWarnings(spec)) opts.log.warn(warning);
  try {
    const setup = {
      student,
      teacher: teacher.network,
      objectives,
      extraVariables: variables,
      strategy,
      optimizer,
      dataset,
      epochs: spec.training.epochs,
      batchSize: spec.training.batchSize,
      seed,
      gradClipNorm: spec.strategy.gradClipNorm,
      projectorUpdate: spec.strategy.projectorUpdate,
      measureEvery: opts.measureEvery,
      teacherOutputCache: spec.teacher.outputCache,
      teacherInfo: teacher.info,
      fingerprint: opts.fingerprint,
      checkpoint: opts.checkpoint,
      stop: opts.stop,
      hooks: opts.hooks,
      log: (m: string) => opts.log.info(m),
    };
    const result = await runStudentStage(setup, opts.resume, {
      evaluationsPerEpoch: spec.training.evaluationsPerEpoch,
      keep: spec.training.reportedModel,
      teacherOutputs: opts.teacherOutputs,
    });
    const accuracy = evaluateAccuracy(student, dataset.test, 256);
    return { network: student, accuracy, ...result, strategy: strategy.name };
  } finally {
    optimizer.dispose();
    projector?.dispose();
  }
}

/** The built-in architecture, or the topology of spec.student.model with fresh weights (seeded). */
export async function buildStudent(spec: TrainerSpec, dataset: Dataset): Promise<Network> {
  const { seed } = spec.training;
  const { inputShape, numClasses } = dataset;
  if (!spec.student.model)
    return buildNetwork(spec.student, inputShape, numClasses, seed, { name: "student" });
  const { model, featureLayer } = spec.student;
  return loadStudentTopology(model, { featureLayer, seed, inputShape, numClasses });
}
