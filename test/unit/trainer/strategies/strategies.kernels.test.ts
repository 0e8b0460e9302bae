import { describe, expect, it } from "vitest";
import { StrategySpec, strategyNames } from "../../../../api/v1alpha1/index.ts";
import type { GradientStrategy, LossStrategy, StepContext } from "../../../../trainer/src/contracts.ts";
import {
  CagradStrategy,
  createStrategy,
  MokdAmortizedStrategy,
  ImtlStrategy,
  MgdaStrategy,
  MokdStrategy,
  PcgradStrategy,
  SumStrategy,
} from "../../../../trainer/src/strategies/index.ts";
import { minNormSimplex, solveLinear } from "../../../../trainer/src/strategies/min-norm.ts";
import { combine, dot, gramOf, type Vec } from "../../../fixtures/vectors.ts";

const ctx = (seed = 1): StepContext => {
  let state = seed;
  return { step: 0, random: () => ((state = (state * 16807) % 2147483647) - 1) / 2147483646 };
};
const run = (s: GradientStrategy, gs: Vec[], losses = gs.map(() => 1)) =>
  s.combine(gramOf(gs), losses, ctx());

describe("mokd (exact)", () => {
  const mokd = new MokdStrategy();

  it("orthogonal gradients of equal log-norm: equal weights", () => {
    const c = run(mokd, [
      [2, 0],
      [0, 2],
    ]);
    expect(c.weights[0]).toBeCloseTo(0.5, 12);
    expect(c.coefficients[0]).toBeCloseTo(0.5, 12);
  });

  it("works in log-loss space: scaling a loss (and its gradient) does not change pi", () => {
    const g1 = [3, 1];
    const g2 = [-1, 2];
    const base = run(mokd, [g1, g2], [1, 1]);
    const scaled = run(mokd, [g1, g2.map((x) => 9 * x)], [1, 9]);
    expect(scaled.weights[0]).toBeCloseTo(base.weights[0]!, 12);
    expect(scaled.coefficients[1]).toBeCloseTo(base.coefficients[1]! / 9, 12);
  });

  it("direction has equal inner product with both log-loss gradients when 0 < pi < 1", () => {
    const raw = [
      [3, 1, 0.5],
      [-1, 2, 1],
    ];
    const losses = [2, 0.5];
    const c = run(mokd, raw, losses);
    expect(c.weights[0]).toBeGreaterThan(0);
    expect(c.weights[0]).toBeLessThan(1);
    const d = combine(raw, c.coefficients);
    const logGrads = raw.map((g, i) => g.map((x) => x / losses[i]!));
    expect(dot(d, logGrads[0]!)).toBeCloseTo(dot(d, logGrads[1]!), 10);
    expect(c.weights[0]! + c.weights[1]!).toBeCloseTo(1, 12);
  });

  it("opposite gradients: the min-norm point is zero, weighted by the other's norm", () => {
    const c = run(mokd, [
      [1, 0],
      [-3, 0],
    ]);
    expect(c.weights[0]).toBeCloseTo(0.75, 12);
    expect(
      combine(
        [
          [1, 0],
          [-3, 0],
        ],
        c.coefficients,
      )[0],
    ).toBeCloseTo(0, 12);
  });

  it("same direction, different norms: all weight on the shorter (g12 >= g11)", () => {
    const c = run(mokd, [
      [1, 1],
      [2, 2],
    ]);
    expect(c.weights).toEqual([1, 0]);
  });

  it("equal gradients: 0.5 / 0.5", () => {
    expect(
      run(mokd, [
        [1, 2],
        [1, 2],
      ]).weights,
    ).toEqual([0.5, 0.5]);
  });

  it("a zero gradient gets no weight (no stall); both zero: 0.5 / 0.5", () => {
    expect(
      run(mokd, [
        [0, 0],
        [1, 2],
      ]).weights,
    ).toEqual([0, 1]);
    expect(
      run(mokd, [
        [1, 2],
        [0, 0],
      ]).weights,
    ).toEqual([1, 0]);
    expect(
      run(mokd, [
        [0, 0],
        [0, 0],
      ]).weights,
    ).toEqual([0.5, 0.5]);
  });

  it("three objectives: Frank-Wolfe reaches the min-norm point (equal inner products when interior)", () => {
    const gs = [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 2],
    ];
    const c = run(mokd, gs);
    const d = combine(gs, c.coefficients);
    const products = gs.map((g) => dot(d, g));
    expect(products[0]).toBeCloseTo(products[1]!, 5);
    expect(products[0]).toBeCloseTo(products[2]!, 5);
  });
});

