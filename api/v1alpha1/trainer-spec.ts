// The trainer's part of a DistillationJob spec: what to distil, from what data, with which objectives and
// weighting strategy. The trainer parses exactly this; the operator embeds it in the CRD. One source of truth:
// the CRD in crds/, the TypeScript types and the trainer's config parsing are all derived from these schemas.
import { z } from "zod";
import { celRulesWithZodTwin } from "./k8s-formats.ts";
import { ArtifactLocation, S3Prefix, Sha256, StorageSpec } from "./storage.ts";

/** An object whose absent value is filled from its fields' own defaults (CRD: `default: {}`). */
export function section<T extends z.ZodRawShape>(shape: T, description: string) {
  return z
    .object(shape)
    .prefault({} as z.input<z.ZodObject<T>>)
    .describe(description);
}

const positiveInt = () => z.number().int().min(1);

export const architectureNames = ["cnn", "mlp", "resnet"] as const;

/** Fields of a built-in model, spread into the teacher and the student with their own default sizes. */
export const modelArchitectureShape = (d: { width: number; hiddenUnits: number }) => ({
  architecture: z
    .enum(architectureNames)
    .default("cnn")
    .describe(
      "Built-in architecture: `cnn` (conv blocks + dense head), `mlp` (dense layers) or `resnet` (a small CIFAR-style ResNet: a 3x3 stem, three stages of basic residual blocks with batch normalisation at `width`, 2 `width` and 4 `width` channels, the second and third downsampling by 2, global average pooling, dense head; for 32x32x3 images such as CIFAR-10/100).",
    ),
  width: positiveInt()
    .max(1024)
    .default(d.width)
    .describe(
      "Channels of the first conv block (cnn; doubled per block), units per hidden layer (mlp), or channels of the first stage (resnet; doubled per stage).",
    ),
  depth: positiveInt()
    .max(8)
    .default(2)
    .describe("Number of conv blocks (cnn), hidden layers (mlp) or residual blocks per stage (resnet)."),
  hiddenUnits: positiveInt()
    .max(8192)
    .default(d.hiddenUnits)
    .describe("Units of the dense feature layer before the classifier; the projector reads this layer."),
  dropout: z.number().min(0).max(0.9).default(0).describe("Dropout rate before the classifier."),
});
export const ModelArchitecture = z.object(modelArchitectureShape({ width: 16, hiddenUnits: 64 }));
export type ModelArchitecture = z.infer<typeof ModelArchitecture>;

/** Whether the student stage caches the frozen teacher's outputs per training sample (`teacher.outputCache`). */
export const teacherOutputCacheModes = ["auto", "off"] as const;
export type TeacherOutputCacheMode = (typeof teacherOutputCacheModes)[number];
/** Largest teacher output cache `auto` builds: samples x (classes + cached feature size) x 4 bytes. */
export const TEACHER_OUTPUT_CACHE_BUDGET_MIB = 256;

/** Formats of a loaded teacher (`teacher.format`). */
export const teacherFormats = ["tfjs", "onnx", "savedmodel"] as const;
export type TeacherFormat = (typeof teacherFormats)[number];

