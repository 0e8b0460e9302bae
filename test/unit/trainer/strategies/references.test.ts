// Independent float64 references for the weightings the evidence study compares: FAMO's update over several steps
// (written as famo.py does it: an explicit softmax Jacobian, PyTorch Adam with L2 weight decay), exact MoKD on
// three objectives with non-unit losses against a brute-force search of the simplex, and the two controls
// (sum-log, mokd-normalized) against their definitions.
import { describe, expect, it } from "vitest";
import {
  MokdAmortizedStrategy,
  MokdNormalizedStrategy,
  MokdStrategy,
  SumLogStrategy,
} from "../../../../trainer/src/strategies/index.ts";
import { combine, dot, gramOf, type Vec } from "../../../fixtures/vectors.ts";

/** famo.py (github.com/Cranial-XIX/FAMO), min_losses 0, in plain float64 with matrices spelled out. */
class FamoReference {
  w: number[];
  private m: number[];
  private v: number[];
  private t = 0;
  private readonly lr: number;
  private readonly weightDecay: number;
  constructor(n: number, lr: number, weightDecay: number) {
    this.lr = lr;
    this.weightDecay = weightDecay;
    this.w = new Array<number>(n).fill(0);
    this.m = new Array<number>(n).fill(0);
    this.v = new Array<number>(n).fill(0);
  }
  z(): number[] {
    const e = this.w.map(Math.exp);
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  }
  /** d/dL of sum(log(L + 1e-8) z / c) with c = sum(z / (L + 1e-8)) held constant. */
  coefficients(losses: number[]): number[] {
    const z = this.z();
    const d = losses.map((l) => l + 1e-8);
    const c = z.reduce((a, zi, i) => a + zi / d[i]!, 0);
    return z.map((zi, i) => zi / c / d[i]!);
  }
  update(before: number[], after: number[]): void {
    const delta = before.map((b, i) => Math.log(b + 1e-8) - Math.log(after[i]! + 1e-8));
    const z = this.z();
    // torch.autograd.grad(softmax(w), w, grad_outputs=delta) = J^T delta, J_ij = z_i (1[i = j] - z_j).
    const jacobian = z.map((zi, i) => z.map((zj, j) => zi * ((i === j ? 1 : 0) - zj)));
    const grad = z.map((_, j) => z.reduce((s, __, i) => s + jacobian[i]![j]! * delta[i]!, 0));
    // torch.optim.Adam(weight_decay=gamma): grad += gamma * w (L2, toward zero), then the Adam step.
    const g = grad.map((x, i) => x + this.weightDecay * this.w[i]!);
    this.t++;
    this.m = this.m.map((m, i) => 0.9 * m + 0.1 * g[i]!);
    this.v = this.v.map((v, i) => 0.999 * v + 0.001 * g[i]! ** 2);
    const c1 = 1 - 0.9 ** this.t;
    const c2 = 1 - 0.999 ** this.t;
    this.w = this.w.map((w, i) => w - (this.lr / c1) * (this.m[i]! / (Math.sqrt(this.v[i]! / c2) + 1e-8)));
  }
}

describe("FAMO against an independent float64 reference", () => {
  it("matches famo.py's weights, coefficients and logits over several steps (3 objectives)", () => {
    const lr = 0.3; // large, so a wrong learning rate, sign or Jacobian shows within a few steps
    const weightDecay = 0.2;
    const famo = new MokdAmortizedStrategy({ learningRate: lr, weightDecay }, 3);
    const ref = new FamoReference(3, lr, weightDecay);
    const steps: [number[], number[]][] = [
      [
        [2.3, 0.7, 1.1],
        [2.0, 0.69, 0.8],
      ],
      [
        [2.0, 0.69, 0.8],
        [1.7, 0.6, 0.79],
      ],
      [
        [1.9, 0.5, 0.9],
        [1.85, 0.3, 0.88],
      ],
      [
        [1.6, 0.35, 0.7],
        [1.2, 0.34, 0.71],
      ],
      [
        [1.2, 0.3, 0.7],
        [1.1, 0.29, 0.6],
      ],
      [
        [1.1, 0.29, 0.6],
        [1.1, 0.29, 0.6],
      ], // no change: only the weight decay moves the logits
    ];
    for (const [before, after] of steps) {
      const ours = famo.combine(before);
      ref.coefficients(before).forEach((c, i) => expect(ours.coefficients[i]).toBeCloseTo(c, 12));
      ref.z().forEach((z, i) => expect(ours.weights[i]).toBeCloseTo(z, 12));
      famo.observe(before, after);
      ref.update(before, after);
      ref.w.forEach((w, i) => expect(famo.state().logits[i]).toBeCloseTo(w, 12));
    }
    // The logits did move (a no-op would match a no-op reference only at the start).
    expect(Math.max(...ref.w.map(Math.abs))).toBeGreaterThan(0.2);
  });

  it("weight decay pulls the logits toward zero (its sign), at the learning rate's scale", () => {
    const famo = new MokdAmortizedStrategy({ learningRate: 0.1, weightDecay: 0.5 }, 2);
    famo.loadState({ logits: [1, -1], m: [0, 0], v: [0, 0], t: 0, pending: null });
    famo.observe([1, 1], [1, 1]); // delta 0: the gradient is the decay 0.5 * w alone
    // First Adam step: -lr * sign(gradient).
    expect(famo.state().logits[0]).toBeCloseTo(0.9, 7);
    expect(famo.state().logits[1]).toBeCloseTo(-0.9, 7);
  });
});

