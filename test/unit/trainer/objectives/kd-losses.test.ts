// The KD losses beyond vanilla KD against plain float64 implementations written here line by line
// after the authors' code: logit standardization (sunshangquan/logit-standardization-KD, KD.py), DKD
// (megvii-research/mdistiller, DKD.py: softmax, cat_mask, log, kl_div with size_average=False) and DIST
// (hunto/DIST_KD: cosine of mean-centred rows, eps 1e-8). The tfjs losses are float32: 5 digits.
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { ObjectivesSpec } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import type { ObjectiveInputs } from "../../../../trainer/src/contracts.ts";
import { loadDataset } from "../../../../trainer/src/data/index.ts";
import { StudentStep } from "../../../../trainer/src/engine/student-step.ts";
import { buildNetwork } from "../../../../trainer/src/models/index.ts";
import { createStrategy } from "../../../../trainer/src/strategies/index.ts";
import { studentParts, tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";
import {
  buildObjectives,
  DIST_DEFAULTS,
  distLoss,
  DKD_DEFAULTS,
  dkdLoss,
  dkdParts,
  dkdWarmup,
  distillationLoss,
  fingerprintedObjectives,
  LSKD_DEFAULTS,
  lskdLoss,
} from "../../../../trainer/src/objectives/index.ts";

type Matrix = number[][];
const value = (f: () => tf.Scalar) => tf.tidy(() => f().arraySync());
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const softmax = (row: number[]) => {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const logSoftmax = (row: number[]) => softmax(row).map(Math.log);
/** torch F.kl_div(input = log q, target = p, reduction "sum"): sum p (log p - log q), 0 where p = 0. */
const klDivSum = (logQ: Matrix, p: Matrix) =>
  p.reduce(
    (s, row, i) => s + row.reduce((t, pk, k) => t + (pk > 0 ? pk * (Math.log(pk) - logQ[i]![k]!) : 0), 0),
    0,
  );
const transpose = (m: Matrix) => m[0]!.map((_, c) => m.map((row) => row[c]!));

// A batch of 4 samples, 5 classes: teacher confident, student less so, one sample where they disagree.
const TEACHER: Matrix = [
  [6, 1, -1, 0.5, 2],
  [0, 5, 1, -2, 0.3],
  [1, 1.5, 4, 0, -1],
  [2, -0.5, 0.1, 3.5, 1],
];
const STUDENT: Matrix = [
  [2, 0.5, 0, 0.2, 1],
  [0.4, 1.8, 0.9, -1, 0],
  [2.2, 0.4, 1, 0.1, -0.3],
  [0.5, 0.2, -0.4, 1.1, 0.8],
];
const LABELS = [0, 1, 2, 3];

const tensors = () => ({
  s: tf.tensor2d(STUDENT),
  t: tf.tensor2d(TEACHER),
  y: tf.tensor1d(LABELS, "int32"),
});

describe("logit standardization KD (Sun et al. 2024)", () => {
  /** normalize(logit) = (logit - mean) / (1e-7 + std), torch.std unbiased. */
  const normalize = (row: number[]) => {
    const m = mean(row);
    const std = Math.sqrt(row.reduce((s, v) => s + (v - m) ** 2, 0) / (row.length - 1));
    return row.map((v) => (v - m) / (1e-7 + std));
  };
  const reference = (student: Matrix, teacher: Matrix, t: number) => {
    const logQ = student.map((r) => logSoftmax(normalize(r).map((v) => v / t)));
    const p = teacher.map((r) => softmax(normalize(r).map((v) => v / t)));
    return (klDivSum(logQ, p) / student.length) * t * t;
  };

  it("matches the authors' kd_loss with logit_stand at the base temperature 2", () => {
    expect(LSKD_DEFAULTS.temperature).toBe(2);
    const { s, t } = tensors();
    expect(value(() => lskdLoss(s, t))).toBeCloseTo(reference(STUDENT, TEACHER, 2), 5);
    expect(value(() => lskdLoss(s, t, 3))).toBeCloseTo(reference(STUDENT, TEACHER, 3), 5);
  });

  it("ignores each side's logit scale and shift (what makes it differ from KD)", () => {
    const { s, t } = tensors();
    const moved = tf.add(tf.mul(t, 7), 3) as tf.Tensor2D;
    expect(value(() => lskdLoss(s, moved))).toBeCloseTo(
      value(() => lskdLoss(s, t)),
      4,
    );
    expect(value(() => distillationLoss(s, moved, 2))).not.toBeCloseTo(
      value(() => distillationLoss(s, t, 2)),
      1,
    );
  });
});

describe("DKD (Zhao et al. 2022)", () => {
  /** mdistiller's dkd_loss, line by line (masks, cat_mask, torch.log, the -1000 target mask of NCKD). */
  const reference = (
    student: Matrix,
    teacher: Matrix,
    labels: number[],
    alpha: number,
    beta: number,
    t: number,
  ) => {
    const batch = student.length;
    const catMask = (probs: number[], target: number) => {
      const p1 = probs[target]!;
      const p2 = probs.reduce((a, v, k) => a + (k === target ? 0 : v), 0);
      return [p1, p2];
    };
    const predS = student.map((r, i) => catMask(softmax(r.map((v) => v / t)), labels[i]!));
    const predT = teacher.map((r, i) => catMask(softmax(r.map((v) => v / t)), labels[i]!));
    const tckd =
      (klDivSum(
        predS.map((r) => r.map(Math.log)),
        predT,
      ) *
        t *
        t) /
      batch;
    const masked = (r: number[], i: number) => r.map((v, k) => v / t - (k === labels[i] ? 1000 : 0));
    const predT2 = teacher.map((r, i) => softmax(masked(r, i)));
    const logPredS2 = student.map((r, i) => logSoftmax(masked(r, i)));
    const nckd = (klDivSum(logPredS2, predT2) * t * t) / batch;
    return { tckd, nckd, loss: alpha * tckd + beta * nckd };
  };

  it("has mdistiller's defaults: alpha 1, beta 8, T 4, warm-up 20 epochs", () => {
    expect(DKD_DEFAULTS).toEqual({ alpha: 1, beta: 8, temperature: 4, warmupEpochs: 20 });
  });

  it("TCKD, NCKD and the weighted loss match the reference", () => {
    const { s, t, y } = tensors();
    const ref = reference(STUDENT, TEACHER, LABELS, 1, 8, 4);
    const parts = tf.tidy(() => {
      const p = dkdParts(s, t, y, 4);
      return { tckd: p.tckd.arraySync(), nckd: p.nckd.arraySync() };
    });
    expect(parts.tckd).toBeCloseTo(ref.tckd, 5);
    expect(parts.nckd).toBeCloseTo(ref.nckd, 5);
    // Past the warm-up (epoch >= 20) the loss is alpha TCKD + beta NCKD.
    expect(value(() => dkdLoss(s, t, y, 20))).toBeCloseTo(ref.loss, 4);
    const other = reference(STUDENT, TEACHER, LABELS, 0.5, 2, 2).loss;
    const options = { alpha: 0.5, beta: 2, temperature: 2, warmupEpochs: 0 };
    expect(value(() => dkdLoss(s, t, y, 1, options))).toBeCloseTo(other, 4);
  });

  it("per sample, KD = TCKD + (1 - p_t) NCKD (the paper's decomposition, eq. 5)", () => {
    STUDENT.forEach((row, i) => {
      const [s, t] = [tf.tensor2d([row]), tf.tensor2d([TEACHER[i]!])];
      const parts = tf.tidy(() => {
        const p = dkdParts(s, t, tf.tensor1d([LABELS[i]!], "int32"), 4);
        return { tckd: p.tckd.arraySync(), nckd: p.nckd.arraySync() };
      });
      const pt = softmax(TEACHER[i]!.map((v) => v / 4))[LABELS[i]!]!;
      expect(value(() => distillationLoss(s, t, 4))).toBeCloseTo(parts.tckd + (1 - pt) * parts.nckd, 4);
    });
  });

  it("warms up linearly over the 1-based epoch", () => {
    expect([1, 10, 20, 40].map((e) => dkdWarmup(e, { warmupEpochs: 20 }))).toEqual([0.05, 0.5, 1, 1]);
    expect(dkdWarmup(1, { warmupEpochs: 0 })).toBe(1);
    const { s, t, y } = tensors();
    expect(value(() => dkdLoss(s, t, y, 5))).toBeCloseTo(0.25 * value(() => dkdLoss(s, t, y, 20)), 4);
  });

  it("stays finite where a probability underflows (the reference takes log of a sum of softmax)", () => {
    const s = tf.tensor2d([[200, -200, 0]]);
    const t = tf.tensor2d([[-200, 200, 0]]);
    const loss = value(() =>
      dkdLoss(s, t, tf.tensor1d([0], "int32"), 20, { ...DKD_DEFAULTS, temperature: 1 }),
    );
    expect(Number.isFinite(loss)).toBe(true);
  });
});

describe("DIST (Huang et al. 2022)", () => {
  const pearson = (a: number[], b: number[]) => {
    const ca = a.map((v) => v - mean(a));
    const cb = b.map((v) => v - mean(b));
    const dot = ca.reduce((s, v, i) => s + v * cb[i]!, 0);
    const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    return dot / (norm(ca) * norm(cb) + 1e-8);
  };
  const relation = (ys: Matrix, yt: Matrix) => 1 - mean(ys.map((r, i) => pearson(r, yt[i]!)));
  const reference = (student: Matrix, teacher: Matrix, beta: number, gamma: number, tau: number) => {
    const ys = student.map((r) => softmax(r.map((v) => v / tau)));
    const yt = teacher.map((r) => softmax(r.map((v) => v / tau)));
    const inter = tau ** 2 * relation(ys, yt);
    const intra = tau ** 2 * relation(transpose(ys), transpose(yt));
    return beta * inter + gamma * intra;
  };

  it("has the authors' defaults (beta 1, gamma 1, tau 1) and matches their loss", () => {
    expect(DIST_DEFAULTS).toEqual({ beta: 1, gamma: 1, temperature: 1 });
    const { s, t } = tensors();
    expect(value(() => distLoss(s, t))).toBeCloseTo(reference(STUDENT, TEACHER, 1, 1, 1), 5);
    const options = { beta: 2, gamma: 2, temperature: 4 };
    expect(value(() => distLoss(s, t, options))).toBeCloseTo(reference(STUDENT, TEACHER, 2, 2, 4), 4);
  });

  it("is 0 when the student's predictions are the teacher's", () => {
    const { t } = tensors();
    expect(value(() => distLoss(t, t))).toBeCloseTo(0, 5);
  });
});

describe("the spec selects the distillation loss", () => {
  const inputs = (): ObjectiveInputs => ({
    studentLogits: tf.tensor2d(STUDENT),
    studentFeatures: tf.zeros([4, 2]) as tf.Tensor2D,
    teacherLogits: tf.tensor2d(TEACHER),
    labels: tf.tensor1d(LABELS, "int32"),
    epoch: 20,
  });
  const distillation = (spec: unknown) => {
    const { objectives } = buildObjectives(
      ObjectivesSpec.parse(spec),
      { studentFeatureDim: 2, teacherFeatureDim: 2, numClasses: 5 },
      1,
    );
    const objective = objectives.find((o) => o.name === "distillation")!;
    return value(() => objective.loss(inputs()));
  };

  it("schema defaults are the loss files' defaults", () => {
    const d = ObjectivesSpec.parse({}).distillation;
    expect(d.loss).toBe("kd");
    expect(d.lskd).toEqual(LSKD_DEFAULTS);
    expect(d.dkd).toEqual(DKD_DEFAULTS);
    expect(d.dist).toEqual(DIST_DEFAULTS);
  });

  it("builds each loss as the one distillation objective", () => {
    const { s, t, y } = tensors();
    expect(distillation({})).toBeCloseTo(
      value(() => distillationLoss(s, t, 4)),
      5,
    );
    expect(distillation({ distillation: { loss: "lskd" } })).toBeCloseTo(
      value(() => lskdLoss(s, t, 2)),
      5,
    );
    expect(distillation({ distillation: { loss: "dkd" } })).toBeCloseTo(
      value(() => dkdLoss(s, t, y, 20)),
      4,
    );
    expect(distillation({ distillation: { loss: "dist", dist: { temperature: 4 } } })).toBeCloseTo(
      value(() => distLoss(s, t, { ...DIST_DEFAULTS, temperature: 4 })),
      5,
    );
  });

  it("a kd spec fingerprints as before the choice of loss existed", () => {
    const before = {
      task: { enabled: true, labelSmoothing: 0 },
      distillation: { enabled: true, temperature: 4 },
    };
    const kd = fingerprintedObjectives(ObjectivesSpec.parse({})) as Record<string, unknown>;
    expect(JSON.stringify(kd.distillation)).toBe(JSON.stringify(before.distillation));
    const dkd = fingerprintedObjectives(ObjectivesSpec.parse({ distillation: { loss: "dkd" } })) as {
      distillation: Record<string, unknown>;
    };
    expect(Object.keys(dkd.distillation)).toEqual(["enabled", "temperature", "loss", "dkd"]);
  });
});

describe("every strategy combines every distillation loss", () => {
  it.each(["kd", "lskd", "dkd", "dist"])(
    "%s: sum, mokd, mokd-amortized, pcgrad take finite steps",
    async (loss) => {
      await selectBackend("cpu", () => {});
      const data = writeTinyIdx(64, 16);
      for (const strategy of ["sum", "mokd", "mokd-amortized", "pcgrad"]) {
        const job = tinyJob(data, "/tmp/unused", { strategy });
        const spec = parseConfig(
          { ...job, spec: { ...job.spec, objectives: { distillation: { loss } } } },
          "test",
          {},
        ).spec;
        const dataset = await loadDataset(spec.data, 1);
        const teacher = buildNetwork(spec.teacher, dataset.inputShape, dataset.numClasses, 1);
        const { student, built, optimizer } = studentParts(spec, dataset, teacher.featureDim);
        const step = new StudentStep({
          student,
          teacher,
          objectives: built.objectives,
          extraVariables: built.variables,
          strategy: createStrategy(spec.strategy, ["task", "distillation"]),
          optimizer,
          measureEvery: 1,
        });
        const batches = [
          ...dataset.train.batches({ batchSize: 16, shuffle: false, seed: 1, epoch: 0, augment: false }),
        ];
        for (const [n, batch] of batches.slice(0, 2).entries()) {
          const outcome = step.run(batch, { step: n, epoch: 1, random: () => 0.5 });
          expect(outcome.nonFinite, `${loss} ${strategy}`).toBeFalsy();
          expect(
            outcome.losses.every((l) => Number.isFinite(l) && l >= 0),
            `${loss} ${strategy}`,
          ).toBe(true);
          expect(outcome.pairs?.stepShares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
        }
        tf.dispose([...batches.flatMap((b) => [b.xs, b.ys])]);
        optimizer.dispose();
        student.model.dispose();
        teacher.model.dispose();
      }
    },
  );
});
