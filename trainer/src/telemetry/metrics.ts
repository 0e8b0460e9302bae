// Prometheus metrics of the trainer (names shared with the operator and dashboards via api/metrics.ts), served
// on /metrics for Prometheus. The operator reads live progress from the typed document next to it (/progress,
// progress.ts), not from these.
import { createServer, type RequestListener, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { TRAINER_LABELS, TrainerMetric } from "../../../api/metrics.ts";
import type { EpochRecord, StepRecord } from "../contracts.ts";
import type { CompressionReport, ModelCost } from "../engine/compression.ts";
import type { OnnxExportSummary } from "../engine/publish.ts";

export type Stage = "teacher" | "student";
export type SplitName = "train" | "validation" | "test";

export class TrainerMetrics {
  readonly registry = new Registry();
  private readonly loss: Gauge<"objective">;
  private readonly weight: Gauge<"objective">;
  private readonly stepShare: Gauge<"objective">;
  private readonly nonFinite: Counter;
  private readonly storageRetries: Counter<"operation">;
  private readonly storageBytes: Counter<"direction">;
  private readonly cosine: Gauge<"pair">;
  private readonly normRatio: Gauge<"pair">;
  private readonly conflicts: Counter;
  private readonly measured: Counter;
  private readonly steps: Counter<"stage">;
  private readonly samples: Counter<"stage">;
  private readonly accuracy: Gauge<"stage" | "split">;
  private readonly samplesPerSecond: Gauge<"stage">;
  private readonly epoch: Gauge<"stage">;
  private readonly epochsTotal: Gauge<"stage">;
  private readonly stepDuration: Histogram<"stage">;
  private readonly lastStepTime: Gauge;
  private readonly backendInfo: Gauge<"backend" | "tensorflow_version" | "device">;
  private readonly cost: {
    parameters: Gauge<"stage">;
    size: Gauge<"stage" | "format">;
    macs: Gauge<"stage">;
    latency: Gauge<"stage" | "runtime" | "quantile">;
    throughput: Gauge<"stage" | "runtime">;
    onnxVerified: Gauge;
  };

  /** `extraLabels`: a study pod's mokd_study and mokd_variant (api/v1alpha1/study-contract.ts). */
  constructor(jobName: string, namespace: string, extraLabels: Record<string, string> = {}) {
    this.registry.setDefaultLabels({
      [TRAINER_LABELS.job]: jobName,
      [TRAINER_LABELS.namespace]: namespace,
      ...extraLabels,
    });
    const registers = [this.registry];
    const gauge = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Gauge<L>({ name, help, labelNames, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Counter<L>({ name, help, labelNames, registers });
    this.loss = gauge(TrainerMetric.loss, "Latest loss of each objective.", ["objective"]);
    this.weight = gauge(
      TrainerMetric.weight,
      "Latest weight the strategy reports per objective (mokd, mokd-amortized: on log-loss gradients).",
      ["objective"],
    );
    this.stepShare = gauge(
      TrainerMetric.stepShare,
      "Share of the latest measured update per objective: |c_i g_i| / sum_j |c_j g_j|.",
      ["objective"],
    );
    this.storageRetries = counter(
      TrainerMetric.storageRetries,
      "Object-storage requests retried after a transient error.",
      ["operation"],
    );
    this.storageBytes = counter(TrainerMetric.storageBytes, "Bytes moved to and from object storage.", [
      "direction",
    ]);
    this.nonFinite = counter(
      TrainerMetric.nonFiniteSteps,
      "Student steps skipped because their losses or gradients were not finite.",
      [],
    );
    this.cosine = gauge(TrainerMetric.gradientCosine, "Cosine of two objectives' gradients.", ["pair"]);
    this.normRatio = gauge(TrainerMetric.gradientNormRatio, "Larger over smaller gradient norm.", ["pair"]);
    this.conflicts = counter(TrainerMetric.conflictSteps, "Measured steps with a pairwise cosine < 0.", []);
    this.measured = counter(
      TrainerMetric.measuredSteps,
      "Steps whose objective gradients were measured.",
      [],
    );
    this.steps = counter(TrainerMetric.steps, "Optimiser steps.", ["stage"]);
    this.samples = counter(TrainerMetric.samples, "Training samples processed.", ["stage"]);
    this.accuracy = gauge(TrainerMetric.accuracy, "Top-1 accuracy of the last evaluation.", [
      "stage",
      "split",
    ]);
    this.samplesPerSecond = gauge(TrainerMetric.samplesPerSecond, "Throughput of the last epoch.", ["stage"]);
    this.epoch = gauge(TrainerMetric.epoch, "Current epoch (1-based).", ["stage"]);
    this.epochsTotal = gauge(TrainerMetric.epochsTotal, "Epochs of the stage.", ["stage"]);
    this.stepDuration = new Histogram({
      name: TrainerMetric.stepDuration,
      help: "Wall time of one optimiser step.",
      labelNames: ["stage"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.lastStepTime = gauge(TrainerMetric.lastStepTime, "Unix time of the last completed step.", []);
    this.backendInfo = gauge(TrainerMetric.backendInfo, "1, labelled with the backend the run trains on.", [
      "backend",
      "tensorflow_version",
      "device",
    ]);
    this.cost = {
      parameters: gauge(TrainerMetric.modelParameters, "Parameters of the model.", ["stage"]),
      size: gauge(TrainerMetric.modelSizeBytes, "Bytes on disk of the model per format.", [
        "stage",
        "format",
      ]),
      macs: gauge(TrainerMetric.modelForwardMacs, "Forward multiply-adds per sample.", ["stage"]),
      latency: gauge(TrainerMetric.inferenceLatency, "Batch-1 inference latency.", [
        "stage",
        "runtime",
        "quantile",
      ]),
      throughput: gauge(TrainerMetric.inferenceThroughput, "Inference throughput at a large batch.", [
        "stage",
        "runtime",
      ]),
      onnxVerified: gauge(
        TrainerMetric.onnxExportVerified,
        "1: the ONNX student passed its parity check.",
        [],
      ),
    };
  }

  /** The compression report's figures, per stage (teacher, student) and runtime. */
  compression(report: CompressionReport): void {
    const set = (stage: Stage, cost: ModelCost) => {
      this.cost.parameters.set({ stage }, cost.parameters);
      for (const [format, bytes] of Object.entries(cost.sizeBytes))
        if (bytes !== undefined) this.cost.size.set({ stage, format }, bytes);
      if (cost.macsPerSample !== undefined) this.cost.macs.set({ stage }, cost.macsPerSample);
      for (const t of cost.timings) {
        this.cost.latency.set({ stage, runtime: t.runtime, quantile: "0.5" }, t.p50Ms / 1000);
        this.cost.latency.set({ stage, runtime: t.runtime, quantile: "0.95" }, t.p95Ms / 1000);
        this.cost.throughput.set({ stage, runtime: t.runtime }, t.samplesPerSecond);
      }
    };
    set("teacher", report.teacher);
    set("student", report.student);
  }

  onnxExport(summary: OnnxExportSummary): void {
    if (summary.status !== "not-requested") this.cost.onnxVerified.set(summary.status === "written" ? 1 : 0);
  }
  /** A storage request is retried after a transient error. */
  storageRetry(operation: string): void {
    this.storageRetries.inc({ operation });
  }

  storageTransfer(direction: "download" | "upload", bytes: number): void {
    this.storageBytes.inc({ direction }, bytes);
  }

  /** tensorflow_version is "none" on wasm and cpu (no TensorFlow library). */
  backend(backend: string, tensorflowVersion: string | undefined, device: string): void {
    this.backendInfo.reset();
    this.backendInfo.set({ backend, tensorflow_version: tensorflowVersion ?? "none", device }, 1);
  }

  startStage(stage: Stage, epochs: number): void {
    this.epochsTotal.set({ stage }, epochs);
  }

  step(record: StepRecord, batchSize: number): void {
    const stage = record.stage;
    this.steps.inc({ stage });
    this.samples.inc({ stage }, batchSize);
    this.stepDuration.observe({ stage }, record.seconds);
    this.lastStepTime.set(Date.now() / 1000);
    this.epoch.set({ stage }, record.epoch);
    if (record.nonFinite) {
      // Nothing was applied: the gauges keep the last finite step's values, the counter says what happened.
      this.nonFinite.inc();
      return;
    }
    for (const [objective, v] of Object.entries(record.losses)) this.loss.set({ objective }, v);
    for (const [objective, v] of Object.entries(record.weights)) this.weight.set({ objective }, v);
    for (const [objective, v] of Object.entries(record.stepShares ?? {}))
      this.stepShare.set({ objective }, v);
    if (record.cosines && record.normRatios) {
      // Exactly the measured step's pairs: one the record leaves out (not finite) has no stale series either.
      this.cosine.reset();
      this.normRatio.reset();
      for (const [pair, v] of Object.entries(record.cosines)) this.cosine.set({ pair }, v);
      for (const [pair, v] of Object.entries(record.normRatios)) this.normRatio.set({ pair }, v);
    }
    if (record.conflict !== undefined) this.measured.inc();
    if (record.conflict) this.conflicts.inc();
  }

  epochEnd(record: EpochRecord): void {
    const stage = record.stage;
    this.epoch.set({ stage }, record.epoch);
    this.accuracy.set({ stage, split: "train" }, record.trainAccuracy);
    this.accuracy.set({ stage, split: "validation" }, record.validationAccuracy);
    this.samplesPerSecond.set({ stage }, record.samplesPerSecond);
  }

  testAccuracy(stage: Stage, accuracy: number): void {
    this.accuracy.set({ stage, split: "test" }, accuracy);
  }

  /**
   * Serves /metrics on `port` (0: disabled, returns undefined), and `routes` beside it (GET /progress).
   * Resolves once listening.
   */
  async serve(
    port: number,
    host = "0.0.0.0",
    routes: Record<string, RequestListener> = {},
  ): Promise<Server | undefined> {
    if (port === 0) return undefined;
    const server = createServer((req, res) => {
      const path = req.url?.split("?")[0] ?? "";
      const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
      if (route) return void route(req, res);
      if (path !== "/metrics") {
        res.writeHead(404).end("not found\n");
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { "Content-Type": this.registry.contentType }).end(body),
        (error: Error) => res.writeHead(500).end(`${error.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    // Scrapes must never keep the process alive once training is done.
    server.unref();
    return server;
  }
}
