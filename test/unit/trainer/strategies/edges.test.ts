// The weighting strategies at their edges: a loss at the floor, non-finite gradients, CAGrad's
// solver against an exact reference, IMTL-G on collinear gradients. References are plain float64 computations
// written here, independently of the strategies' solvers.
import { describe, expect, it } from "vitest";
import type { GradientStrategy, StepContext } from "../../../../trainer/src/contracts.ts";
import { ObjectivesSpec, StrategySpec } from "../../../../api/v1alpha1/index.ts";
import { checkManifestFile } from "../../../../api/v1alpha1/manifest.ts";
import {
  CagradStrategy,
  createStrategy,
  ImtlStrategy,
  MgdaStrategy,
  MokdStrategy,
  strategyWarnings,
} from "../../../../trainer/src/strategies/index.ts";
import { minNormSolution } from "../../../../trainer/src/strategies/min-norm.ts";
import { combine, dot, gramOf, type Vec } from "../../../fixtures/vectors.ts";

const norm = (v: Vec) => Math.sqrt(dot(v, v));
const ctx: StepContext = { step: 0, random: () => 0.5 };
const combineWith = (s: GradientStrategy, gram: number[][], losses: number[]) => s.combine(gram, losses, ctx);

describe("mokd: a loss at the floor", () => {
  it("a converged objective's float noise does not become the step (it multiplied it by ~1e12)", () => {
    // Distillation converged: loss 0 (floored to 1e-12), gradient float noise 1e-13. On the log-scaled Gram the
    // noise looked like the shortest gradient: pi ~ 1 on it, coefficient ~1e12, the task ignored.
    const gs = [
      [0, 1],
      [1e-13, 0],
    ];
    const c = combineWith(new MokdStrategy(), gramOf(gs), [0.7, 0]);
    expect(c.weights).toEqual([1, 0]);
    expect(c.coefficients).toEqual([1 / 0.7, 0]);
    const step = combine(gs, c.coefficients);
    expect(norm(step)).toBeCloseTo(norm(gs[0]!) / 0.7, 12);
  });

  it("a loss at or below the floor gets no weight even with a real gradient (no log-gradient exists)", () => {
    const gs = [
      [0, 1],
      [0.5, 0.2],
    ];
    for (const floorLoss of [0, 1e-12, -3e-8]) {
      const c = combineWith(new MokdStrategy(), gramOf(gs), [0.4, floorLoss]);
      expect(c.weights).toEqual([1, 0]);
      expect(Math.max(...c.coefficients.map(Math.abs))).toBeLessThanOrEqual(1 / 0.4);
    }
  });

  it("keeps the scale invariance of the log-loss gradients up to a gradient-norm ratio of 1e6", () => {
    const g1 = [3, 1];
    const g2 = [-1, 2];
    const base = combineWith(new MokdStrategy(), gramOf([g1, g2]), [1, 1]);
    const small = combineWith(new MokdStrategy(), gramOf([g1, g2.map((x) => 1e-5 * x)]), [1, 1e-5]);
    expect(small.weights[0]).toBeCloseTo(base.weights[0]!, 9);
    // Beyond it (|g|^2 <= 1e-12 max |g|^2 on the raw gradients) the objective counts as stationary.
    const tiny = combineWith(new MokdStrategy(), gramOf([g1, g2.map((x) => 1e-7 * x)]), [1, 1e-7]);
    expect(tiny.weights).toEqual([1, 0]);
  });
});

describe("non-finite gradients get weight 0", () => {
  const gs = [
    [1, 0.5],
    [-0.3, 1],
  ];
  const finite = gramOf(gs);
  const poisoned = (value: number) => {
    const g = finite.map((row) => [...row, value]);
    g.push([value, value, value]);
    return g;
  };

  it("mokd: NaN or Infinity on the diagonal: weight and coefficient 0 (was 0.5 and a NaN update)", () => {
    for (const bad of [NaN, Infinity]) {
      const c = combineWith(new MokdStrategy(), poisoned(bad), [1, 2, 1]);
      expect(c.weights[2]).toBe(0);
      expect(c.coefficients[2]).toBe(0);
      expect(c.coefficients.every(Number.isFinite)).toBe(true);
      // The other two are solved as if the third did not exist.
      const two = combineWith(new MokdStrategy(), finite, [1, 2]);
      expect(c.weights[0]).toBeCloseTo(two.weights[0]!, 12);
    }
  });

  it("mokd: a non-finite loss is left out like a non-finite gradient", () => {
    const c = combineWith(new MokdStrategy(), finite, [NaN, 2]);
    expect(c.weights).toEqual([0, 1]);
    expect(c.coefficients).toEqual([0, 0.5]);
  });

  it("mokd: nothing usable: no step (coefficients 0)", () => {
    const c = combineWith(
      new MokdStrategy(),
      [
        [NaN, NaN],
        [NaN, NaN],
      ],
      [1, 1],
    );
    expect(c.coefficients).toEqual([0, 0]);
  });

  it("mgda and imtl leave a NaN gradient out too", () => {
    expect(combineWith(new MgdaStrategy(), poisoned(NaN), [1, 1, 1]).coefficients[2]).toBe(0);
    expect(combineWith(new ImtlStrategy(), poisoned(NaN), [1, 1, 1]).coefficients[2]).toBe(0);
  });
});

