// A whole run of a DistillationJob: backend, data, teacher (trained or loaded), student with the weighting
// strategy, checkpoints and resume, telemetry (Prometheus, JSONL), and the outputs (student model, summary,
// termination message).
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Server } from "node:http";
import type { DistillationJobSpec } from "../../../api/v1alpha1/index.ts";
import { checkGpu, selectBackend, type BackendPreference, type SelectedBackend } from "../backend/index.ts";
import { runWorkload } from "../backend/workload.ts";
import {
  disposeGroups,
  latestValidCheckpoint,
  removeCheckpoints,
  type Checkpoint,
} from "../checkpoint/index.ts";
import type { TrainerConfig } from "../config.ts";
import type { Dataset, EpochRecord, Network, StepRecord } from "../contracts.ts";
import { DataError, loadDataset } from "../data/index.ts";
import { buildNetwork, loadTeacher, parameterCount, saveNetwork } from "../models/index.ts";
import { buildObjectives } from "../objectives/index.ts";
import { createStrategy } from "../strategies/index.ts";
import { JsonlWriter } from "../telemetry/jsonl.ts";
import { TrainerMetrics } from "../telemetry/metrics.ts";
import {
  terminationResult,
  writeSummary,
  writeTerminationMessage,
  type RunSummary,
} from "../telemetry/summary.ts";
import { evaluateAccuracy } from "./evaluate.ts";
import { createOptimizer } from "./optimizer.ts";
import type { StopSignal } from "./stop.ts";
import { runStudentStage, type StudentState, type TeacherInfo } from "./student-stage.ts";
import { removeTeacherCheckpoints, trainTeacher, type StageHooks } from "./teacher-stage.ts";

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

export interface RunOptions {
  config: TrainerConfig;
  /** Overrides of spec.output.path / checkpointPath (local runs). */
  outputPath?: string;
  checkpointPath?: string;
  /** Overrides spec.runtime.backend (--backend, $MOKD_BACKEND). */
  backend?: BackendPreference;
  /** The pod asked for GPUs (spec.runtime.gpus > 0): see checkGpu. */
  expectGpu?: boolean;
  /** Overrides spec.metrics.port (0 disables). */
  metricsPort?: number;
  /** Keep serving /metrics this long after a successful run, so a scraper sees the final values. */
  metricsLingerSeconds?: number;
  /** Where to write the termination message (undefined: do not write one). */
  terminationLog?: string;
  /** Also train the student alone (CE) and with `sum`, for comparison. */
  baselines?: boolean;
  measureEvery?: number;
  log: Logger;
  hooks?: StageHooks;
  stop?: StopSignal;
}

export interface BaselineResult {
  name: string;
  accuracy: number;
  bestEpoch: number;
  bestValidationAccuracy: number;
  epochs: EpochRecord[];
}

export interface RunResult {
  summary: RunSummary;
  baselines: BaselineResult[];
  outputPath: string;
}

/** Where a trained teacher is described (path, accuracy, spec fingerprint), next to the checkpoints. */
const TEACHER_INFO_FILE = "teacher-info.json";
/** Checkpoints of an unfinished teacher stage (removed once the teacher is saved). */
const TEACHER_PROGRESS_DIR = "teacher-progress";

