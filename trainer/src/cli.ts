// The trainer's command line.
//   run <job.yaml>   run a DistillationJob manifest locally (progress bar, final table, HTML report)
//   train            the container entrypoint: config from $MOKD_CONFIG (or --config), paths from the spec,
//                    JSON logs, termination message
//   validate <file>  check every DistillationJob of a manifest file as the apiserver would; print every bad field
//   fetch            the pod's init container: download the spec's s3:// and http(s) inputs into $MOKD_CACHE_DIR
//                    (verified), where `train` then finds them
//   gpu-check        the backend, the device TensorFlow places ops on and a samples/s figure (docs/gpu.md)
//   study teacher|variant|report
//                    a DistillationStudy pod's stage (api/v1alpha1/study-contract.ts): config from $MOKD_CONFIG,
//                    shard or variant from $JOB_COMPLETION_INDEX; `run` on a study manifest runs them all locally
// Exit codes (api/v1alpha1/exit-codes.ts): 0 success, 1 internal error, 2 bad config, 3 bad data (dataset or
// teacher model), 4-7 object storage (access denied, not found, checksum mismatch, quota), 143 stopped by SIGTERM
// after writing a checkpoint.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import winston from "winston";
import { ConfigError, EXIT_CODE_REASONS, ExitCode } from "../../api/v1alpha1/index.ts";
import type { BackendPreference } from "./backend/index.ts";
import { configPath, loadConfig, type TrainerConfig } from "./config.ts";
import { checkFile, errorsOf, loadManifest } from "./manifest-file.ts";
import type { StudyConfig } from "./study/config.ts";
import { DataError } from "./data/errors.ts";
import type { Logger, RunOptions, RunResult } from "./engine/run.ts";
import { StopSignal, StoppedError } from "./engine/stop.ts";
import { Progress } from "./report/progress.ts";
import { compressionRows, formatCompressionTable } from "./report/compression.ts";
import { formatTable, resultRows } from "./report/table.ts";
import { StorageError } from "./storage/errors.ts";
import { terminationLogPath, TERMINATION_LOG_ENV, writeFailureMessage } from "./telemetry/summary.ts";

const USAGE = `usage:
  trainer run <job.yaml> [--job NAME] [--fresh] [--output DIR] [--checkpoints DIR]
                         [--backend auto|tensorflow-gpu|tensorflow|wasm|cpu] [--baselines] [--no-progress]
                         [--metrics-port N]    (--fresh: delete the checkpoints of an earlier run first;
                                                --job: which DistillationJob of a file with several)
  trainer train [--config FILE]        (default: $MOKD_CONFIG; also $MOKD_JOB_NAME, $MOKD_JOB_NAMESPACE,
                                        $MOKD_BACKEND, $MOKD_GPUS, $MOKD_TERMINATION_LOG, $MOKD_METRICS_LINGER_SECONDS)
  trainer fetch [--config FILE]        (download the spec's remote inputs into $MOKD_CACHE_DIR; the init container)
  trainer validate <job.yaml>
  trainer study teacher|variant|report [--config FILE] [--index N]
                                       (a DistillationStudy pod: index from $JOB_COMPLETION_INDEX; also $MOKD_STUDY)
  trainer fetch --study-stage teacher|variant|report [--config FILE]
  trainer gpu-check [--backend B] [--seconds 10] [--batch 128] [--require-gpu]
                                       (backend, TensorFlow's op placement, samples/s; docs/gpu.md)
exit codes: 0 success, 1 internal error, 2 bad config, 3 bad data, 4 storage access denied, 5 storage not found,
            6 checksum mismatch, 7 storage quota exceeded, 143 stopped by SIGTERM after a checkpoint`;

const OPTIONS = {
  output: { type: "string" },
  checkpoints: { type: "string" },
  backend: { type: "string" },
  baselines: { type: "boolean", default: false },
  progress: { type: "boolean", default: true },
  "no-progress": { type: "boolean", default: false },
  "metrics-port": { type: "string" },
  "measure-every": { type: "string" },
  config: { type: "string" },
  job: { type: "string" },
  fresh: { type: "boolean", default: false },
  "study-stage": { type: "string" },
  index: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

type Flags = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];

function readableLogger(): winston.Logger {
  return winston.createLogger({
    level: "info",
    format: winston.format.combine(
      winston.format.timestamp({ format: "HH:mm:ss" }),
      winston.format.printf((i) => `${String(i.timestamp)} ${i.level}: ${String(i.message)}`),
    ),
    transports: [new winston.transports.Console({ stderrLevels: ["error", "warn", "info", "debug"] })],
  });
}

function jsonLogger(): winston.Logger {
  return winston.createLogger({
    level: "info",
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console()],
  });
}

function intFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new ConfigError([{ field: `--${name}`, message: "expected an integer >= 0" }]);
  return n;
}

/** tfjs and the engine load only for commands that train (validate stays fast). */
async function runJob(options: RunOptions): Promise<RunResult> {
  const engine = await import("./engine/run.ts");
  return engine.runJob(options);
}

async function writeReport(result: RunResult, config: TrainerConfig): Promise<string> {
  const { renderReport } = await import("./report/html.ts");
  const path = join(result.outputPath, "report.html");
  writeFileSync(path, renderReport(result, config, join(result.outputPath, "metrics.jsonl")));
  return path;
}

async function backendFlag(value: string | undefined): Promise<BackendPreference | undefined> {
  const pref = value ?? process.env.MOKD_BACKEND;
  if (pref === undefined) return undefined;
  const { backendPreferences } = await import("./backend/index.ts");
  if (!(backendPreferences as readonly string[]).includes(pref)) {
    throw new ConfigError([
      { field: "--backend", message: `expected one of ${backendPreferences.join(", ")}` },
    ]);
  }
  return pref as BackendPreference;
}

/** Maps an error to its documented exit code and prints it. */
function exitCodeFor(error: unknown, log: Pick<Logger, "warn"> & { error(m: string): void }): number {
  if (error instanceof ConfigError) {
    log.error(error.message);
    return ExitCode.BadConfig;
  }
  if (error instanceof DataError) {
    log.error(`bad data: ${error.message}`);
    return ExitCode.BadData;
  }
  if (error instanceof StorageError) {
    log.error(`${error.reason}: ${error.message}`);
    return error.exitCode;
  }
  if (error instanceof StoppedError) {
    log.warn(error.message);
    return ExitCode.Terminated;
  }
  log.error(`internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return ExitCode.InternalError;
}

/**
 * Tells the operator why the run failed: `{"error", "reason"}` in the termination message (a stop by SIGTERM is
 * no failure and writes none). `path` undefined: no termination message (local runs).
 */
function reportFailure(code: number, error: unknown, path: string | undefined): void {
  const reason = EXIT_CODE_REASONS[code];
  if (!reason || !path) return;
  const text = error instanceof Error ? error.message : String(error);
  writeFailureMessage(reason, reason === "InternalError" ? `internal error: ${text}` : text, path);
}

/** Maps an error to its exit code, logs it and reports it in the termination message. */
function fail(error: unknown, log: Pick<Logger, "warn"> & { error(m: string): void }, path?: string): number {
  const code = exitCodeFor(error, log);
  reportFailure(code, error, path);
  return code;
}

async function commandRun(file: string | undefined, flags: Flags): Promise<number> {
  const log = readableLogger();
  try {
    if (!file)
      throw new ConfigError([{ field: "", message: "run needs a manifest: trainer run <job.yaml>" }]);
    const manifest = loadManifest(file, flags.job);
    if (manifest.kind === "study") return await commandRunStudy(manifest.config, flags, log);
    const config = manifest.config;
    const { output: outputFlag, checkpoints: checkpointsFlag } = flags;
    const outputPath =
      outputFlag ?? localPath(config.spec.output.path, DEFAULT_OUTPUT, join("out", config.jobName));
    const checkpointPath =
      checkpointsFlag ??
      localPath(config.spec.output.checkpointPath, DEFAULT_CHECKPOINTS, join(outputPath, "checkpoints"));
    const progress = flags.progress && !flags["no-progress"] ? new Progress() : undefined;
    const backend = await backendFlag(flags.backend);
    const resumed = await announceResume(checkpointPath, flags.fresh, log);
    const started = performance.now();
    const result = await withStop((stop) =>
      runJob({
        config,
        outputPath,
        checkpointPath,
        backend,
        metricsPort: intFlag(flags["metrics-port"], "metrics-port"),
        measureEvery: intFlag(flags["measure-every"], "measure-every"),
        // Locally only when asked: /dev/termination-log is a pod's file.
        terminationLog: process.env[TERMINATION_LOG_ENV],
        baselines: flags.baselines,
        log: progressAware(log, progress),
        hooks: progress,
        stop,
        beforeUpload: (r) => writeReport(r, config).then(() => undefined),
      }),
    );
    progress?.clear();
    finish(result, resumed ? (performance.now() - started) / 1000 : undefined);
    return ExitCode.Success;
  } catch (error) {
    return fail(error, log, process.env[TERMINATION_LOG_ENV]);
  }
}

const DEFAULT_OUTPUT = "/output";
const DEFAULT_CHECKPOINTS = "/checkpoints";

/** Local runs keep paths a manifest sets explicitly, but replace the pod defaults (/output, /checkpoints). */
function localPath(fromSpec: string, podDefault: string, local: string): string {
  return fromSpec === podDefault ? local : fromSpec;
}

/**
 * A local re-run of a manifest resumes from the checkpoints of the earlier run (a finished one trains nothing
 * more): said loudly, with the way out. `--fresh` deletes them first.
 */
async function announceResume(dir: string, fresh: boolean, log: winston.Logger): Promise<boolean> {
  const { listCheckpoints, removeCheckpoints } = await import("./checkpoint/index.ts");
  const found = listCheckpoints(dir).length;
  if (found === 0) return false;
  if (fresh) {
    removeCheckpoints(dir);
    log.info(`--fresh: removed ${found} checkpoint(s) of an earlier run from ${dir}`);
    return false;
  }
  log.warn(
    `RESUMING: ${dir} holds ${found} checkpoint(s) of an earlier run of this job; it continues from the newest ` +
      "(a finished run trains nothing more). Pass --fresh to start over.",
  );
  return true;
}

/** The final table and paths (the report was written before the outputs were uploaded: `beforeUpload`). */
function finish(result: RunResult, resumedSeconds?: number): void {
  const reportPath = join(result.outputPath, "report.html");
  const total = result.summary.durationSeconds.toFixed(1);
  const time =
    resumedSeconds === undefined
      ? `${total} s`
      : `${resumedSeconds.toFixed(1)} s this run (resumed; ${total} s with the earlier attempts)`;
  process.stdout.write(`\n${formatTable(resultRows(result.summary, result.baselines))}\n\n`);
  const { compression } = result.summary;
  if (compression)
    process.stdout.write(`${formatCompressionTable(compressionRows(compression, result.summary))}\n\n`);
  process.stdout.write(
    `student model: ${result.summary.student.path}\nsummary: ${join(result.outputPath, "summary.json")}\n` +
      `report: ${reportPath}\ntime: ${time}\n`,
  );
}

async function commandTrain(flags: Flags): Promise<number> {
  const log = jsonLogger();
  try {
    const config = loadConfig(configPath(flags.config));
    log.info(`config ${config.source}: job ${config.namespace}/${config.jobName}`);
    const backend = await backendFlag(flags.backend);
    const result = await withStop((stop) =>
      runJob({
        config,
        backend,
        // A pod that asked for GPUs ($MOKD_GPUS, set by the operator from spec.runtime.gpus) must train on a
        // visible one; `trainer run` (local) does not check.
        expectGpus: intFlag(process.env.MOKD_GPUS, "MOKD_GPUS"),
        metricsPort: intFlag(flags["metrics-port"], "metrics-port"),
        metricsLingerSeconds: intFlag(process.env.MOKD_METRICS_LINGER_SECONDS, "MOKD_METRICS_LINGER_SECONDS"),
        measureEvery: intFlag(flags["measure-every"], "measure-every"),
        terminationLog: terminationLogPath(),
        log,
        stop,
        beforeUpload: (r) => writeReport(r, config).then(() => undefined),
      }),
    );
    log.info(`done: student test accuracy ${result.summary.student.accuracy.toFixed(4)}`);
    return ExitCode.Success;
  } catch (error) {
    return fail(error, log, terminationLogPath());
  }
}

/** The init container: fetches the spec's remote inputs into the cache directory the trainer then reads. */
async function commandFetch(flags: Flags): Promise<number> {
  const log = jsonLogger();
  try {
    const { fetchInputs } = await import("./storage/command.ts");
    const stage = flags["study-stage"];
    if (stage !== undefined) {
      const { loadStudyConfig } = await import("./study/config.ts");
      const { studyInputFields } = await import("./study/command.ts");
      const study = loadStudyConfig(configPath(flags.config));
      await fetchInputs(study.template.spec, log, undefined, studyInputFields(stage));
      return ExitCode.Success;
    }
    const config = loadConfig(configPath(flags.config));
    await fetchInputs(config.spec, log);
    return ExitCode.Success;
  } catch (error) {
    return fail(error, log, terminationLogPath());
  }
}

/** Checks every object of the file as the apiserver would; exit 2 naming every bad field of every one. */
async function commandValidate(file: string | undefined): Promise<number> {
  try {
    if (!file)
      throw new ConfigError([{ field: "", message: "validate needs a file: trainer validate <job.yaml>" }]);
    const checked = checkFile(file);
    const error = errorsOf(file, checked);
    if (error) throw error;
    for (const { where, job, study } of checked) {
      const at = checked.length > 1 ? ` ${where}` : "";
      if (study) {
        const { studyLine } = await import("./study/command.ts");
        process.stdout.write(`${file}${at}: valid (${studyLine(study)})\n`);
        continue;
      }
      const s = job!.spec;
      process.stdout.write(
        `${file}${at}: valid (job ${job!.metadata.namespace ?? "default"}/${job!.metadata.name}: ` +
          `${s.student.architecture} student, strategy ${s.strategy.name}, ${s.training.epochs} epochs)\n`,
      );
    }
    if (checked.length > 1)
      process.stdout.write(`${checked.length} objects; \`trainer run\` needs --job NAME to pick one\n`);
    return ExitCode.Success;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return ExitCode.BadConfig;
    }
    throw error;
  }
}