/** F(w) = w^T G b + c' sqrt(w^T G w), the objective of CAGrad's dual, in plain float64. */
function cagradDual(gram: number[][], w: Vec, c: number): number {
  const k = w.length;
  const b = w.map(() => 1 / k);
  const q = (x: Vec, y: Vec) => x.reduce((s, xi, i) => s + xi * dot(gram[i]!, y), 0);
  const radius = c * Math.sqrt(q(b, b) + 1e-8);
  return q(w, b) + radius * Math.sqrt(Math.max(q(w, w), 0) + 1e-8);
}

/** Exact reference on the 2-simplex: a 101 x 101 grid around the best point, zoomed 10x, twelve times. */
function cagradReference(gram: number[][], c: number): number {
  let best = [1 / 3, 1 / 3, 1 / 3];
  let value = cagradDual(gram, best, c);
  for (const corner of [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ]) {
    const v = cagradDual(gram, corner, c);
    if (v < value) [best, value] = [corner, v];
  }
  for (let zoom = 0, h = 0.01; zoom < 12; zoom++, h /= 10) {
    const [c0, c1] = [best[0]!, best[1]!];
    for (let i = -50; i <= 50; i++)
      for (let j = -50; j <= 50; j++) {
        const w = [c0 + i * h, c1 + j * h, 1 - c0 - i * h - c1 - j * h];
        if (w.some((x) => x < 0)) continue;
        const v = cagradDual(gram, w, c);
        if (v < value) [best, value] = [w, v];
      }
  }
  return value;
}

/** The simplex weights w behind CAGrad's coefficients (b + lambda w) / (1 + c^2). */
function cagradWeights(coefficients: number[], c: number): Vec {
  const k = coefficients.length;
  const x = coefficients.map((v) => v * (1 + c * c) - 1 / k);
  const s = x.reduce((a, b) => a + b, 0);
  return x.map((v) => v / s);
}

describe("cagrad with three objectives: the exact optimum of its sub-problem", () => {
  const c = 0.5;

  it("matches the exact reference where Frank-Wolfe stopped short on a face", () => {
    // Frank-Wolfe (100 iterations, golden-section line search) ended 16% of F(uniform) above the optimum here.
    const gs = [
      [-0.810040207491275, -0.3457673058592562, 0.688890423480836],
      [0.18134744240965106, -0.09353542099405798, -0.04982064713249945],
      [0.6643836440818307, 0.2959060833304683, -0.7064574648190558],
    ];
    const gram = gramOf(gs);
    const w = cagradWeights(combineWith(new CagradStrategy(c), gram, [1, 1, 1]).coefficients, c);
    const scale = Math.abs(cagradDual(gram, [1 / 3, 1 / 3, 1 / 3], c));
    expect(cagradDual(gram, w, c) - cagradReference(gram, c)).toBeLessThan(1e-12 * scale);
  });

  it("matches it on 12 random Gram matrices", () => {
    let seed = 11;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
    for (let n = 0; n < 12; n++) {
      const gs = [0, 1, 2].map(() => [rnd(), rnd(), rnd()]);
      const gram = gramOf(gs);
      const w = cagradWeights(combineWith(new CagradStrategy(c), gram, [1, 1, 1]).coefficients, c);
      const scale = Math.abs(cagradDual(gram, [1 / 3, 1 / 3, 1 / 3], c)) + 1e-9;
      expect(cagradDual(gram, w, c) - cagradReference(gram, c)).toBeLessThan(1e-10 * scale);
    }
  });
});