export const TeacherSpec = section(
  {
    model: ArtifactLocation.optional().describe(
      "Path, s3:// URI (an object or a prefix: every object under it is fetched) or http(s) URL of the teacher: a tfjs LayersModel (model.json with its weight files), an ONNX model (`*.onnx`, e.g. from `torch.onnx.export`) or a TensorFlow SavedModel directory (holding `saved_model.pb`, e.g. from Keras `model.export`); `format` says which when the path does not. When unset, the trainer first trains a teacher of `architecture` and saves it. Remote ones are downloaded (and verified) before training, into the pod's fetch volume or, locally, the cache directory.",
    ),
    sha256: Sha256.optional(),
    format: z
      .enum(teacherFormats)
      .optional()
      .describe(
        "Format of `model`: `tfjs` (LayersModel), `onnx` (run frozen by ONNX Runtime, CPU) or `savedmodel` (TensorFlow SavedModel, run by the native TensorFlow backend). Unset: inferred from the path (`*.onnx`; a directory with `saved_model.pb`; otherwise tfjs).",
      ),
    inputName: z
      .string()
      .min(1)
      .optional()
      .describe(
        "`onnx`: the graph input the images go to (default: the only input). Its layout is NHWC or NCHW (see `inputLayout`), its batch dimension dynamic or fixed (then the trainer feeds batches of that size, padding the last).",
      ),
    outputName: z
      .string()
      .min(1)
      .optional()
      .describe(
        "`onnx`: the graph output holding the logits (default: the first output); `savedmodel`: the output key of the signature (default: the first key in sorted order, as TensorFlow lists them). A softmax output is undone (its input is taken as the logits).",
      ),
    inputLayout: z
      .enum(["auto", "nhwc", "nchw"])
      .default("auto")
      .describe(
        "`onnx`: the layout of the input tensor. `auto`: from its shape against the data's [height, width, channels] (NCHW when both fit, as PyTorch exports). The trainer transposes the NHWC data to NCHW when needed.",
      ),
    signature: z
      .string()
      .min(1)
      .optional()
      .describe("`savedmodel`: the signature to run (default: `serving_default`)."),
    featureLayer: z
      .string()
      .optional()
      .describe(
        "Name of the teacher layer whose output is the feature-distillation target (loaded models only; built-in models use their feature layer). Defaults to the layer before the last. `onnx`: the name of a graph value, an output or any intermediate tensor (default: the input of the Gemm/MatMul computing the logits); `savedmodel`: an output key of the signature (default: the logits).",
      ),
    ...modelArchitectureShape({ width: 32, hiddenUnits: 128 }),
    epochs: positiveInt()
      .max(1000)
      .default(3)
      .describe("Epochs of the teacher stage (when `model` is unset)."),
    learningRate: z
      .number()
      .positive()
      .max(10)
      .default(0.001)
      .describe("Adam learning rate of the teacher stage."),
    outputCache: z
      .enum(teacherOutputCacheModes)
      .default("auto")
      .describe(
        `The student stage's use of the frozen teacher. \`auto\`: when training augmentation is off (the teacher then sees the same inputs every epoch) and the cache fits ${TEACHER_OUTPUT_CACHE_BUDGET_MIB} MiB (training samples x (classes + teacher feature size) x 4 bytes; the features only when the feature objective is enabled), one inference pass of the teacher over the training split before the first student epoch stores its logits (and features) per sample, and every step looks its batch up instead of running the teacher; otherwise the teacher runs on every batch. The trainer logs its decision. \`off\` (quote it in YAML: \`"off"\`, or YAML 1.1 reads a boolean): always run the teacher on every batch. Validation and test evaluation are unaffected.`,
      ),
  },
  "The teacher: a model to load, or a built-in architecture (default: a wider cnn) to train first.",
);
export type TeacherSpec = z.infer<typeof TeacherSpec>;

export const StudentSpec = section(
  {
    model: ArtifactLocation.optional().describe(
      "Path, s3:// URI or http(s) URL of a tfjs LayersModel (model.json; its weight files are not read) whose topology the student takes, with fresh weights initialised from `training.seed`. When unset, the student is the built-in `architecture`. Its first output must be the logits (a softmax output is undone).",
    ),
    sha256: Sha256.optional(),
    featureLayer: z
      .string()
      .optional()
      .describe(
        "Name of the student layer whose output the feature objective projects (with `model`); default: the layer before the last.",
      ),
    ...modelArchitectureShape({ width: 8, hiddenUnits: 32 }),
  },
  "The student to train: a built-in architecture, or the topology of a model of your own.",
);

export const dataFormats = ["idx", "cifar-10", "cifar-100", "image-folder"] as const;

