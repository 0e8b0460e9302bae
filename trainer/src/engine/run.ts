// A whole run of the trainer's spec: backend, data, teacher (trained or loaded), student with the weighting
// strategy, checkpoints and resume, telemetry (Prometheus, JSONL), and the outputs (student model, summary,
// termination message). Each step lives in its own module; this file is the script that orders them.
import { join, relative, resolve } from "node:path";
import { checkGpu, selectBackend, type BackendPreference } from "../backend/index.ts";
import { runWorkload } from "../backend/workload.ts";
import type { DataSpec, Result, TrainerSpec } from "../../../api/v1alpha1/index.ts";
import type { TrainerConfig } from "../config.ts";
import { loadDataset } from "../data/index.ts";
import { modelInputShape } from "../models/index.ts";
import { JsonlWriter } from "../telemetry/jsonl.ts";
import { TrainerMetrics } from "../telemetry/metrics.ts";
import { ProgressDocument, type RunPlan } from "../telemetry/progress.ts";
import type { LoadedDataset } from "../data/index.ts";
import {
  terminationResult,
  writeSummary,
  writeTerminationMessage,
  type RunSummary,
} from "../telemetry/summary.ts";
import { trainBaselines, type BaselineResult } from "./baselines.ts";
import { specFingerprint } from "./fingerprint.ts";
import { resumableCheckpoint, type StageHooks } from "./stage.ts";
import type { StopSignal } from "./stop.ts";
import { trainStudent } from "./student.ts";
import type { StudentState } from "./student-stage.ts";
import { measureCompression } from "./compression.ts";
import { publishStudent } from "./publish.ts";
import { buildSummary } from "./summary.ts";
import { obtainTeacher, type TeacherHandle } from "./teacher.ts";
import type { TeacherOutputSource } from "./teacher-cache.ts";
import { closeServer, serveMetrics, telemetryHooks, type Logger } from "./telemetry.ts";
import { storageContext, type StorageContext } from "../storage/client.ts";
import { CheckpointMirror } from "../storage/checkpoints.ts";
import { cacheRoot, resolveInputs, usesRemoteStorage, type InputField } from "../storage/inputs.ts";
import { checkDestination, uploadDirectory } from "../storage/upload.ts";
import type { CheckpointOptions } from "./stage.ts";

export type { Logger } from "./telemetry.ts";
export type { BaselineResult } from "./baselines.ts";

export interface RunOptions {
  config: TrainerConfig;
  /** Overrides of spec.output.path / checkpointPath (local runs). */
  outputPath?: string;
  checkpointPath?: string;
  /** Overrides the manifest's spec.runtime.backend (--backend, $MOKD_BACKEND). */
  backend?: BackendPreference;
  /** The pod asked for this many GPUs (spec.runtime.gpus, $MOKD_GPUS): see checkGpu. */
  expectGpus?: number;
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
  /** Makes the progress document served at /progress (default: from the spec and the data). */
  progress?: (plan: RunPlan) => ProgressDocument;
  /** Runs after summary.json is written and before the outputs are uploaded (the CLI writes the report). */
  beforeUpload?: (result: RunResult) => Promise<void>;
  /** Cache directory of fetched inputs (default $MOKD_CACHE_DIR, else ~/.cache/mokd-storage). */
  cacheDir?: string;
  /**
   * Where the teacher comes from (default: obtainTeacher, loaded or trained here). A study variant passes its
   * shared teacher pass: outputs read from storage, and no teacher network at all.
   */
  teacher?: (ctx: { spec: TrainerSpec; dataset: LoadedDataset; log: Logger }) => Promise<ProvidedTeacher>;
  /** Remote inputs to fetch (default: every one of the spec's). */
  inputFields?: readonly InputField[];
  /** Labels added to every metric (a study pod's mokd_study and mokd_variant). */
  metricLabels?: Record<string, string>;
  /** Fields added to summary.json (a study variant's `study`) and to the termination message. */
  summaryFields?: Record<string, unknown>;
  resultFields?: (summary: RunSummary) => Partial<Result>;
}

/** A teacher the caller provides: its handle, and where the student's steps read its outputs. */
export interface ProvidedTeacher {
  handle: TeacherHandle;
  outputs?: TeacherOutputSource;
  /** Frees the teacher (default: disposes its network's model). */
  dispose?: () => void;
}