describe("mgda", () => {
  it("min-norm: no other point of the hull is shorter", () => {
    const gs = [
      [4, 1],
      [-1, 1],
    ];
    const c = run(new MgdaStrategy(), gs);
    const best = dot(combine(gs, c.coefficients), combine(gs, c.coefficients));
    for (let a = 0; a <= 1; a += 0.01) {
      const d = combine(gs, [a, 1 - a]);
      expect(dot(d, d)).toBeGreaterThanOrEqual(best - 1e-12);
    }
  });

  it("is not scale invariant (unlike mokd)", () => {
    const gs = [
      [1, 0],
      [0, 3],
    ];
    expect(run(new MgdaStrategy(), gs).weights[0]).toBeCloseTo(0.9, 12);
  });

  it("Frank-Wolfe matches a brute-force search on three objectives", () => {
    const gs = [
      [1, 0.2],
      [-0.5, 1],
      [0.3, -0.8],
    ];
    const gram = gramOf(gs);
    const alpha = minNormSimplex(gram);
    const norm = (w: number[]) => dot(combine(gs, w), combine(gs, w));
    let brute = Infinity;
    for (let a = 0; a <= 1; a += 0.005)
      for (let b = 0; a + b <= 1; b += 0.005) brute = Math.min(brute, norm([a, b, 1 - a - b]));
    expect(norm(alpha)).toBeLessThanOrEqual(brute + 1e-6);
  });
});

describe("pcgrad", () => {
  it("removes the conflicting component", () => {
    const gs = [
      [1, 0],
      [-1, 1],
    ];
    // g1' = g1 - <g1,g2>/|g2|^2 g2 = (0.5, 0.5); g2' = g2 - <g2,g1>/|g1|^2 g1 = (0, 1).
    const c = run(new PcgradStrategy(), gs);
    const d = combine(gs, c.coefficients);
    expect(d[0]).toBeCloseTo(0.5, 12);
    expect(d[1]).toBeCloseTo(1.5, 12);
  });

  it("leaves non-conflicting gradients alone (plain sum)", () => {
    expect(
      run(new PcgradStrategy(), [
        [1, 0],
        [1, 1],
      ]).coefficients,
    ).toEqual([1, 1]);
  });

  it("each projected gradient is orthogonal to the one it conflicted with (two objectives)", () => {
    const gs = [
      [2, 1],
      [-3, 1],
    ];
    const c = run(new PcgradStrategy(), gs);
    // d = g1' + g2'; g1' is orthogonal to g2 and g2' to g1.
    const g1p = combine(gs, [1, c.coefficients[1]! - 1]);
    expect(dot(g1p, gs[1]!)).toBeCloseTo(0, 12);
  });
});

describe("cagrad", () => {
  it("c = 0 is the average", () => {
    const c = run(new CagradStrategy(0), [
      [1, 0],
      [-2, 1],
    ]);
    expect(c.coefficients).toEqual([0.5, 0.5]);
  });

  it("c > 0 decreases the worse objective more than the average does", () => {
    const gs = [
      [1, 0],
      [-0.8, 0.3],
    ];
    const avg = combine(gs, [0.5, 0.5]);
    const d = combine(gs, run(new CagradStrategy(0.5), gs).coefficients);
    const worst = (v: Vec) => Math.min(...gs.map((g) => dot(v, g)));
    expect(worst(d)).toBeGreaterThan(worst(avg));
  });

  it("three objectives run through Frank-Wolfe and give finite coefficients", () => {
    const c = run(new CagradStrategy(0.5), [
      [1, 0, 0],
      [0, 1, 0],
      [-0.5, -0.5, 1],
    ]);
    expect(c.coefficients.every(Number.isFinite)).toBe(true);
    expect(c.weights.reduce((a, b) => a + b)).toBeCloseTo(1, 12);
  });
});