export const DataSpec = section(
  {
    format: z
      .enum(dataFormats)
      .default("idx")
      .describe(
        "`idx`: MNIST-style IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-...; raw or .gz). `cifar-10` / `cifar-100`: the binary batch format. `image-folder`: `path`/train/<class>/*.png|jpg and `path`/test/<class>/*.png|jpg, one sub-folder per class (the same names in both, sorted by name: the class index), decoded when a batch needs them and resized to `imageSize`.",
      ),
    path: ArtifactLocation.default("/data").describe(
      "Directory holding the dataset files (in the pod: the data volume's mount point), or an s3:// prefix (every object under it is fetched, keeping the relative paths) or an http(s) URL of one file, downloaded and verified before training.",
    ),
    sha256: Sha256.optional(),
    validationSplit: z
      .number()
      .min(0)
      .max(0.5)
      .default(0.1)
      .describe("Fraction of the training set held out (seeded by `splitSeed`) for validation."),
    splitSeed: z
      .number()
      .int()
      .min(0)
      .max(2147483647)
      .default(42)
      .describe(
        "Seed of the train/validation split, separate from `training.seed`: runs with different training seeds (and the teacher they share) see the same validation images. 42 is the split every earlier release made with the default training seed.",
      ),
    maxTrainSamples: positiveInt()
      .optional()
      .describe("Use at most this many training samples (after the validation split); unset: all."),
    maxTestSamples: positiveInt()
      .optional()
      .describe("Evaluate on at most this many test samples; unset: all."),
    imageSize: z
      .object({
        height: positiveInt().max(1024).describe("Height in pixels."),
        width: positiveInt().max(1024).describe("Width in pixels."),
        // One literal with two values: `enum: [1, 3]` with a type in the CRD (a union of literals is an anyOf of
        // typed schemas, which the apiserver refuses as not structural).
        channels: z.literal([1, 3]).describe("1 (grey) or 3 (RGB); images are converted."),
      })
      .optional()
      .describe(
        "`image-folder` only: the size every image is resized to (bilinear). Unset: the input of `student.model`, else of `teacher.model`; a built-in student and teacher need it.",
      ),
    normalization: z
      .enum(["standardize", "unit"])
      .default("standardize")
      .describe("`standardize`: per-channel mean/std of the training set; `unit`: pixels scaled to [0, 1]."),
    augmentation: section(
      {
        randomCropPadding: z
          .number()
          .int()
          .min(0)
          .max(8)
          .default(0)
          .describe("Pad by this many pixels and crop back at a random offset; 0 disables."),
        horizontalFlip: z
          .boolean()
          .default(false)
          .describe("Flip training images left-right with probability 0.5."),
      },
      "Light training-time augmentation.",
    ),
  },
  "Where the data is and how it is split, normalised and augmented.",
);
export type DataSpec = z.infer<typeof DataSpec>;

/** The logit-distillation losses (`objectives.distillation.loss`). */
export const distillationLosses = ["kd", "lskd", "dkd", "dist"] as const;
export type DistillationLossName = (typeof distillationLosses)[number];

