// One optimiser step of the student. The teacher's outputs are computed outside any gradient tape (it is frozen),
// by a forward per batch or looked up in the teacher output cache (teacher-cache.ts).
// - GradientStrategy: one gradient per objective -> Gram matrix -> strategy.combine -> combined gradient.
// - LossStrategy (sum, FAMO): one backward of sum_i c_i L_i; every `measureEvery`-th step the per-objective
//   gradients are computed instead (same update, k backwards) so telemetry still sees cosines and norm ratios.
//   FAMO observes the losses after the step: on the same batch (one extra student forward; the teacher's outputs
//   are reused) or, with next-batch, the
//   next step's pre-step losses (no extra forward), see combineLosses / observesSameBatch.
// A step whose losses, objective gradients or combined update are not finite is skipped (no update, FAMO does
// not observe it) and reported as nonFinite: one NaN applied would make every weight NaN from then on.
// Everything runs in tf.tidy: no tensor outlives the step except the variables.
import * as tf from "@tensorflow/tfjs";
import type {
  Combination,
  Batch,
  LossStrategy,
  Network,
  Objective,
  ObjectiveInputs,
  StepContext,
  WeightingStrategy,
} from "../contracts.ts";
import { countCorrect } from "./evaluate.ts";
import { LiveTeacher, type TeacherOutputSource } from "./teacher-cache.ts";
import {
  clipFactor,
  combinedNorm,
  combineGradients,
  finiteStep,
  gramMatrix,
  hasConflict,
  normRatios,
  objectiveGradients,
  pairwiseCosines,
  stepShares,
  toNamedGradients,
  weightedLossGradients,
} from "../gradients.ts";

export interface PairStatistics {
  /** Keyed "task:distillation". */
  cosines: Record<string, number>;
  /** Larger over smaller gradient norm (>= 1), keyed like cosines. */
  normRatios: Record<string, number>;
  conflict: boolean;
  /** Per objective: its share of the applied update (gradients.ts stepShares). */
  stepShares: number[];
}

/** Default: per-objective gradients of single-backward strategies are measured every 10th step. */
export const DEFAULT_MEASURE_EVERY = 10;

export interface StudentStepSetup {
  student: Network;
  teacher: Network;
  /** The objectives, in the order of the strategy's weights; their names key every telemetry record. */
  objectives: Objective[];
  /** Projector (adaptation module) variables, trained with the student. */
  extraVariables: tf.Variable[];
  strategy: WeightingStrategy;
  optimizer: tf.Optimizer;
  gradClipNorm?: number;
  /** `own`: the projector takes the feature loss's unweighted gradient, outside the weighting (LibMTL). */
  projectorUpdate?: "weighted" | "own";
  measureEvery?: number;
  /** Where the teacher's outputs of a batch come from; default: a teacher forward per batch. */
  teacherOutputs?: TeacherOutputSource;
}

export interface StepOutcome {
  losses: number[];
  weights: number[];
  coefficients: number[];
  /** Present on steps whose per-objective gradients were computed. */
  pairs?: PairStatistics;
  correct: number;
  /** Losses, gradients or the update were not finite: nothing was applied. */
  nonFinite?: boolean;
}

/** The trainable variables the strategy's Gram matrix spans, in a fixed order (optimiser slots follow it). */
export function trainableVariables(
  setup: Pick<StudentStepSetup, "student" | "extraVariables">,
): tf.Variable[] {
  const studentVars = setup.student.model.trainableWeights.map((w) => w.read() as tf.Variable);
  return [...studentVars, ...setup.extraVariables];
}

export class StudentStep {
  private readonly setup: StudentStepSetup;
  private readonly variables: tf.Variable[];
  private readonly measureEvery: number;
  private readonly names: string[];
  private readonly teacherOutputs: TeacherOutputSource;
  /** With projectorUpdate `own`: how many leading variables are shared (the student's); else undefined. */
  private readonly sharedCount: number | undefined;
  private readonly featureIndex: number;