/** Brute force: the simplex point of smallest |sum_i pi_i g_i / L_i|^2 on a grid of step h. */
function bruteForce(gs: Vec[], losses: number[], h = 0.001): { pi: number[]; norm: number } {
  const scaled = gs.map((g, i) => g.map((x) => x / losses[i]!));
  let best = { pi: [1, 0, 0], norm: Infinity };
  const n = Math.round(1 / h);
  for (let a = 0; a <= n; a++) {
    for (let b = 0; a + b <= n; b++) {
      const pi = [a * h, b * h, (n - a - b) * h];
      const d = combine(scaled, pi);
      const norm = dot(d, d);
      if (norm < best.norm) best = { pi, norm };
    }
  }
  return best;
}

describe("exact MoKD, three objectives with non-unit losses, against brute force", () => {
  const cases: { name: string; gs: Vec[]; losses: number[] }[] = [
    {
      name: "interior",
      gs: [
        [1.2, -0.4, 0.3, 0.9],
        [-0.5, 1.1, 0.2, -0.3],
        [0.1, -0.6, 1.4, 0.4],
      ],
      losses: [2.5, 0.3, 1.7],
    },
    {
      name: "on a face",
      gs: [
        [1, 0.2, 0],
        [0.9, 0.3, 0.1],
        [-0.2, 1, 0.5],
      ],
      losses: [0.4, 3.2, 1.3],
    },
  ];
  for (const { name, gs, losses } of cases) {
    it(`${name}: the solver's point is the brute-force minimum; coefficients pi_i / L_i`, () => {
      const c = new MokdStrategy().combine(gramOf(gs), losses);
      const brute = bruteForce(gs, losses);
      c.weights.forEach((p, i) => expect(Math.abs(p - brute.pi[i]!)).toBeLessThan(0.01));
      const scaled = gs.map((g, i) => g.map((x) => x / losses[i]!));
      const d = combine(scaled, c.weights);
      expect(dot(d, d)).toBeLessThanOrEqual(brute.norm + 1e-12);
      c.coefficients.forEach((x, i) => expect(x).toBeCloseTo(c.weights[i]! / losses[i]!, 12));
    });
  }
});

describe("the controls", () => {
  it("sum-log: coefficients w_i / L_i, no step for a loss at the floor", () => {
    const s = new SumLogStrategy({ task: 0.3, distillation: 0.7, feature: 1 }, ["task", "distillation"]);
    const c = s.combine([2, 0.5]);
    expect(c.coefficients[0]).toBeCloseTo(0.15, 12);
    expect(c.coefficients[1]).toBeCloseTo(1.4, 12);
    expect(c.weights).toEqual([0.3, 0.7]);
    expect(s.combine([0, 0.5]).coefficients).toEqual([0, 1.4]);
  });

  it("mokd-normalized: mokd's direction, coefficients summing to 1", () => {
    const gs = [
      [1, 0.5, -0.2],
      [-0.3, 0.8, 0.4],
    ];
    const losses = [1.8, 0.25];
    const exact = new MokdStrategy().combine(gramOf(gs), losses);
    const normalized = new MokdNormalizedStrategy().combine(gramOf(gs), losses);
    const total = exact.coefficients.reduce((a, b) => a + b, 0);
    expect(total).not.toBeCloseTo(1, 2); // MoKD's own coefficients do not sum to 1 here
    expect(normalized.coefficients.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    normalized.coefficients.forEach((x, i) => expect(x).toBeCloseTo(exact.coefficients[i]! / total, 12));
    expect(normalized.weights).toEqual(exact.weights);
  });
});