export const ObjectivesSpec = section(
  {
    task: section(
      {
        enabled: z.boolean().default(true).describe("Cross-entropy on the labels."),
        labelSmoothing: z.number().min(0).max(0.5).default(0).describe("Label smoothing of the task loss."),
      },
      "The task objective.",
    ),
    distillation: section(
      {
        enabled: z
          .boolean()
          .default(true)
          .describe("Distil the teacher's logits with the loss `loss` (one objective, whatever the loss)."),
        loss: z
          .enum(distillationLosses)
          .default("kd")
          .describe(
            "`kd`: T^2 KL(teacher || student) on softened outputs at `temperature` (Hinton et al. 2015). `lskd`: the same on per-sample z-scored logits at a base temperature (logit standardization, Sun et al. CVPR 2024; settings in `lskd`). `dkd`: decoupled KD, alpha TCKD + beta NCKD with a linear warm-up (Zhao et al. CVPR 2022; `dkd`). `dist`: inter- and intra-class Pearson relations of the softened predictions (Huang et al. NeurIPS 2022; `dist`). Every weighting strategy combines whichever loss this is with the task (and feature) objective.",
          ),
        temperature: z.number().min(0.1).max(100).default(4).describe("Softmax temperature T of `kd`."),
        lskd: section(
          {
            temperature: z
              .number()
              .min(0.1)
              .max(100)
              .default(2)
              .describe("Base temperature applied to the z-scored logits (the authors' `--base-temp`, 2)."),
          },
          "Settings of `loss: lskd` (the authors' defaults).",
        ),
        dkd: section(
          {
            alpha: z.number().min(0).max(100).default(1).describe("Weight of TCKD (target vs non-target)."),
            beta: z
              .number()
              .min(0)
              .max(100)
              .default(8)
              .describe("Weight of NCKD (among the non-target classes)."),
            temperature: z.number().min(0.1).max(100).default(4).describe("Softmax temperature T."),
            warmupEpochs: z
              .number()
              .min(0)
              .max(10000)
              .default(20)
              .describe(
                "The loss is scaled by min(epoch / warmupEpochs, 1), epoch 1-based (mdistiller's 20 for 240-epoch CIFAR runs; a 5-epoch run then never leaves the warm-up: use warmupFraction); 0 disables. A constant scale does not change what `mokd` does (it weights log-loss gradients).",
              ),
            warmupFraction: z
              .number()
              .min(0)
              .max(1)
              .optional()
              .describe(
                "When set, replaces warmupEpochs: the loss is scaled by min(p / warmupFraction, 1) per step, p = (step + 1) / the stage's steps, so the warm-up is the same share of any run length (mdistiller's 20 of 240 epochs: 0.083); 0 disables.",
              ),
            warmupSteps: z
              .number()
              .int()
              .min(0)
              .max(100000000)
              .optional()
              .describe(
                "When set, replaces warmupEpochs: the loss is scaled by min((step + 1) / warmupSteps, 1), step the 0-based optimiser step of the student stage, so the warm-up is a fixed number of updates whatever the epoch length; 0 disables. Set warmupFraction or warmupSteps, not both.",
              ),
          },
          "Settings of `loss: dkd` (mdistiller's defaults).",
        ),
        dist: section(
          {
            beta: z.number().min(0).max(100).default(1).describe("Weight of the inter-class relation term."),
            gamma: z.number().min(0).max(100).default(1).describe("Weight of the intra-class relation term."),
            temperature: z
              .number()
              .min(0.1)
              .max(100)
              .default(1)
              .describe(
                "Softmax temperature tau (1 in the paper's ImageNet setting, 4 in its CIFAR-100 one).",
              ),
            recipe: z
              .enum(["imagenet", "cifar100"])
              .optional()
              .describe(
                "A recipe of the authors' code by name, replacing beta, gamma and temperature: `imagenet` (2, 2, 1) or `cifar100` (2, 2, 4). Both are their DIST module (beta = gamma = 1) at weight 2 beside the task at weight 1, the 2 folded into beta and gamma: with `sum`, set equal task and distillation weights to reproduce it. Unset: the three fields as given (defaults 1, 1, 1: the module's).",
              ),
          },
          "Settings of `loss: dist` (the authors' defaults).",
        ),
      },
      "The logit-distillation objective.",
    ),
    feature: section(
      {
        enabled: z
          .boolean()
          .default(false)
          .describe("Match projected student features to the teacher's feature layer (mean squared error)."),
        normalizeTeacher: z
          .boolean()
          .default(true)
          .describe("Standardise teacher features per sample before matching."),
        orthogonalityWeight: z
          .number()
          .min(0)
          .max(10)
          .default(0.001)
          .describe("Weight of the projector's orthogonality regulariser ||W W^T - I||^2 (0 disables)."),
      },
      "The feature-distillation objective through the adaptation module (projector).",
    ),
  },
  "The objectives whose gradients the strategy combines.",
);
export type ObjectivesSpec = z.infer<typeof ObjectivesSpec>;