  constructor(setup: StudentStepSetup) {
    this.setup = setup;
    this.teacherOutputs = setup.teacherOutputs ?? new LiveTeacher(setup.teacher);
    this.variables = trainableVariables(setup);
    this.measureEvery = setup.measureEvery ?? DEFAULT_MEASURE_EVERY;
    this.names = setup.objectives.map((o) => o.name);
    this.featureIndex = this.names.indexOf("feature");
    const own = setup.projectorUpdate === "own" && setup.extraVariables.length > 0 && this.featureIndex >= 0;
    this.sharedCount = own ? this.variables.length - setup.extraVariables.length : undefined;
  }

  run(batch: Batch, context: StepContext): StepOutcome {
    const { strategy } = this.setup;
    // The teacher is frozen and runs in inference mode: its outputs (one forward, or a cache lookup) serve the
    // step and FAMO's same-batch observation after it. Kept outside the step's tidy for that, disposed at the end.
    const teacher = tf.tidy(() => this.teacherOutputs.outputs(batch));
    try {
      const frozen: FrozenInputs = {
        ...teacher,
        labels: batch.ys,
        epoch: context.epoch,
        progress: context.progress,
        step: context.step,
      };
      let outcome: StepOutcome | undefined;
      tf.tidy(() => {
        const measure = strategy.kind === "gradient" || context.step % this.measureEvery === 0;
        outcome = measure
          ? this.perObjectiveStep(batch, frozen, context)
          : this.singleBackwardStep(batch, frozen, context);
      });
      if (!outcome) throw new Error("unreachable: step produced no outcome");
      if (observesSameBatch(strategy) && !outcome.nonFinite)
        strategy.observe(outcome.losses, this.lossesAfter(batch, frozen));
      return outcome;
    } finally {
      tf.dispose(teacher);
    }
  }

  private forward(xs: tf.Tensor4D, frozen: FrozenInputs) {
    const out = this.setup.student.model.apply(xs, { training: true }) as tf.Tensor[];
    return { ...frozen, studentLogits: out[0] as tf.Tensor2D, studentFeatures: out[1] as tf.Tensor2D };
  }

  private lossesOf(batch: Batch, frozen: FrozenInputs, onCorrect: (n: number) => void): () => tf.Scalar[] {
    return () => {
      const inputs = this.forward(batch.xs, frozen);
      onCorrect(countCorrect(inputs.studentLogits, batch.ys));
      return this.setup.objectives.map((o) => o.loss(inputs));
    };
  }

  private perObjectiveStep(batch: Batch, frozen: FrozenInputs, context: StepContext): StepOutcome {
    let correct = 0;
    const { losses: lossTensors, grads } = objectiveGradients(
      this.lossesOf(batch, frozen, (n) => (correct = n)),
      this.variables,
    );
    const losses = Array.from(tf.stack(lossTensors).dataSync());
    const shared = this.sharedCount;
    // `own`: the weighting (and clipping) sees the shared parameters only; the projector follows its own loss.
    const weighted = shared === undefined ? grads : grads.map((g) => g.slice(0, shared));
    const gram = gramMatrix(weighted);
    const { strategy } = this.setup;
    const combination =
      strategy.kind === "gradient"
        ? strategy.combine(gram, losses, context)
        : combineLosses(strategy, losses, context);
    if (!finiteStep(losses, gram, combination.coefficients))
      return { losses, ...combination, correct, nonFinite: true };
    // Clipping is a scalar factor on the coefficients: the combined norm follows from the Gram matrix.
    const factor = clipFactor(combinedNorm(gram, combination.coefficients), this.setup.gradClipNorm);
    const combined = combineGradients(
      weighted,
      combination.coefficients.map((c) => c * factor),
    );
    if (shared !== undefined) {
      const own = this.names.map((_, i) => (i === this.featureIndex ? 1 : 0));
      combined.push(
        ...combineGradients(
          grads.map((g) => g.slice(shared)),
          own,
        ),
      );
    }
    this.setup.optimizer.applyGradients(toNamedGradients(this.variables, combined));
    const pairs = {
      ...pairStatistics(gram, this.names),
      stepShares: stepShares(gram, combination.coefficients),
    };
    return { losses, ...combination, pairs, correct };
  }