export interface RunResult {
  summary: RunSummary;
  baselines: BaselineResult[];
  outputPath: string;
}

export async function runJob(options: RunOptions): Promise<RunResult> {
  const started = performance.now();
  const { config, log, stop } = options;
  for (const field of config.unknownFields)
    log.warn(`config: unknown field ${field} (ignored: this trainer does not know it)`);
  const outputPath = resolve(options.outputPath ?? config.spec.output.path);
  const checkpointPath = resolve(options.checkpointPath ?? config.spec.output.checkpointPath);
  const metrics = new TrainerMetrics(config.jobName, config.namespace, options.metricLabels);
  const storage = usesRemoteStorage(config.spec) ? runStorage(config, log, metrics) : undefined;
  // Remote inputs become local paths (downloaded now, or found in the cache the init container filled).
  const spec = storage
    ? await resolveInputs(config.spec, storage, options.cacheDir ?? cacheRoot(), options.inputFields)
    : config.spec;
  for (const uri of [config.spec.output.uri, config.spec.output.checkpoints.uri])
    if (uri && storage) await checkDestination(storage, uri);
  // The data first: auto's choice depends on the models' size, which depends on the input shape.
  const dataset = await loadDataset(await withImageSize(spec.data, spec));
  const workload = runWorkload(spec, dataset.inputShape, dataset.numClasses);
  const preference = options.backend ?? config.runtimeBackend ?? "auto";
  const backend = await selectBackend(preference, (m) => log.info(m), workload);
  if (options.expectGpus) checkGpu(backend, options.expectGpus, (m) => log.warn(m));
  log.info(
    `data: ${dataset.name} train ${dataset.train.size}, validation ${dataset.validation.size}, test ${dataset.test.size}`,
  );
  metrics.backend(backend.choice, backend.tensorflowVersion, backend.device);
  const plan = runPlan(spec, dataset, options.teacher !== undefined);
  const progress = options.progress?.(plan) ?? new ProgressDocument(plan);
  const server = await serveMetrics(metrics, progress, options.metricsPort ?? spec.metrics.port, log);
  const jsonl = new JsonlWriter(join(outputPath, "metrics.jsonl"));
  const hooks = telemetryHooks(metrics, progress, jsonl, options.hooks);
  try {
    // Of the spec as written: where this node's cache put the inputs does not change the run.
    const fingerprint = specFingerprint(config.spec);
    const mirror = checkpointMirror(config.spec, storage, checkpointPath);
    await mirror?.restore();
    const afterSave = checkpointPublisher(mirror, checkpointPath, progress);
    const resume = resumableCheckpoint<StudentState>(checkpointPath, "student", fingerprint, log.warn);
    const teacherContext = {
      outputPath,
      checkpointPath,
      hooks,
      stop,
      log,
      fingerprint,
      afterCheckpoint: afterSave,
    };
    const provided = options.teacher
      ? await options.teacher({ spec, dataset, log })
      : { handle: await obtainTeacher(spec, dataset, { ...teacherContext, resumed: resume?.state.teacher }) };
    const teacher = provided.handle;
    // A study's student alone has no teacher: no accuracy to show.
    if (Number.isFinite(teacher.info.accuracy)) {
      metrics.testAccuracy("teacher", teacher.info.accuracy);
      log.info(`teacher (${teacher.info.source}) test accuracy ${(teacher.info.accuracy * 100).toFixed(2)}%`);
    }

    const checkpoint = { dir: checkpointPath, keep: spec.output.keepCheckpoints, afterSave };
    const studentOptions = { hooks, stop, checkpoint, resume, fingerprint, log };
    const main = await trainStudent(spec, dataset, teacher, {
      ...studentOptions,
      measureEvery: options.measureEvery,
      ...(provided.outputs ? { teacherOutputs: provided.outputs } : {}),
    });
    metrics.testAccuracy("student", main.accuracy);
    progress.testAccuracy("student", main.accuracy);
    const published = await publishStudent(
      main.network,
      dataset.normalization,
      dataset.test,
      outputPath,
      spec.output.formats,
      log,
    );
    const modelPath = published.tfjsPath ?? published.onnx.path!;
    const baselines = options.baselines
      ? await trainBaselines(spec, dataset, teacher, log, options.hooks)
      : [];
    const job = { name: config.jobName, namespace: config.namespace };
    const summary = buildSummary({
      job,
      spec: config.spec,
      backend,
      teacher,
      student: main,
      modelPath,
      started,
    });
    summary.exports = { onnx: published.onnx };
    metrics.onnxExport(published.onnx);
    if (spec.output.compression.enabled) {
      summary.compression = await measureCompression({
        spec,
        inputShape: dataset.inputShape,
        teacher: { network: teacher.network, ...teacher.info },
        student: {
          network: main.network,
          accuracy: main.accuracy,
          tfjsPath: published.tfjsPath,
          onnxPath: published.onnx.path,
          onnxBytes: published.onnxBytes,
        },
        backend,
        log,
      });
      metrics.compression(summary.compression);
    }
    Object.assign(summary, options.summaryFields);
    writeSummary(join(outputPath, "summary.json"), summary);
    jsonl.write({ type: "summary", ...terminationResult(summary) });
    main.network.model.dispose();
    if (provided.dispose) provided.dispose();
    else teacher.network.model.dispose();
    const result = { summary, baselines, outputPath };
    await options.beforeUpload?.(result);
    // Success is reported only once every output is in the store.
    const outputUri = config.spec.output.uri;
    if (outputUri && storage) await uploadDirectory(storage, outputPath, outputUri);
    const uris = {
      ...(outputUri ? { outputUri } : {}),
      ...(mirror ? { checkpointUri: mirror.pointerUri } : {}),
    };
    if (options.terminationLog)
      writeTerminationMessage(
        { ...terminationResult(summary), ...uris, ...options.resultFields?.(summary) },
        options.terminationLog,
      );
    await linger(server !== undefined, options.metricsLingerSeconds, log);
    return result;
  } finally {
    await closeServer(server);
  }
}