/** A study pod's stage: `trainer study teacher|variant|report`. */
async function commandStudy(stage: string | undefined, flags: Flags): Promise<number> {
  const log = jsonLogger();
  try {
    const { runStudyStage } = await import("./study/command.ts");
    const backend = await backendFlag(flags.backend);
    await withStop((stop) =>
      runStudyStage(stage, {
        configFile: configPath(flags.config),
        index: flags.index,
        backend,
        expectGpus: intFlag(process.env.MOKD_GPUS, "MOKD_GPUS"),
        metricsPort: intFlag(flags["metrics-port"], "metrics-port"),
        metricsLingerSeconds: intFlag(process.env.MOKD_METRICS_LINGER_SECONDS, "MOKD_METRICS_LINGER_SECONDS"),
        terminationLog: terminationLogPath(),
        log,
        stop,
        variantReport: (r, config) => writeReport(r, config).then(() => undefined),
      }),
    );
    return ExitCode.Success;
  } catch (error) {
    return fail(error, log, terminationLogPath());
  }
}

/** `trainer run <study.yaml>`: every stage of the study in this process, then its comparison table. */
async function commandRunStudy(config: StudyConfig, flags: Flags, log: winston.Logger): Promise<number> {
  const { runStudyLocally } = await import("./study/local.ts");
  const { formatStudyTable } = await import("./report/study.ts");
  const spec = config.template.spec;
  const outputPath =
    flags.output ?? localPath(spec.output.path, DEFAULT_OUTPUT, join("out", config.template.jobName));
  const checkpointPath =
    flags.checkpoints ??
    localPath(spec.output.checkpointPath, DEFAULT_CHECKPOINTS, join(outputPath, "checkpoints"));
  const progress = flags.progress && !flags["no-progress"] ? new Progress() : undefined;
  const backend = await backendFlag(flags.backend);
  const { answer, exitCode } = await withStop((stop) =>
    runStudyLocally({
      config,
      outputPath,
      checkpointPath,
      backend,
      metricsPort: intFlag(flags["metrics-port"], "metrics-port"),
      log: progressAware(log, progress),
      hooks: progress,
      stop,
      fresh: flags.fresh,
      variantReport: (r, c) => writeReport(r, c).then(() => undefined),
      failed: (variant, error) => {
        progress?.clear();
        log.error(`variant ${variant} failed:`);
        return exitCodeFor(error, log);
      },
    }),
  );
  progress?.clear();
  process.stdout.write(`\n${formatStudyTable(answer)}\n\nreport: ${join(outputPath, "report.html")}\n`);
  return exitCode;
}