describe("imtl with collinear gradients", () => {
  const unitProjections = (gs: Vec[], coefficients: number[]) => {
    const d = combine(gs, coefficients);
    return gs.map((g) => dot(d, g) / norm(g));
  };

  it("K = 3 with two parallel gradients: equal projections on all three (uniform weights broke it)", () => {
    const gs = [
      [1, 1, 0],
      [2, 2, 0],
      [0, 1, 1],
    ];
    const c = combineWith(new ImtlStrategy(), gramOf(gs), [1, 1, 1]);
    const p = unitProjections(gs, c.coefficients);
    expect(p[0]).toBeCloseTo(p[1]!, 12);
    expect(p[0]).toBeCloseTo(p[2]!, 12);
    expect(c.coefficients.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    // The uniform fallback does not satisfy the condition here.
    const u = unitProjections(gs, [1 / 3, 1 / 3, 1 / 3]);
    expect(Math.abs(u[0]! - u[2]!)).toBeGreaterThan(0.1);
  });

  it("K = 3 all parallel: any weights qualify; the minimum-norm one is uniform", () => {
    const gs = [
      [1, 2],
      [2, 4],
      [0.5, 1],
    ];
    const c = combineWith(new ImtlStrategy(), gramOf(gs), [1, 1, 1]);
    c.coefficients.forEach((x) => expect(x).toBeCloseTo(1 / 3, 12));
  });

  it("K = 3 with two opposite gradients: equal projections", () => {
    const gs = [
      [1, 0, 0],
      [-2, 0, 0],
      [0.3, 1, 0],
    ];
    const c = combineWith(new ImtlStrategy(), gramOf(gs), [1, 1, 1]);
    const p = unitProjections(gs, c.coefficients);
    expect(p[0]).toBeCloseTo(p[1]!, 12);
    expect(p[0]).toBeCloseTo(p[2]!, 12);
  });
});

describe("minNormSolution", () => {
  it("drops dependent rows and returns the shortest solution", () => {
    // x + y + z = 1 (twice) and x = y: the shortest solution is (1/3, 1/3, 1/3).
    const x = minNormSolution(
      [
        [1, 1, 1],
        [2, 2, 2],
        [1, -1, 0],
      ],
      [1, 2, 0],
    );
    x.forEach((v) => expect(v).toBeCloseTo(1 / 3, 12));
  });
});

describe("mokd's minimum weight (the remedies bench's option; no longer a spec field) and the run-start warnings", () => {
  const gs = [
    [1, 1],
    [2, 2],
  ];

  it("mixes the exact weights with uniform ones: a corner gets m, not 0", () => {
    expect(combineWith(new MokdStrategy(), gramOf(gs), [1, 1]).weights).toEqual([1, 0]);
    const mixed = combineWith(new MokdStrategy({ minWeight: 0.1 }), gramOf(gs), [1, 1]);
    expect(mixed.weights[0]).toBeCloseTo(0.9, 12);
    expect(mixed.weights[1]).toBeCloseTo(0.1, 12);
    expect(mixed.coefficients[1]).toBeCloseTo(0.1, 12);
  });

  it("is not a spec field: the study did not support it (issue 16), so a manifest naming it is refused", () => {
    const [checked] = checkManifestFile(
      "apiVersion: distillation.mokd.io/v1alpha1\nkind: DistillationJob\nmetadata: {name: a}\n" +
        "spec:\n  strategy: {name: mokd, mokdMinWeight: 0.1}\n",
    );
    expect(checked!.errors).toContainEqual({
      field: "spec.strategy.mokdMinWeight",
      message: "unknown field",
    });
    const exact = createStrategy(StrategySpec.parse({ name: "mokd" }), [
      "task",
      "distillation",
    ]) as GradientStrategy;
    expect(combineWith(exact, gramOf(gs), [1, 1]).weights).toEqual([1, 0]);
  });

  it("warns where exact MoKD's corner behaviours apply, and only there", () => {
    const warnings = (strategy: unknown, objectives: unknown) =>
      strategyWarnings({
        strategy: StrategySpec.parse(strategy),
        objectives: ObjectivesSpec.parse(objectives),
      });
    expect(warnings({ name: "mokd" }, {})).toHaveLength(1);
    expect(warnings({ name: "mokd" }, {})[0]).toMatch(/all weight goes to distillation/);
    const withFeature = warnings({ name: "mokd" }, { feature: { enabled: true } });
    expect(withFeature).toHaveLength(2);
    expect(withFeature[0]).toMatch(/feature loss/);
    expect(warnings({ name: "sum" }, { feature: { enabled: true } })).toEqual([]);
    expect(warnings({ name: "mokd-amortized" }, {})).toEqual([]);
    const famoFeature = warnings({ name: "mokd-amortized" }, { feature: { enabled: true } });
    expect(famoFeature).toHaveLength(1);
    expect(famoFeature[0]).toMatch(/FAMO\) with the feature objective.*1\.44 points below/);
    expect(warnings({ name: "mokd" }, { task: { enabled: false } })).toEqual([]);
  });
});