  private singleBackwardStep(batch: Batch, frozen: FrozenInputs, context: StepContext): StepOutcome {
    const strategy = this.setup.strategy;
    if (strategy.kind !== "loss") throw new Error("single-backward step needs a LossStrategy");
    let correct = 0;
    let combination: Combination = { coefficients: [], weights: [] };
    const result = weightedLossGradients(
      this.lossesOf(batch, frozen, (n) => (correct = n)),
      (losses) => (combination = combineLosses(strategy, losses, context)).coefficients,
      this.variables,
    );
    const losses = Array.from(tf.stack(result.losses).dataSync());
    // The squared norm of the one gradient (a 1 x 1 Gram: a dot product on the heap on cpu/wasm) serves both the
    // finiteness check and clipping.
    const squaredNorm = gramMatrix([result.grads]);
    if (!finiteStep(losses, squaredNorm, [1])) return { losses, ...combination, correct, nonFinite: true };
    const factor = clipFactor(Math.sqrt(squaredNorm[0]![0]!), this.setup.gradClipNorm);
    const grads = this.ownProjectorGradients(
      factor === 1 ? result.grads : result.grads.map((g) => tf.mul(g, factor)),
      combination.coefficients[this.featureIndex] ?? 0,
      factor,
    );
    this.setup.optimizer.applyGradients(toNamedGradients(this.variables, grads));
    return { losses, ...combination, correct };
  }

  /**
   * `own` on the single-backward path: only the feature loss reaches the projector, so its part of the gradient
   * of sum_i c_i L_i is c_feature grad(L_feature) (times the clip factor): divided back to the unweighted
   * gradient. A coefficient of 0 leaves nothing to divide: the projector is not moved that step.
   */
  private ownProjectorGradients(grads: tf.Tensor[], featureCoefficient: number, factor: number): tf.Tensor[] {
    const shared = this.sharedCount;
    if (shared === undefined) return grads;
    const scale = featureCoefficient > 0 ? 1 / (featureCoefficient * factor) : 0;
    return grads.map((g, i) => (i < shared ? g : tf.mul(g, scale)));
  }

  /** Losses on the same batch after the update (FAMO's observe): a student forward, the teacher's reused. */
  private lossesAfter(batch: Batch, frozen: FrozenInputs): number[] {
    return tf.tidy(() => {
      const inputs = this.forward(batch.xs, frozen);
      return Array.from(tf.stack(this.setup.objectives.map((o) => o.loss(inputs))).dataSync());
    });
  }
}

type FrozenInputs = Omit<ObjectiveInputs, "studentLogits" | "studentFeatures">;

/**
 * A loss strategy's combination of a step's pre-step losses; a next-batch observer first sees them (it pairs
 * them with the previous step's). Exported for the step-time benchmark, so it times this code.
 */
export function combineLosses(strategy: LossStrategy, losses: number[], context: StepContext): Combination {
  if (strategy.observes === "next-batch") strategy.observePreStep?.(losses);
  return strategy.combine(losses, context);
}

/** Whether the strategy wants the losses on the same batch after the update (one extra forward). */
export function observesSameBatch(
  strategy: WeightingStrategy,
): strategy is LossStrategy & Required<Pick<LossStrategy, "observe">> {
  return strategy.kind === "loss" && strategy.observes === "same-batch" && strategy.observe !== undefined;
}

/**
 * Telemetry of one measured step. Norm ratios are larger / smaller (>= 1, the api/metrics.ts definition).
 * Values that are not finite (a zero or NaN gradient norm) are left out: JSON cannot carry them, and the
 * exported gauges follow the record, so the JSONL and /metrics agree on every pair.
 */
export function pairStatistics(gram: number[][], names: string[]): Omit<PairStatistics, "stepShares"> {
  const ratios = mapFinite(normRatios(gram, names), (r) => Math.max(r, 1 / r));
  return {
    cosines: mapFinite(pairwiseCosines(gram, names), (c) => c),
    normRatios: ratios,
    conflict: hasConflict(gram),
  };
}

function mapFinite(values: Record<string, number>, f: (x: number) => number): Record<string, number> {
  return Object.fromEntries(
    Object.entries(values)
      .map(([k, v]) => [k, f(v)] as const)
      .filter(([, v]) => Number.isFinite(v)),
  );
}
