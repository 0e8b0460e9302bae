import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { ObjectivesSpec } from "../../../../api/v1alpha1/index.ts";
import type { ObjectiveInputs } from "../../../../trainer/src/contracts.ts";
import {
  buildObjectives,
  crossEntropy,
  distillationLoss,
  orthonormalMatrix,
  Projector,
  standardizeRows,
} from "../../../../trainer/src/objectives/index.ts";

const value = (f: () => tf.Scalar) => tf.tidy(() => f().arraySync());

const logSoftmax = (row: number[]) => {
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
  return row.map((v) => v - lse);
};

const LOGITS = [
  [1, 2, 3],
  [1, 0, -2],
];

describe("task cross-entropy", () => {
  it("matches a hand computation", () => {
    const expected = -(logSoftmax(LOGITS[0]!)[2]! + logSoftmax(LOGITS[1]!)[0]!) / 2;
    expect(value(() => crossEntropy(tf.tensor2d(LOGITS), tf.tensor1d([2, 0], "int32")))).toBeCloseTo(
      expected,
      5,
    );
  });

  it("applies label smoothing", () => {
    const eps = 0.1;
    const rowLoss = (row: number[], label: number) =>
      -logSoftmax(row).reduce((s, lp, k) => s + ((k === label ? 1 - eps : 0) + eps / 3) * lp, 0);
    const expected = (rowLoss(LOGITS[0]!, 2) + rowLoss(LOGITS[1]!, 0)) / 2;
    expect(value(() => crossEntropy(tf.tensor2d(LOGITS), tf.tensor1d([2, 0], "int32"), eps))).toBeCloseTo(
      expected,
      5,
    );
  });
});

describe("distillation loss", () => {
  it("is 0 when student equals teacher", () => {
    const logits = tf.tensor2d(LOGITS);
    expect(value(() => distillationLoss(logits, logits, 4))).toBeCloseTo(0, 6);
  });

  it("matches T^2 * KL(p_teacher || q_student) averaged over the batch", () => {
    const student = [
      [0.5, -1, 2],
      [3, 0, 0],
    ];
    const t = 2;
    const kl = LOGITS.map((row, i) => {
      const logP = logSoftmax(row.map((v) => v / t));
      const logQ = logSoftmax(student[i]!.map((v) => v / t));
      return logP.reduce((s, lp, k) => s + Math.exp(lp) * (lp - logQ[k]!), 0);
    });
    const expected = (t * t * (kl[0]! + kl[1]!)) / 2;
    expect(value(() => distillationLoss(tf.tensor2d(student), tf.tensor2d(LOGITS), t))).toBeCloseTo(
      expected,
      5,
    );
  });

  it("has gradient T (q - p) / batch with respect to the student logits", () => {
    const student = tf.tensor2d([[0.5, -1, 2]]);
    const teacher = tf.tensor2d([[1, 2, 3]]);
    const t = 3;
    const grad = tf.grad((s: tf.Tensor) => distillationLoss(s as tf.Tensor2D, teacher, t))(student);
    const q = tf.softmax(student.div(t));
    const p = tf.softmax(teacher.div(t));
    const expected = q.sub(p).mul(t).dataSync();
    Array.from(grad.dataSync()).forEach((g, i) => expect(g).toBeCloseTo(expected[i]!, 5));
  });

  it("stays finite for large logits", () => {
    const student = tf.tensor2d([[1000, -1000, 0]]);
    const teacher = tf.tensor2d([[-1000, 1000, 0]]);
    const loss = value(() => distillationLoss(student, teacher, 1));
    expect(Number.isFinite(loss)).toBe(true);
    expect(loss).toBeCloseTo(2000, 0);
  });
});

describe("projector", () => {
  for (const [sd, td] of [
    [8, 32],
    [16, 16],
    [64, 12],
    [1, 5],
  ] as const) {
    it(`maps ${sd} -> ${td} features and starts orthonormal`, () => {
      const p = new Projector(sd, td, 3);
      expect(p.weight.shape).toEqual([sd, td]);
      expect(p.bias.shape).toEqual([td]);
      const out = tf.tidy(() => p.project(tf.ones([5, sd])));
      expect(out.shape).toEqual([5, td]);
      out.dispose();
      expect(value(() => p.orthogonalityPenalty())).toBeLessThan(1e-8 * 100);
      p.dispose();
    });
  }

  it("penalises a scaled W by ||(s^2 - 1) I||^2 on the smaller side", () => {
    const p = new Projector(4, 10, 1);
    p.weight.assign(p.weight.mul(2));
    // W W^T = 4 I (4x4): ||3 I||_F^2 = 9 * 4
    expect(value(() => p.orthogonalityPenalty())).toBeCloseTo(36, 3);
    const q = new Projector(10, 4, 1);
    q.weight.assign(tf.zeros([10, 4]));
    expect(value(() => q.orthogonalityPenalty())).toBeCloseTo(4, 5);
    p.dispose();
    q.dispose();
  });

  it("is seeded", () => {
    expect(orthonormalMatrix(5, 7, 9)).toEqual(orthonormalMatrix(5, 7, 9));
    expect(orthonormalMatrix(5, 7, 9)).not.toEqual(orthonormalMatrix(5, 7, 10));
  });
});