export async function runJob(options: RunOptions): Promise<RunResult> {
  const started = performance.now();
  const { spec } = options.config;
  const outputPath = resolve(options.outputPath ?? spec.output.path);
  const checkpointPath = resolve(options.checkpointPath ?? spec.output.checkpointPath);
  const log = options.log;
  // The data first: auto's choice depends on the models' size, which depends on the input shape.
  const dataset = await loadDataset(spec.data, spec.training.seed);
  const workload = runWorkload(spec, dataset.inputShape, dataset.numClasses);
  const preference = options.backend ?? spec.runtime.backend;
  const backend = await selectBackend(preference, (m) => log.info(m), workload);
  if (options.expectGpu) checkGpu(backend, spec.runtime.gpus, (m) => log.warn(m));
  log.info(
    `data: ${dataset.name} train ${dataset.train.size}, validation ${dataset.validation.size}, test ${dataset.test.size}`,
  );
  mkdirSync(outputPath, { recursive: true });
  const metrics = new TrainerMetrics(options.config.jobName, options.config.namespace);
  metrics.backend(backend.choice, backend.tensorflowVersion, backend.device);
  const server = await serveMetrics(metrics, options.metricsPort ?? spec.metrics.port, log);
  if (server) log.info(`metrics on :${(server.address() as { port: number }).port}/metrics`);
  const jsonl = new JsonlWriter(join(outputPath, "metrics.jsonl"));
  const hooks = telemetryHooks(metrics, jsonl, options.hooks);
  try {
    const fingerprint = specFingerprint(spec);
    const resume = resumable(checkpointPath, fingerprint, log);
    const teacher = await obtainTeacher(spec, dataset, {
      outputPath,
      checkpointPath,
      hooks,
      options,
      resume: resume?.state,
      fingerprint,
    });
    metrics.testAccuracy("teacher", teacher.info.accuracy);
    log.info(`teacher (${teacher.info.source}) test accuracy ${(teacher.info.accuracy * 100).toFixed(2)}%`);

    const main = await trainStudent(spec, dataset, teacher, {
      hooks,
      stop: options.stop,
      checkpoint: { dir: checkpointPath, keep: spec.output.keepCheckpoints },
      resume,
      fingerprint,
      measureEvery: options.measureEvery,
      log,
    });
    metrics.testAccuracy("student", main.accuracy);
    const modelPath = join(outputPath, "student");
    await saveNetwork(main.network, modelPath);
    const baselines = options.baselines
      ? await trainBaselines(spec, dataset, teacher, log, options.hooks)
      : [];
    const summary = buildSummary(options, spec, backend, teacher, main, modelPath, started);
    writeSummary(join(outputPath, "summary.json"), summary);
    jsonl.write({ type: "summary", ...terminationResult(summary) });
    if (options.terminationLog) writeTerminationMessage(terminationResult(summary), options.terminationLog);
    main.network.model.dispose();
    teacher.network.model.dispose();
    if (server && options.metricsLingerSeconds) {
      log.info(`serving final metrics for ${options.metricsLingerSeconds} s`);
      await new Promise((resolve) => setTimeout(resolve, options.metricsLingerSeconds! * 1000));
    }
    return { summary, baselines, outputPath };
  } finally {
    await closeServer(server);
  }
}

function telemetryHooks(metrics: TrainerMetrics, jsonl: JsonlWriter, user: StageHooks = {}): StageHooks {
  return {
    onStageStart(stage, epochs, stepsPerEpoch) {
      metrics.startStage(stage, epochs);
      user.onStageStart?.(stage, epochs, stepsPerEpoch);
    },
    onStep(record: StepRecord, batchSize, stepInEpoch) {
      metrics.step(record, batchSize);
      jsonl.write(record);
      user.onStep?.(record, batchSize, stepInEpoch);
    },
    onEpoch(record: EpochRecord) {
      metrics.epochEnd(record);
      jsonl.write(record);
      user.onEpoch?.(record);
    },
  };
}

/** Metrics are an observer: a busy port is logged, never fatal to training. */
async function serveMetrics(metrics: TrainerMetrics, port: number, log: Logger): Promise<Server | undefined> {
  try {
    return await metrics.serve(port);
  } catch (error) {
    log.warn(`metrics endpoint disabled: cannot listen on :${port}: ${(error as Error).message}`);
    return undefined;
  }
}

async function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return;
  await new Promise<void>((done) => server.close(() => done()));
}

interface TeacherHandle {
  network: Network;
  info: TeacherInfo;
  history: EpochRecord[];
}