async function withStop<T>(body: (stop: StopSignal) => Promise<T>): Promise<T> {
  const stop = new StopSignal().listen();
  try {
    return await body(stop);
  } finally {
    stop.close();
  }
}

/** Log lines erase the progress bar first, so the two do not interleave on one line. */
function progressAware(log: winston.Logger, progress: Progress | undefined): Logger {
  return {
    info: (m) => (progress?.clear(), log.info(m)),
    warn: (m) => (progress?.clear(), log.warn(m)),
  };
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === "gpu-check") {
    const { gpuCheck } = await import("./diagnostics/gpu-check.ts");
    return gpuCheck(argv.slice(1));
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, allowNegative: true });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return ExitCode.BadConfig;
  }
  const [command, file] = parsed.positionals;
  if (parsed.values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return command || parsed.values.help ? ExitCode.Success : ExitCode.BadConfig;
  }
  switch (command) {
    case "run":
      return commandRun(file, parsed.values);
    case "train":
      return commandTrain(parsed.values);
    case "fetch":
      return commandFetch(parsed.values);
    case "validate":
      return commandValidate(file);
    case "study":
      return commandStudy(file, parsed.values);
    default:
      process.stderr.write(`unknown command ${command}\n${USAGE}\n`);
      return ExitCode.BadConfig;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      // Flush stdout/stderr, then exit: a still-listening metrics server or tfjs must not keep the process alive.
      process.exitCode = code;
      setTimeout(() => process.exit(code), 50).unref();
    },
    (error: unknown) => {
      process.stderr.write(`internal error: ${String(error)}\n`);
      process.exit(ExitCode.InternalError);
    },
  );
}