/** The stages this run will train and their sizes (a configured teacher model is loaded, not trained). */
function runPlan(spec: TrainerSpec, dataset: LoadedDataset, teacherProvided: boolean): RunPlan {
  const stepsPerEpoch = Math.ceil(dataset.train.size / spec.training.batchSize);
  const trainsTeacher = !spec.teacher.model && !teacherProvided;
  return {
    ...(trainsTeacher ? { teacher: { epochs: spec.teacher.epochs, stepsPerEpoch } } : {}),
    student: { epochs: spec.training.epochs, stepsPerEpoch },
  };
}

async function linger(serving: boolean, seconds: number | undefined, log: Logger): Promise<void> {
  if (!serving || !seconds) return;
  log.info(`serving final metrics for ${seconds} s`);
  await new Promise((done) => setTimeout(done, seconds * 1000));
}

/** An image folder without data.imageSize takes the input size of the student model, else the teacher's. */
export async function withImageSize(data: DataSpec, spec: TrainerSpec): Promise<DataSpec> {
  if (data.format !== "image-folder" || data.imageSize) return data;
  const model = spec.student.model ?? spec.teacher.model;
  if (!model) return data; // the schema refuses this; loadDataset names the field
  const [height, width, channels] = await modelInputShape(model);
  return { ...data, imageSize: { height, width, channels: channels as 1 | 3 } };
}

/** The storage context of a run: its retries and bytes counted in the trainer's metrics. */
function runStorage(config: TrainerConfig, log: Logger, metrics: TrainerMetrics): StorageContext {
  return storageContext(config.spec.storage, {
    info: (m) => log.info(m),
    warn: (m) => log.warn(m),
    retried: (operation) => metrics.storageRetry(operation),
    bytes: (direction, n) => metrics.storageTransfer(direction, n),
  });
}

function checkpointMirror(
  spec: TrainerSpec,
  storage: StorageContext | undefined,
  checkpointPath: string,
): CheckpointMirror | undefined {
  const uri = spec.output.checkpoints.uri;
  return uri && storage ? new CheckpointMirror(storage, uri, checkpointPath) : undefined;
}

/** After each checkpoint: upload it (with a mirror), then show it as the last checkpoint in /progress. */
function checkpointPublisher(
  mirror: CheckpointMirror | undefined,
  checkpointPath: string,
  progress: ProgressDocument,
): NonNullable<CheckpointOptions["afterSave"]> {
  return async (path, at) => {
    const location = mirror
      ? (await mirror.publish(at, relative(checkpointPath, path)), mirror.pointerUri)
      : path;
    progress.checkpoint({ ...at, time: new Date().toISOString(), location });
  };
}
