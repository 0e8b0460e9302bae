// Makes examples/teachers/fashion-mnist-cnn-nchw.onnx, the ONNX teacher of examples/fashion-mnist-onnx-teacher.yaml:
// trains a small CNN on Fashion-MNIST with the trainer (the built-in cnn, width 8, 2 epochs on 12k images) and
// exports it with the trainer's own ONNX converter, with an NCHW input ([N, 1, 28, 28]) as torch.onnx.export
// writes one, and the input normalisation it was trained with recorded in the model's metadata.
//   node scripts/native-tf/install.ts && bash scripts/ensure-datasets.sh
//   ./node_modules/.bin/node examples/teachers/make-fashion-mnist-teacher.ts
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../trainer/src/config.ts";
import { runJob } from "../../trainer/src/engine/run.ts";
import { loadLayersModel, savedInputNormalization } from "../../trainer/src/models/index.ts";
import { exportOnnx } from "../../trainer/src/models/onnx/export.ts";

const OUT = join(import.meta.dirname, "fashion-mnist-cnn-nchw.onnx");
const work = mkdtempSync(join(tmpdir(), "mokd-teacher-"));
const job = {
  apiVersion: "distillation.mokd.io/v1alpha1",
  kind: "DistillationJob",
  metadata: { name: "fashion-mnist-teacher", namespace: "default" },
  spec: {
    data: { format: "idx", path: "/usr/share/datasets/fashion-mnist", maxTrainSamples: 12000 },
    teacher: { architecture: "cnn", width: 8, depth: 2, hiddenUnits: 32, epochs: 2 },
    // The student stage is not the point here: the shortest one.
    student: { architecture: "mlp", width: 8, depth: 1, hiddenUnits: 8 },
    training: { epochs: 1, batchSize: 64, learningRate: 0.002, seed: 42 },
    output: {
      path: join(work, "output"),
      checkpointPath: join(work, "checkpoints"),
      formats: ["tfjs"],
      compression: { enabled: false },
    },
    metrics: { port: 0 },
  },
};
const log = { info: (m: string) => console.log(m), warn: (m: string) => console.warn(m) };
const { summary, outputPath } = await runJob({ config: parseConfig(job, "make-teacher", {}), log });
const teacher = await loadLayersModel(join(outputPath, "teacher"));
const bytes = exportOnnx(teacher, {
  inputLayout: "nchw",
  inputNormalization: savedInputNormalization(teacher),
});
writeFileSync(OUT, bytes);
console.log(
  `wrote ${OUT}: ${bytes.byteLength} bytes, teacher test accuracy ${(summary.teacher.accuracy * 100).toFixed(2)}%`,
);
