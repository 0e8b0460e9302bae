// A small real-data DistillationJob that the REAL trainer finishes in seconds (Fashion-MNIST subset, mlp teacher
// and student): shared by the tests that run the trainer against Prometheus and end to end.
import { join } from "node:path";

export interface TinyJobOptions {
  name: string;
  namespace: string;
  /** Output and checkpoints go under it. */
  dir: string;
  metricsPort: number;
  maxTrainSamples: number;
  epochs: number;
  /** Extra spec fields (runtime, runPolicy, ...). */
  extraSpec?: Record<string, unknown>;
}

export function tinyTrainerJob(o: TinyJobOptions) {
  return {
    apiVersion: "distillation.mokd.io/v1alpha1",
    kind: "DistillationJob",
    metadata: { name: o.name, namespace: o.namespace },
    spec: {
      data: {
        path: "/usr/share/datasets/fashion-mnist",
        maxTrainSamples: o.maxTrainSamples,
        maxTestSamples: 128,
        validationSplit: 0.01,
      },
      teacher: { architecture: "mlp", width: 32, hiddenUnits: 32, depth: 1, epochs: 1 },
      student: { architecture: "mlp", width: 16, hiddenUnits: 16, depth: 1 },
      training: { epochs: o.epochs, batchSize: 32 },
      output: {
        path: join(o.dir, "output"),
        checkpointPath: join(o.dir, "checkpoints"),
        // Exercised, not measured: the defaults time 200 + 10 forwards per model and runtime.
        compression: { latencyRuns: 5, warmupRuns: 1, throughputBatch: 16, throughputRuns: 2 },
      },
      metrics: { port: o.metricsPort },
      ...o.extraSpec,
    },
  };
}