export const strategyNames = [
  "sum",
  "mokd",
  "mokd-amortized",
  "pcgrad",
  "mgda",
  "cagrad",
  "imtl",
  "sum-log",
  "mokd-normalized",
] as const;
export type StrategyName = (typeof strategyNames)[number];

/** How `mokd-amortized` (FAMO) observes the losses after a step (see `strategy.famo.observe`). */
export const mokdAmortizedObserveModes = ["same-batch", "next-batch"] as const;
export type MokdAmortizedObserveMode = (typeof mokdAmortizedObserveModes)[number];

export const StrategySpec = section(
  {
    name: z
      .enum(strategyNames)
      .default("mokd")
      .describe(
        "How objective gradients are combined each step: `sum` (fixed weights, classic KD), `mokd` (exact two-objective min-norm on log-loss gradients), `mokd-amortized` (FAMO, one backward pass), `pcgrad`, `mgda`, `cagrad`, `imtl`. Two controls that separate weighting from step size: `sum-log` (the fixed `weights` on the log-losses, sum_i w_i grad(L_i) / L_i: MoKD's scaling without its min-norm weighting) and `mokd-normalized` (exact MoKD with its coefficients pi_i / L_i rescaled to sum to 1).",
      ),
    weights: section(
      {
        task: z.number().min(0).default(0.5).describe("Weight of the task loss."),
        distillation: z.number().min(0).default(0.5).describe("Weight of the distillation loss (alpha)."),
        feature: z.number().min(0).default(1).describe("Weight of the feature loss."),
      },
      "Fixed weights of the `sum` strategy (and of the `sum-log` control, on the log-losses).",
    ),
    famo: section(
      {
        learningRate: z
          .number()
          .positive()
          .max(1)
          .default(0.025)
          .describe("Adam learning rate of the weight logits."),
        weightDecay: z.number().min(0).max(1).default(0.01).describe("Weight decay of the weight logits."),
        observe: z
          .enum(mokdAmortizedObserveModes)
          .default("same-batch")
          .describe(
            "Which post-step losses FAMO learns its weights from. `same-batch` (the reference implementation): after each update the losses are computed again on the same batch, one extra forward pass of the student per step, the teacher's outputs reused (measured 1.1-1.3x the step time of `sum`). `next-batch`: no extra forward (~1.0x of `sum`); each step's pre-step losses, on a new batch, stand in for the previous step's post-step losses, so FAMO's signal also carries the batch-to-batch difference of the losses, not only the effect of the update.",
          ),
      },
      "Settings of `mokd-amortized`: the hyperparameters of FAMO (Liu et al. 2023), the algorithm it runs.",
    ),
    projectorUpdate: z
      .enum(["weighted", "own"])
      .default("weighted")
      .describe(
        "How the adaptation module (the feature objective's projector) is updated. `weighted`: its parameters are part of the weighted step like the student's (and of the Gram matrix of gradient strategies), so its update is scaled by the feature objective's coefficient. `own`: as LibMTL treats task-specific parameters, the weighting sees the student's (shared) parameters only and the projector takes the feature loss's own unweighted gradient (single-backward strategies: the combined gradient divided by the feature coefficient; a step with coefficient 0 leaves it unchanged). Measured with exact MoKD on the few-label CNN setting (10 seeds, learning rate chosen on validation): `own` was below `weighted` on every seed (docs/benchmarks.md, 'Distillation quality: the method's claims'); `weighted` stays the default.",
      ),
    cagradC: z
      .number()
      .min(0)
      .max(10)
      .default(0.5)
      .describe("The c of CAGrad (radius of the conflict-averse ball)."),
    gradClipNorm: z
      .number()
      .positive()
      .optional()
      .describe("Clip the combined gradient to this global L2 norm; unset: no clipping."),
  },
  "The weighting strategy.",
);
export type StrategySpec = z.infer<typeof StrategySpec>;