interface TeacherContext {
  outputPath: string;
  checkpointPath: string;
  hooks: StageHooks;
  options: RunOptions;
  resume?: StudentState;
  fingerprint: string;
}

/** Loads a teacher, wrapping any failure as bad data (exit 3): a missing or malformed model is not retryable. */
async function loadTeacherAsData(path: string, featureLayer?: string): Promise<Network> {
  try {
    return await loadTeacher(path, featureLayer);
  } catch (error) {
    if (error instanceof DataError) throw error;
    throw new DataError(path, `cannot load teacher: ${(error as Error).message}`);
  }
}

/**
 * The teacher, in order of preference: the one a checkpoint names, a configured model, one this run already
 * trained (saved with the checkpoints), or a freshly trained one.
 */
async function obtainTeacher(
  spec: DistillationJobSpec,
  dataset: Dataset,
  ctx: TeacherContext,
): Promise<TeacherHandle> {
  const log = ctx.options.log;
  const saved = ctx.resume?.teacher ?? readTeacherInfo(ctx.checkpointPath, ctx.fingerprint);
  if (saved && existsSync(join(saved.path, "model.json"))) {
    log.info(`teacher: reusing ${saved.path}`);
    return {
      network: await loadTeacherAsData(saved.path, spec.teacher.featureLayer),
      info: saved,
      history: [],
    };
  }
  if (spec.teacher.model) {
    const network = await loadTeacherAsData(spec.teacher.model, spec.teacher.featureLayer);
    const info: TeacherInfo = {
      path: spec.teacher.model,
      source: "loaded",
      accuracy: evaluateAccuracy(network, dataset.test, 256),
    };
    return { network, info, history: [] };
  }
  return trainAndSaveTeacher(spec, dataset, ctx);
}

async function trainAndSaveTeacher(
  spec: DistillationJobSpec,
  dataset: Dataset,
  ctx: TeacherContext,
): Promise<TeacherHandle> {
  const network = buildNetwork(spec.teacher, dataset.inputShape, dataset.numClasses, spec.training.seed + 1, {
    name: "teacher",
  });
  ctx.options.log.info(
    `teacher: training ${spec.teacher.architecture} (${parameterCount(network)} parameters)`,
  );
  const settings = {
    epochs: spec.teacher.epochs,
    learningRate: spec.teacher.learningRate,
    batchSize: spec.training.batchSize,
    seed: spec.training.seed + 1,
  };
  const progress = join(ctx.checkpointPath, TEACHER_PROGRESS_DIR);
  const log = ctx.options.log;
  const checkpoints = { dir: progress, fingerprint: ctx.fingerprint, log: (m: string) => log.info(m) };
  const history = await trainTeacher(network, dataset, settings, ctx.hooks, ctx.options.stop, checkpoints);
  network.model.trainable = false;
  const outputCopy = join(ctx.outputPath, "teacher");
  await saveNetwork(network, outputCopy);
  // A copy next to the checkpoints, which outlive the output directory in a pod (emptyDir output).
  const persistent = join(ctx.checkpointPath, "teacher");
  await saveNetwork(network, persistent);
  const info: TeacherInfo = {
    path: persistent,
    source: "trained",
    accuracy: evaluateAccuracy(network, dataset.test, 256),
    validationAccuracy: history.at(-1)?.validationAccuracy,
    fingerprint: ctx.fingerprint,
  };
  writeFileSync(join(ctx.checkpointPath, TEACHER_INFO_FILE), JSON.stringify(info));
  removeTeacherCheckpoints(progress);
  return { network, info, history };
}

function readTeacherInfo(checkpointPath: string, fingerprint: string): TeacherInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(join(checkpointPath, TEACHER_INFO_FILE), "utf8")) as TeacherInfo;
    return info.fingerprint === fingerprint ? info : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Identifies what a checkpoint was trained for (every field but output, metrics, runtime and run policy).
 * Fields added later are left out at the value that means the old behaviour, so checkpoints written before them
 * keep their fingerprint (a changed one would discard them on an upgrade of the trainer mid-job).
 * teacher.outputCache is left out at every value: it changes where the teacher's outputs come from, not what is
 * trained, so a run may resume with the other setting.
 */