describe("imtl", () => {
  it("equal projections on the unit gradients", () => {
    const gs = [
      [3, 0],
      [1, 2],
    ];
    const c = run(new ImtlStrategy(), gs);
    const d = combine(gs, c.coefficients);
    const unitDot = (g: Vec) => dot(d, g) / Math.sqrt(dot(g, g));
    expect(unitDot(gs[0]!)).toBeCloseTo(unitDot(gs[1]!), 10);
    expect(c.coefficients[0]! + c.coefficients[1]!).toBeCloseTo(1, 12);
  });

  it("three objectives: equal projections", () => {
    const gs = [
      [3, 0, 0],
      [1, 2, 0],
      [0, 1, 1],
    ];
    const d = combine(gs, run(new ImtlStrategy(), gs).coefficients);
    const p = gs.map((g) => dot(d, g) / Math.sqrt(dot(g, g)));
    expect(p[0]).toBeCloseTo(p[1]!, 10);
    expect(p[0]).toBeCloseTo(p[2]!, 10);
  });

  it("parallel gradients (singular system): the minimum-norm solution, uniform; zero gradient: weight 0", () => {
    const parallel = run(new ImtlStrategy(), [
      [1, 1],
      [2, 2],
    ]).coefficients;
    parallel.forEach((x) => expect(x).toBeCloseTo(0.5, 15));
    expect(
      run(new ImtlStrategy(), [
        [0, 0],
        [2, 2],
      ]).coefficients,
    ).toEqual([0, 1]);
  });
});

describe("sum", () => {
  it("uses the spec's weights by objective name", () => {
    const spec = StrategySpec.parse({ name: "sum", weights: { task: 0.3, distillation: 0.9 } });
    const s = createStrategy(spec, ["task", "distillation"]) as LossStrategy;
    expect(s).toBeInstanceOf(SumStrategy);
    const c = s.combine([1, 2], ctx());
    expect(c.coefficients).toEqual([0.3, 0.9]);
    expect(c.weights[0]).toBeCloseTo(0.25, 12);
  });
});

describe("mokd-amortized (FAMO)", () => {
  const settings = { learningRate: 0.025, weightDecay: 0.01 };

  it("starts at equal weights; coefficients are z_i / (c L_i) and sum to 1", () => {
    const famo = new MokdAmortizedStrategy(settings, 2);
    const c = famo.combine([2, 0.5]);
    expect(c.weights).toEqual([0.5, 0.5]);
    expect(c.coefficients[0]! / c.coefficients[1]!).toBeCloseTo(0.25, 6);
    expect(c.coefficients[0]! + c.coefficients[1]!).toBeCloseTo(1, 12);
  });

  it("moves weight toward the objective whose log-loss dropped less", () => {
    const famo = new MokdAmortizedStrategy(settings, 2);
    famo.observe([1, 1], [0.5, 0.9]); // task dropped a lot, distillation little
    const w = famo.weights();
    expect(w[1]).toBeGreaterThan(w[0]!);
    // First Adam step moves each logit by ~lr.
    expect(Math.abs((famo.state().logits[0] ?? 0) + 0.025)).toBeLessThan(1e-6);
  });

  it("ignores non-finite losses", () => {
    const famo = new MokdAmortizedStrategy(settings, 2);
    famo.observe([1, 1], [NaN, 0.5]);
    expect(famo.state().t).toBe(0);
  });
});

describe("state round-trip and registry", () => {
  it("every strategy is built by name and round-trips its state", () => {
    for (const name of strategyNames) {
      const spec = StrategySpec.parse({ name });
      const s = createStrategy(spec, ["task", "distillation"]);
      expect(s.name).toBe(name);
      const restored = createStrategy(spec, ["task", "distillation"]);
      restored.loadState(JSON.parse(JSON.stringify(s.state())));
      expect(restored.state()).toEqual(s.state());
    }
  });

  it("mokd-amortized resumes exactly where it stopped", () => {
    const a = new MokdAmortizedStrategy({ learningRate: 0.025, weightDecay: 0.01 }, 2);
    a.observe([1, 1], [0.5, 0.9]);
    a.observe([0.9, 0.8], [0.7, 0.79]);
    const b = new MokdAmortizedStrategy({ learningRate: 0.025, weightDecay: 0.01 }, 2);
    b.loadState(JSON.parse(JSON.stringify(a.state())));
    a.observe([0.7, 0.7], [0.6, 0.69]);
    b.observe([0.7, 0.7], [0.6, 0.69]);
    expect(b.state()).toEqual(a.state());
    expect(() => b.loadState({ logits: [0] })).toThrow(/invalid mokd-amortized state/);
  });
});

describe("solveLinear", () => {
  it("solves a small system and reports singular ones", () => {
    expect(
      solveLinear(
        [
          [2, 1],
          [1, 3],
        ],
        [3, 5],
      )!.map((x) => +x.toFixed(12)),
    ).toEqual([0.8, 1.4]);
    expect(
      solveLinear(
        [
          [1, 2],
          [2, 4],
        ],
        [1, 2],
      ),
    ).toBeNull();
  });
});