export const TrainingSpec = section(
  {
    epochs: positiveInt().max(10000).default(5).describe("Epochs of student training."),
    batchSize: positiveInt().max(65536).default(64).describe("Mini-batch size."),
    optimizer: z
      .enum(["adam", "sgd", "momentum", "adamw"])
      .default("adam")
      .describe(
        "Optimiser of the student: `adam`, `sgd`, `momentum` (SGD with heavy-ball momentum, PyTorch's SGD with `momentum`: mdistiller's CIFAR recipe is momentum 0.9, learningRate 0.05, weightDecay 5e-4, a `step` schedule), or `adamw` (Adam with decoupled weight decay, Loshchilov & Hutter 2019; DTO-KD's recipe uses weightDecay 0.05).",
      ),
    learningRate: z
      .number()
      .positive()
      .max(10)
      .default(0.001)
      .describe(
        "Learning rate of the student (the peak of `schedule`). Tune it on validation for every method alike: automatic weighting does not replace tuning the learning rate (docs/benchmarks.md, 'Distillation quality: the method's claims').",
      ),
    momentum: z.number().min(0).max(1).default(0.9).describe("Momentum (optimizer `momentum` only)."),
    weightDecay: z
      .number()
      .min(0)
      .max(1)
      .default(0)
      .describe(
        "Weight decay of every trainable student (and projector) parameter, biases included. `adamw`: decoupled, x <- x - lr_t * weightDecay * x each step (PyTorch AdamW); `adam`, `sgd`, `momentum`: L2, weightDecay * x added to the gradient (PyTorch's weight_decay). 0: none.",
      ),
    schedule: section(
      {
        name: z
          .enum(["constant", "cosine", "step"])
          .default("constant")
          .describe(
            "`constant`; `cosine`: from learningRate down to minLearningRate at the last step (after the warm-up); `step`: learningRate x gamma^k, k the milestones (epochs) already completed.",
          ),
        warmupEpochs: z
          .number()
          .min(0)
          .max(10000)
          .default(0)
          .describe(
            "Linear warm-up over the first round(warmupEpochs x steps per epoch) steps (fractions allowed): learningRate x (t + 1) / W at step t. 0: none.",
          ),
        minLearningRate: z.number().min(0).default(0).describe("The final learning rate of `cosine`."),
        milestones: z
          .array(positiveInt().max(10000))
          .max(20)
          .default([])
          .describe(
            "Epochs after which `step` multiplies the learning rate by gamma (mdistiller: 150, 180, 210 of 240).",
          ),
        gamma: z.number().positive().max(1).default(0.1).describe("The factor of `step` at each milestone."),
      },
      "The learning-rate schedule of the student, per optimiser step.",
    ),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2147483647)
      .default(42)
      .describe("Seed of shuffling, init and augmentation."),
    targetAccuracy: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe(
        "Report the first evaluation (in epochs, fractional between epoch ends) whose validation accuracy reaches this (no early stop).",
      ),
    evaluationsPerEpoch: positiveInt()
      .max(100)
      .default(1)
      .describe(
        "Validation evaluations per epoch of the teacher and student stages, evenly spaced, the last at the epoch end.",
      ),
    reportedModel: z
      .enum(["best-validation", "last"])
      .default("best-validation")
      .describe(
        "Which weights a stage keeps, saves and is tested with: those of its best validation evaluation, or those after its last step.",
      ),
  },
  "Optimisation of the student.",
);
export type TrainingSpec = z.infer<typeof TrainingSpec>;

/** Formats the student is written in (`output.formats`). */
export const studentFormats = ["tfjs", "onnx"] as const;
export type StudentFormat = (typeof studentFormats)[number];