export function specFingerprint(spec: DistillationJobSpec): string {
  const { teacher: withCache, student, data, objectives, training } = spec;
  const { outputCache: _, ...teacher } = withCache;
  const strategy = withoutDefaultFamoObserve(spec.strategy);
  const text = JSON.stringify({ teacher, student, data, objectives, strategy, training });
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

function withoutDefaultFamoObserve(strategy: DistillationJobSpec["strategy"]) {
  const { observe, ...famo } = strategy.famo;
  return observe === "same-batch" ? { ...strategy, famo } : strategy;
}

/**
 * The checkpoint to resume from. Checkpoints of a different spec (a local re-run after editing the manifest; in a
 * cluster the spec is immutable) cannot be resumed: they are removed, with a warning.
 */
function resumable(dir: string, fingerprint: string, log: Logger): Checkpoint<StudentState> | undefined {
  const latest = latestValidCheckpoint<StudentState>(dir, (m) => log.warn(m));
  if (!latest || latest.state.fingerprint === fingerprint) return latest;
  log.warn(`checkpoints in ${dir} were written for a different spec: removing them and starting fresh`);
  disposeGroups(latest.groups);
  removeCheckpoints(dir);
  return undefined;
}

export interface StudentRun {
  network: Network;
  accuracy: number;
  history: EpochRecord[];
  steps: number;
  measuredSteps: number;
  conflictSteps: number;
  elapsedSeconds: number;
  strategy: string;
}

export interface StudentRunOptions {
  hooks: StageHooks;
  stop?: StopSignal;
  checkpoint?: { dir: string; keep: number };
  resume?: Checkpoint<StudentState>;
  fingerprint?: string;
  measureEvery?: number;
  log: Logger;
}

/** Trains one student against a teacher and evaluates it on the test split. */
export async function trainStudent(
  spec: DistillationJobSpec,
  dataset: Dataset,
  teacher: TeacherHandle | { network: Network; info?: TeacherInfo },
  opts: StudentRunOptions,
): Promise<StudentRun> {
  const student = buildNetwork(spec.student, dataset.inputShape, dataset.numClasses, spec.training.seed, {
    name: "student",
  });
  const dims = {
    studentFeatureDim: student.featureDim,
    teacherFeatureDim: teacher.network.featureDim,
    numClasses: dataset.numClasses,
  };
  const { objectives, variables, projector } = buildObjectives(spec.objectives, dims, spec.training.seed);
  // The names come from the built objectives, never from a second reading of the spec: a list that disagreed
  // with the losses left a weight undefined and crashed prom-client ("Value is not a valid number: undefined").
  const names = objectives.map((o) => o.name);
  const strategy = createStrategy(spec.strategy, names);
  const optimizer = createOptimizer(spec.training);
  opts.log.info(
    `student: ${spec.student.architecture} (${parameterCount(student)} parameters), strategy ${strategy.name}`,
  );
  try {
    const result = await runStudentStage(
      {
        student,
        teacher: teacher.network,
        objectives,
        extraVariables: variables,
        strategy,
        optimizer,
        dataset,
        epochs: spec.training.epochs,
        batchSize: spec.training.batchSize,
        seed: spec.training.seed,
        gradClipNorm: spec.strategy.gradClipNorm,
        measureEvery: opts.measureEvery,
        teacherOutputCache: spec.teacher.outputCache,
        teacherInfo: teacher.info,
        fingerprint: opts.fingerprint,
        checkpoint: opts.checkpoint,
        stop: opts.stop,
        hooks: opts.hooks,
        log: (m) => opts.log.info(m),
      },
      opts.resume,
    );
    const accuracy = evaluateAccuracy(student, dataset.test, 256);
    return { network: student, accuracy, ...result, strategy: strategy.name };
  } finally {
    optimizer.dispose();
    projector?.dispose();
  }
}

/** The student alone (cross-entropy only) and classic KD (`sum`), same teacher, data and seed. */
async function trainBaselines(
  spec: DistillationJobSpec,
  dataset: Dataset,
  teacher: TeacherHandle,
  log: Logger,
  hooks: StageHooks = {},
): Promise<BaselineResult[]> {
  const alone: DistillationJobSpec = {
    ...spec,
    objectives: {
      ...spec.objectives,
      task: { ...spec.objectives.task, enabled: true },
      distillation: { ...spec.objectives.distillation, enabled: false },
      feature: { ...spec.objectives.feature, enabled: false },
    },
    strategy: { ...spec.strategy, name: "sum", weights: { ...spec.strategy.weights, task: 1 } },
  };
  const sum: DistillationJobSpec = { ...spec, strategy: { ...spec.strategy, name: "sum" } };
  const results: BaselineResult[] = [];
  for (const [name, variant] of [
    ["CE only (no teacher)", alone],
    ["sum (classic KD)", sum],
  ] as const) {
    log.info(`baseline: ${name}`);
    const run = await trainStudent(variant, dataset, teacher, { hooks, log });
    results.push({ name, accuracy: run.accuracy, ...best(run.history), epochs: run.history });
    run.network.model.dispose();
  }
  return results;
}

function best(history: EpochRecord[]): { bestEpoch: number; bestValidationAccuracy: number } {
  let bestEpoch = 0;
  let bestValidationAccuracy = -1;
  for (const r of history) {
    if (r.validationAccuracy > bestValidationAccuracy) {
      bestValidationAccuracy = r.validationAccuracy;
      bestEpoch = r.epoch;
    }
  }
  return { bestEpoch, bestValidationAccuracy: Math.max(bestValidationAccuracy, 0) };
}

/** First epoch whose validation accuracy reaches the target; null if none did. */
export function epochsToTarget(history: EpochRecord[], target: number): number | null {
  return history.find((r) => r.validationAccuracy >= target)?.epoch ?? null;
}

function buildSummary(
  options: RunOptions,
  spec: DistillationJobSpec,
  backend: SelectedBackend,
  teacher: TeacherHandle,
  student: StudentRun,
  modelPath: string,
  started: number,
): RunSummary {
  const history = student.history;
  const seconds = history.reduce((a, r) => a + r.seconds, 0);
  const samples = history.reduce((a, r) => a + r.samplesPerSecond * r.seconds, 0);
  const target = spec.training.targetAccuracy;
  const processSeconds = (performance.now() - started) / 1000;
  return {
    job: { name: options.config.jobName, namespace: options.config.namespace },
    strategy: student.strategy,
    backend: backend.choice,
    ...(backend.tensorflowVersion ? { tensorflowVersion: backend.tensorflowVersion } : {}),
    device: backend.device,
    teacher: {
      accuracy: teacher.info.accuracy,
      validationAccuracy: teacher.info.validationAccuracy,
      parameters: parameterCount(teacher.network),
      path: teacher.info.path,
      source: teacher.info.source,
    },
    student: {
      accuracy: student.accuracy,
      validationAccuracy: history.at(-1)?.validationAccuracy,
      parameters: parameterCount(student.network),
      path: modelPath,
    },
    ...best(history),
    ...(target !== undefined
      ? { targetAccuracy: target, epochsToTarget: epochsToTarget(history, target) }
      : {}),
    conflictRate: student.measuredSteps ? student.conflictSteps / student.measuredSteps : 0,
    measuredSteps: student.measuredSteps,
    steps: student.steps,
    // A resumed run counts the student time of earlier attempts too.
    durationSeconds: Math.max(processSeconds, student.elapsedSeconds),
    samplesPerSecond: seconds > 0 ? samples / seconds : 0,
    epochs: history,
  };
}
