import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { beforeAll, describe, expect, it } from "vitest";
import {
  clipByGlobalNorm,
  clipFactor,
  combinedNorm,
  combineGradients,
  gramMatrix,
  hasConflict,
  normRatios,
  objectiveGradients,
  pairwiseCosines,
  toNamedGradients,
  weightedLossGradients,
} from "../../../trainer/src/gradients.ts";
import { selectBackend } from "../../../trainer/src/backend/index.ts";
import { backendUnderTest } from "./backend-under-test.ts";

beforeAll(async () => {
  await selectBackend(backendUnderTest("cpu"), () => {});
});

/** A tiny two-headed model: a shared dense layer, a task head and an unused variable (no gradient). */
function tinySetup() {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [4], units: 3, activation: "tanh" }),
      tf.layers.dense({ units: 2 }),
    ],
  });
  const unused = tf.variable(tf.ones([2]), true, `unused_${Math.random()}`);
  const vars = [...model.trainableWeights.map((w) => w.read() as tf.Variable), unused];
  const x = tf.randomNormal([5, 4], 0, 1, "float32", 3);
  const target = tf.randomNormal([5, 2], 0, 1, "float32", 4);
  const losses = () => {
    const y = model.apply(x) as tf.Tensor2D;
    return [tf.losses.meanSquaredError(target, y) as tf.Scalar, tf.mean(tf.square(y)) as tf.Scalar];
  };
  return { vars, losses, unused };
}

/** The reference: one tf.grads per loss and variable, by the public single-gradient API. */
function directGradients(lossFn: () => tf.Scalar[], vars: tf.Variable[], i: number): Float32Array[] {
  return vars.map((v) => {
    const [g] = tf.engine().gradients(() => lossFn()[i]!, [v], undefined, true).grads;
    return (g ? g.dataSync() : new Float32Array(v.size)) as Float32Array;
  });
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 5);
};

describe("objectiveGradients", () => {
  for (const shareForward of [true, false]) {
    it(`matches per-loss gradients (shareForward ${shareForward}), fills zeros, frees its tape`, () => {
      const { vars, losses, unused } = tinySetup();
      const expected = [0, 1].map((i) => directGradients(losses, vars, i));
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const r = objectiveGradients(losses, vars, { shareForward });
        expect(r.grads).toHaveLength(2);
        r.grads.forEach((g, i) => g.forEach((t, v) => close(t.dataSync(), expected[i]![v]!)));
        expect(r.grads[0]!.at(-1)!.shape).toEqual(unused.shape);
        expect(r.losses[0]!.dataSync()[0]).toBeCloseTo(losses()[0]!.dataSync()[0]!, 6);
      });
      expect(tf.memory().numTensors).toBe(before);
    });
  }
});

describe("Gram matrix and combination", () => {
  it("gram, combine and norms agree with direct computation", () => {
    const { vars, losses } = tinySetup();
    tf.tidy(() => {
      const { grads } = objectiveGradients(losses, vars);
      const flat = grads.map((g) => tf.concat(g.map((t) => t.flatten())));
      const gram = gramMatrix(grads);
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 2; j++)
          expect(gram[i]![j]).toBeCloseTo(tf.sum(tf.mul(flat[i]!, flat[j]!)).dataSync()[0]!, 5);
      const c = [0.3, -1.2];
      const combined = combineGradients(grads, c);
      const direct = tf.add(tf.mul(flat[0]!, 0.3), tf.mul(flat[1]!, -1.2));
      close(tf.concat(combined.map((t) => t.flatten())).dataSync(), direct.dataSync());
      expect(combinedNorm(gram, c)).toBeCloseTo(tf.norm(direct).dataSync()[0]!, 4);
      const named = toNamedGradients(vars, combined);
      expect(Object.keys(named)).toEqual(vars.map((v) => v.name));
    });
  });

  it("weightedLossGradients: one backward of sum c_i L_i, coefficients may depend on the losses", () => {
    const { vars, losses } = tinySetup();
    tf.tidy(() => {
      const { grads } = objectiveGradients(losses, vars);
      const r = weightedLossGradients(losses, (l) => [1 / l[0]!, 2], vars);
      const l0 = r.losses[0]!.dataSync()[0]!;
      expect(r.coefficients[0]).toBeCloseTo(1 / l0, 6);
      const expected = combineGradients(grads, r.coefficients);
      r.grads.forEach((g, v) => close(g.dataSync(), expected[v]!.dataSync()));
    });
  });
});

describe("clipping and telemetry", () => {
  it("clips to the global norm and leaves small gradients alone", () => {
    tf.tidy(() => {
      const grads = [tf.tensor1d([3, 0]), tf.tensor1d([4])];
      const clipped = clipByGlobalNorm(grads, 1);
      expect(clipped.norm).toBeCloseTo(5, 6);
      close(clipped.grads[0]!.dataSync(), [0.6, 0]);
      close(clipByGlobalNorm(grads, 10).grads[1]!.dataSync(), [4]);
      expect(clipFactor(5, undefined)).toBe(1);
      expect(clipFactor(5, 2.5)).toBe(0.5);
    });
  });

  it("cosine, norm ratio and conflict from the Gram matrix", () => {
    const gram = [
      [4, -2],
      [-2, 1],
    ];
    expect(pairwiseCosines(gram, ["task", "distillation"])).toEqual({ "task:distillation": -1 });
    expect(normRatios(gram, ["task", "distillation"])).toEqual({ "task:distillation": 2 });
    expect(hasConflict(gram)).toBe(true);
    expect(
      hasConflict([
        [1, 0.5],
        [0.5, 1],
      ]),
    ).toBe(false);
    expect(
      pairwiseCosines(
        [
          [0, 0],
          [0, 1],
        ],
        ["a", "b"],
      ),
    ).toEqual({ "a:b": 0 });
  });
});

describe("Gram matrix and combination on host-memory backends (JS pass over the storage)", () => {
  it.each(["wasm", "cpu"] as const)(
    "agree with a float64 reference on %s (3 objectives)",
    async (backend) => {
      await selectBackend(backend, () => {});
      const shapes = [[7, 5], [5], [3, 3, 2, 4]];
      const data = [0, 1, 2].map((i) =>
        shapes.map((s, v) => tf.randomNormal(s, 0, 1, "float32", 10 * i + v + 1)),
      );
      const arrays = data.map((g) => g.map((t) => Array.from(t.dataSync())));
      const before = tf.memory().numTensors;
      const gram = gramMatrix(data);
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 3; j++) {
          const expected = arrays[i]!.reduce(
            (s, a, v) => s + a.reduce((t, x, e) => t + x * arrays[j]![v]![e]!, 0),
            0,
          );
          expect(gram[i]![j]).toBeCloseTo(expected, 4);
        }
      const c = [0.5, -2, 0];
      const combined = combineGradients(data, c);
      expect(tf.memory().numTensors).toBe(before + shapes.length);
      combined.forEach((t, v) => {
        expect(t.shape).toEqual(shapes[v]);
        close(
          t.dataSync(),
          arrays[0]![v]!.map((x, e) => 0.5 * x - 2 * arrays[1]![v]![e]!),
        );
      });
      tf.dispose([...combined, ...data.flat()]);
      await selectBackend(backendUnderTest("cpu"), () => {});
    },
  );
});