export const OutputSpec = section(
  {
    path: z
      .string()
      .min(1)
      .default("/output")
      .describe("Directory for the student model, summary and report."),
    checkpointPath: z
      .string()
      .min(1)
      .default("/checkpoints")
      .describe("Directory for checkpoints; a start resumes from the latest valid one."),
    keepCheckpoints: positiveInt().max(100).default(2).describe("How many checkpoints to keep."),
    formats: z
      .array(z.enum(studentFormats))
      .min(1)
      .max(2)
      .default([...studentFormats])
      .refine((formats) => new Set(formats).size === formats.length, "formats must not repeat")
      .meta({ "x-kubernetes-list-type": "set" })
      .describe(
        "Formats the student is written in: `tfjs` (LayersModel, `student/`) and `onnx` (`student.onnx`, opset 17, NHWC input like the tfjs model). Every ONNX export is checked in ONNX Runtime against the tfjs student on the test set before it is written; a failed check or an unsupported layer is logged and the tfjs model is written instead.",
      ),
    compression: section(
      {
        enabled: z
          .boolean()
          .default(true)
          .describe("Measure the compression report (teacher vs student) after training."),
        latencyRuns: positiveInt()
          .max(100000)
          .default(200)
          .describe("Timed batch-1 forwards per model and runtime (after warm-up) for the p50/p95 latency."),
        warmupRuns: z
          .number()
          .int()
          .min(0)
          .max(10000)
          .default(20)
          .describe("Untimed forwards before timing."),
        throughputBatch: positiveInt()
          .max(65536)
          .default(256)
          .describe("Batch size of the throughput measurement (samples/s)."),
        throughputRuns: positiveInt().max(10000).default(10).describe("Timed forwards at `throughputBatch`."),
      },
      "The compression report: parameters, size on disk, multiply-adds, latency and throughput of teacher and student in each runtime the job publishes.",
    ),
    uri: S3Prefix.optional().describe(
      "s3:// prefix the trainer uploads every file of `path` to (the student in each exported format, summary.json, metrics.jsonl, report.html) before it reports success; status.result.outputUri names it.",
    ),
    checkpoints: section(
      {
        uri: S3Prefix.optional().describe(
          "s3:// prefix checkpoints are uploaded to (each under `<stage>/ckpt-<step>/`, then a `<stage>/latest` pointer written last): a start on any node resumes from the checkpoint the pointer names, so an incomplete upload is never taken for one. Unset: checkpoints stay in `checkpointPath`.",
        ),
      },
      "Checkpoints in object storage.",
    ),
  },
  "Where results and checkpoints go.",
);

export const MetricsSpec = section(
  {
    port: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(9400)
      .describe("Port of the trainer's Prometheus /metrics endpoint; 0 disables it."),
  },
  "The trainer's metrics endpoint.",
);

/** Everything the trainer needs. The DistillationJob spec extends this with runtime and run policy. */
export const trainerSpecShape = {
  teacher: TeacherSpec,
  student: StudentSpec,
  data: DataSpec,
  objectives: ObjectivesSpec,
  strategy: StrategySpec,
  training: TrainingSpec,
  output: OutputSpec,
  metrics: MetricsSpec,
  storage: StorageSpec,
};

/**
 * A cross-field rule stated once: the CEL expression goes into the CRD (`x-kubernetes-validations`, so the
 * apiserver refuses bad objects) and the predicate into zod (so the trainer refuses the same config locally).
 */
export interface CrossFieldRule<T> {
  /** Omitted when the CRD states the rule by other means (e.g. list-map keys refuse duplicates). */
  cel?: string;
  message: string;
  /** Dotted path, relative to the object the rule sits on, of the field the message is about. */
  field: string;
  holds: (value: T) => boolean;
  /** A transition rule (uses oldSelf): checked by the apiserver only. */
  transition?: boolean;
}