describe("buildObjectives", () => {
  const dims = { studentFeatureDim: 6, teacherFeatureDim: 6, numClasses: 3 };
  const inputs = (): ObjectiveInputs & { teacherFeatures: tf.Tensor2D } => ({
    studentLogits: tf.tensor2d(LOGITS),
    teacherLogits: tf.tensor2d([
      [0, 1, 0],
      [2, 0, 1],
    ]),
    studentFeatures: tf.randomNormal([2, 6], 0, 1, "float32", 1) as tf.Tensor2D,
    teacherFeatures: tf.randomNormal([2, 6], 3, 2, "float32", 2) as tf.Tensor2D,
    labels: tf.tensor1d([2, 0], "int32"),
  });

  it("returns the enabled objectives in order, and the projector's variables", () => {
    const spec = ObjectivesSpec.parse({ feature: { enabled: true } });
    const built = buildObjectives(spec, dims, 1);
    expect(built.objectives.map((o) => o.name)).toEqual(["task", "distillation", "feature"]);
    expect(built.variables).toHaveLength(2);
    expect(built.variables.every((v) => v.trainable)).toBe(true);
    const only = buildObjectives(ObjectivesSpec.parse({ task: { enabled: false } }), dims, 1);
    expect(only.objectives.map((o) => o.name)).toEqual(["distillation"]);
    expect(only.variables).toEqual([]);
    built.projector!.dispose();
  });

  it("feature loss is 0 when the projection equals the standardised teacher features", () => {
    const spec = ObjectivesSpec.parse({ feature: { enabled: true, orthogonalityWeight: 0.5 } });
    const built = buildObjectives(spec, dims, 1);
    built.projector!.weight.assign(tf.eye(6) as tf.Tensor2D);
    const feature = built.objectives[2]!;
    const i = inputs();
    expect(
      value(() => feature.loss({ ...i, studentFeatures: standardizeRows(i.teacherFeatures) })),
    ).toBeCloseTo(0, 4);
    // without normalisation the raw teacher features are the target
    const raw = buildObjectives(
      ObjectivesSpec.parse({ feature: { enabled: true, normalizeTeacher: false } }),
      dims,
      1,
    );
    raw.projector!.weight.assign(tf.eye(6) as tf.Tensor2D);
    expect(value(() => raw.objectives[2]!.loss({ ...i, studentFeatures: i.teacherFeatures }))).toBeCloseTo(
      0,
      4,
    );
    expect(value(() => raw.objectives[2]!.loss(i))).toBeGreaterThan(1);
    built.projector!.dispose();
    raw.projector!.dispose();
  });

  it("adds orthogonalityWeight times the penalty, and gives the projector a gradient", () => {
    const spec = ObjectivesSpec.parse({ feature: { enabled: true, orthogonalityWeight: 0.5 } });
    const built = buildObjectives(spec, dims, 1);
    const feature = built.objectives[2]!;
    const i = inputs();
    const p = built.projector!;
    const base = value(() => feature.loss(i));
    p.weight.assign(p.weight.mul(2));
    const mseScaled = value(() =>
      tf.mean(tf.squaredDifference(p.project(i.studentFeatures), standardizeRows(i.teacherFeatures))),
    );
    expect(value(() => feature.loss(i))).toBeCloseTo(mseScaled + 0.5 * 9 * 6, 3);
    expect(base).toBeGreaterThan(0);
    const { grads } = tf.variableGrads(() => feature.loss(i), built.variables);
    expect(Object.keys(grads)).toHaveLength(2);
    expect(value(() => tf.sum(tf.abs(grads[p.weight.name]!)))).toBeGreaterThan(0);
    tf.dispose(grads);
    p.dispose();
  });

  it("leaves no tensors behind inside a tidy", () => {
    const built = buildObjectives(ObjectivesSpec.parse({ feature: { enabled: true } }), dims, 1);
    const i = inputs();
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      for (const o of built.objectives) o.loss(i);
    });
    expect(tf.memory().numTensors).toBe(before);
    built.projector!.dispose();
  });
});
