// `mokd-amortized`: FAMO (Liu et al., "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023), the amortized
// form of MoKD: one backward pass per step, following the reference implementation
// (github.com/Cranial-XIX/FAMO, famo.py):
// - weights z = softmax(w), logits w start at 0;
// - the differentiated loss is sum_i z_i log(L_i + 1e-8) / c with c = sum_i z_i / (L_i + 1e-8) (constant), whose
//   gradient is sum_i z_i / (c (L_i + 1e-8)) grad L_i: those are our coefficients on the raw losses (they sum to
//   1). Telemetry reports z, the weights on the log-loss gradients (what `mokd` reports as pi);
// - after the step, with delta_i = log(L_i before) - log(L_i after) on the same batch, the logits take one Adam
//   step (PyTorch semantics: L2 weight decay added to the gradient, betas 0.9/0.999, eps 1e-8) along
//   J_softmax(w)^T delta. An objective whose log-loss dropped less than the others gains weight.
// The reference's min_losses are 0 (it never sets them), so they are left out here.
//
// `observe: next-batch` (spec.strategy.famo.observe) drops the extra forward pass "after" needs: the pre-step
// losses of step t+1 (computed anyway, on the next batch) stand in for the post-step losses of step t (the split
// of LibMTL's FAMO: prev_losses kept in backward(), update_w(curr_losses) separately). The engine hands every step's
// pre-step losses to observePreStep before combine; the previous ones are kept in the state (`pending`), so a
// resumed run pairs them exactly as an uninterrupted one. The first step has nothing to pair with; epoch
// boundaries are not special (the last batch of an epoch pairs with the first of the next, just another new
// batch); a step with a non-finite loss is not observed and not kept, so the next step starts a new pair.
import type { MokdAmortizedObserveMode, StrategySpec } from "../../../api/v1alpha1/index.ts";
import type { Combination, LossStrategy } from "../contracts.ts";

const LOG_EPS = 1e-8;
const BETA1 = 0.9;
const BETA2 = 0.999;
const ADAM_EPS = 1e-8;

export interface MokdAmortizedState {
  logits: number[];
  m: number[];
  v: number[];
  t: number;
  /** next-batch: the previous step's pre-step losses, not yet observed (null: none). */
  pending: number[] | null;
}

/** The spec's FAMO settings; `observe` defaults to the reference's same-batch. */
export type MokdAmortizedSettings = Pick<StrategySpec["famo"], "learningRate" | "weightDecay"> & {
  observe?: MokdAmortizedObserveMode;
};

export class MokdAmortizedStrategy implements LossStrategy {
  readonly kind = "loss";
  readonly name = "mokd-amortized";
  private readonly learningRate: number;
  private readonly weightDecay: number;
  readonly observes: MokdAmortizedObserveMode;
  private s: MokdAmortizedState;

  constructor(settings: MokdAmortizedSettings, objectiveCount: number) {
    this.learningRate = settings.learningRate;
    this.weightDecay = settings.weightDecay;
    this.observes = settings.observe ?? "same-batch";
    const zeros = () => new Array<number>(objectiveCount).fill(0);
    this.s = { logits: zeros(), m: zeros(), v: zeros(), t: 0, pending: null };
  }

  combine(losses: number[]): Combination {
    const z = softmax(this.s.logits);
    const shifted = losses.map((l) => l + LOG_EPS);
    const c = z.reduce((acc, zi, i) => acc + zi / shifted[i]!, 0);
    return { coefficients: z.map((zi, i) => zi / (c * shifted[i]!)), weights: z };
  }

  observe(lossesBefore: number[], lossesAfter: number[]): void {
    const delta = lossesBefore.map((b, i) => Math.log(b + LOG_EPS) - Math.log(lossesAfter[i]! + LOG_EPS));
    if (!delta.every(Number.isFinite)) return; // a NaN loss must not poison the logits
    const z = softmax(this.s.logits);
    const zDelta = z.reduce((acc, zi, i) => acc + zi * delta[i]!, 0);
    const gradient = z.map((zi, i) => zi * (delta[i]! - zDelta) + this.weightDecay * this.s.logits[i]!);
    this.adamStep(gradient);
  }

  /** next-batch: observes (previous step's pre-step losses, these) and keeps these for the next step. */
  observePreStep(losses: number[]): void {
    if (this.s.pending) this.observe(this.s.pending, losses);
    this.s.pending = losses.every(Number.isFinite) ? [...losses] : null;
  }

  private adamStep(gradient: number[]): void {
    const s = this.s;
    s.t += 1;
    s.m = s.m.map((m, i) => BETA1 * m + (1 - BETA1) * gradient[i]!);
    s.v = s.v.map((v, i) => BETA2 * v + (1 - BETA2) * gradient[i]! ** 2);
    const c1 = 1 - BETA1 ** s.t;
    const c2 = 1 - BETA2 ** s.t;
    s.logits = s.logits.map(
      (w, i) => w - (this.learningRate * (s.m[i]! / c1)) / (Math.sqrt(s.v[i]! / c2) + ADAM_EPS),
    );
  }

  /** The current weights z = softmax(w). */
  weights(): number[] {
    return softmax(this.s.logits);
  }

  state(): MokdAmortizedState {
    return structuredClone(this.s);
  }

  loadState(state: unknown): void {
    const s = state as Partial<MokdAmortizedState> | null;
    const n = this.s.logits.length;
    const isVector = (x: unknown): x is number[] =>
      Array.isArray(x) && x.length === n && x.every((e) => typeof e === "number");
    const validPending = s?.pending === undefined || s.pending === null || isVector(s.pending);
    if (
      !s ||
      !isVector(s.logits) ||
      !isVector(s.m) ||
      !isVector(s.v) ||
      typeof s.t !== "number" ||
      !validPending
    ) {
      throw new Error(
        `invalid mokd-amortized state: expected logits, m, v of length ${n}, t and optional pending of length ${n}`,
      );
    }
    // Checkpoints from before next-batch have no pending: the first resumed step then observes nothing.
    const pending = s.pending ? [...s.pending] : null;
    this.s = { logits: [...s.logits], m: [...s.m], v: [...s.v], t: s.t, pending };
  }
}

export function softmax(x: number[]): number[] {
  const top = Math.max(...x);
  const e = x.map((v) => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}