export function withRules<S extends z.ZodType>(schema: S, rules: CrossFieldRule<z.output<S>>[]): S {
  for (const r of rules) if (r.cel !== undefined && !r.transition) celRulesWithZodTwin.add(r.cel);
  const checked = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      if (!r.transition && !r.holds(value)) {
        ctx.addIssue({ code: "custom", message: r.message, path: r.field ? r.field.split(".") : [] });
      }
    }
  });
  return checked.meta({
    "x-kubernetes-validations": rules.flatMap((r) =>
      r.cel === undefined
        ? []
        : [{ rule: r.cel, message: r.message, ...(r.field ? { fieldPath: `.${r.field}` } : {}) }],
    ),
  }) as unknown as S;
}

type TrainerFields = z.output<z.ZodObject<typeof trainerSpecShape>>;

const enabledObjectives = (s: TrainerFields) =>
  [s.objectives.task.enabled, s.objectives.distillation.enabled, s.objectives.feature.enabled].filter(Boolean)
    .length;

const multiObjectiveStrategies = strategyNames.filter((n) => n !== "sum");

/** The rules of the trainer's own fields (the DistillationJob adds those of runtime and immutability). */
export const trainerSpecRules: CrossFieldRule<TrainerFields>[] = [
  {
    cel: "self.objectives.task.enabled || self.objectives.distillation.enabled || self.objectives.feature.enabled",
    message: "at least one objective must be enabled",
    field: "objectives",
    holds: (s) => enabledObjectives(s) >= 1,
  },
  {
    cel:
      `!(self.strategy.name in ${JSON.stringify(multiObjectiveStrategies)}) || ` +
      "[self.objectives.task.enabled, self.objectives.distillation.enabled, self.objectives.feature.enabled]" +
      ".filter(e, e).size() >= 2",
    message: "strategies other than `sum` combine objectives: enable at least two",
    field: "strategy.name",
    holds: (s) => s.strategy.name === "sum" || enabledObjectives(s) >= 2,
  },
  {
    cel: "!has(self.student.featureLayer) || has(self.student.model)",
    message: "featureLayer applies to a student model: set student.model too",
    field: "student.featureLayer",
    holds: (s) => s.student.featureLayer === undefined || s.student.model !== undefined,
  },
  {
    cel: "self.data.format != 'image-folder' || has(self.data.imageSize) || has(self.student.model) || has(self.teacher.model)",
    message: "image-folder data needs data.imageSize (or a student or teacher model whose input gives it)",
    field: "data.imageSize",
    holds: (s) =>
      s.data.format !== "image-folder" ||
      s.data.imageSize !== undefined ||
      s.student.model !== undefined ||
      s.teacher.model !== undefined,
  },
  {
    cel: "!has(self.teacher.featureLayer) || has(self.teacher.model)",
    message: "featureLayer applies to a loaded teacher: set teacher.model too",
    field: "teacher.featureLayer",
    holds: (s) => s.teacher.featureLayer === undefined || s.teacher.model !== undefined,
  },
  {
    cel: "!has(self.objectives.distillation.dkd.warmupFraction) || !has(self.objectives.distillation.dkd.warmupSteps)",
    message: "DKD's warm-up is warmupFraction or warmupSteps, not both",
    field: "objectives.distillation.dkd.warmupSteps",
    holds: (s) =>
      s.objectives.distillation.dkd.warmupFraction === undefined ||
      s.objectives.distillation.dkd.warmupSteps === undefined,
  },
  {
    cel: "!has(self.teacher.format) || has(self.teacher.model)",
    message: "format applies to a loaded teacher: set teacher.model too",
    field: "teacher.format",
    holds: (s) => s.teacher.format === undefined || s.teacher.model !== undefined,
  },
];

/** What the trainer parses: the trainer's fields of a DistillationJob spec, with their rules. */
export const TrainerSpec = withRules(z.object(trainerSpecShape), trainerSpecRules);
export type TrainerSpec = z.infer<typeof TrainerSpec>;
export type TrainerSpecInput = z.input<typeof TrainerSpec>;
/** The top-level fields of a TrainerSpec, in schema order. */
export const TRAINER_SPEC_FIELDS = Object.keys(trainerSpecShape) as (keyof typeof trainerSpecShape)[];
