// One optimiser step of the student. The teacher's outputs are computed outside any gradient tape (it is frozen).
// - GradientStrategy: one gradient per objective -> Gram matrix -> strategy.combine -> combined gradient.
// - LossStrategy (sum, FAMO): one backward of sum_i c_i L_i; every `measureEvery`-th step the per-objective
//   gradients are computed instead (same update, k backwards) so telemetry still sees cosines and norm ratios.
// Everything runs in tf.tidy: no tensor outlives the step except the variables.
import * as tf from "@tensorflow/tfjs";
import type {
  Batch,
  Network,
  Objective,
  ObjectiveInputs,
  StepContext,
  WeightingStrategy,
} from "../contracts.ts";
import { countCorrect, predict } from "./evaluate.ts";
import {
  applyCoefficients,
  clipByGlobalNorm,
  gramMatrix,
  pairwiseStatistics,
  perObjectiveGradients,
  type PairStatistics,
} from "./gradient-ops.ts";

/** Default: per-objective gradients of single-backward strategies are measured every 10th step. */
export const DEFAULT_MEASURE_EVERY = 10;

export interface StudentStepSetup {
  student: Network;
  teacher: Network;
  objectives: Objective[];
  /** Projector (adaptation module) variables, trained with the student. */
  extraVariables: tf.Variable[];
  strategy: WeightingStrategy;
  optimizer: tf.Optimizer;
  gradClipNorm?: number;
  measureEvery?: number;
}

export interface StepOutcome {
  losses: number[];
  weights: number[];
  coefficients: number[];
  /** Present on steps whose per-objective gradients were computed. */
  pairs?: PairStatistics;
  correct: number;
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

  constructor(setup: StudentStepSetup) {
    this.setup = setup;
    this.variables = trainableVariables(setup);
    this.measureEvery = setup.measureEvery ?? DEFAULT_MEASURE_EVERY;
  }

  run(batch: Batch, context: StepContext): StepOutcome {
    const { strategy } = this.setup;
    let outcome: StepOutcome | undefined;
    tf.tidy(() => {
      const [teacherLogits, teacherFeatures] = predict(this.setup.teacher, batch.xs);
      const frozen = { teacherLogits, teacherFeatures, labels: batch.ys };
      const measure = strategy.kind === "gradient" || context.step % this.measureEvery === 0;
      outcome = measure
        ? this.perObjectiveStep(batch, frozen, context)
        : this.singleBackwardStep(batch, frozen, context);
    });
    if (!outcome) throw new Error("unreachable: step produced no outcome");
    if (strategy.kind === "loss" && strategy.observe)
      strategy.observe(outcome.losses, this.lossesAfter(batch));
    return outcome;
  }

  private forward(xs: tf.Tensor4D, frozen: Omit<ObjectiveInputs, "studentLogits" | "studentFeatures">) {
    const out = this.setup.student.model.apply(xs, { training: true }) as tf.Tensor[];
    return { ...frozen, studentLogits: out[0] as tf.Tensor2D, studentFeatures: out[1] as tf.Tensor2D };
  }

  private perObjectiveStep(batch: Batch, frozen: FrozenInputs, context: StepContext): StepOutcome {
    let correct = 0;
    const { losses, grads } = perObjectiveGradients(
      this.setup.objectives.length,
      (i) => {
        const inputs = this.forward(batch.xs, frozen);
        if (i === 0) correct = countCorrect(inputs.studentLogits, batch.ys);
        return this.setup.objectives[i]!.loss(inputs);
      },
      this.variables,
    );
    const gram = gramMatrix(grads);
    const { strategy } = this.setup;
    const combination =
      strategy.kind === "gradient"
        ? strategy.combine(gram, losses, context)
        : strategy.combine(losses, context);
    const combined = applyCoefficients(grads, combination.coefficients);
    this.apply(combined);
    return { losses, ...combination, pairs: pairwiseStatistics(gram), correct };
  }

  private singleBackwardStep(batch: Batch, frozen: FrozenInputs, context: StepContext): StepOutcome {
    const strategy = this.setup.strategy;
    if (strategy.kind !== "loss") throw new Error("single-backward step needs a LossStrategy");
    let losses: number[] = [];
    let combination = { coefficients: [] as number[], weights: [] as number[] };
    let correct = 0;
    const { grads } = tf.variableGrads(() => {
      const inputs = this.forward(batch.xs, frozen);
      correct = countCorrect(inputs.studentLogits, batch.ys);
      const lossTensors = this.setup.objectives.map((o) => o.loss(inputs));
      // Read the losses inside the tape: the coefficients are plain numbers, so no gradient flows through them.
      losses = lossTensors.map((l) => l.dataSync()[0]!);
      combination = strategy.combine(losses, context);
      return tf.addN(lossTensors.map((l, i) => tf.mul(l, combination.coefficients[i]!))) as tf.Scalar;
    }, this.variables);
    this.apply(this.variables.map((v) => grads[v.name] ?? tf.zerosLike(v)));
    return { losses, ...combination, correct };
  }

  private apply(gradients: tf.Tensor[]): void {
    const clipped = this.setup.gradClipNorm
      ? clipByGlobalNorm(gradients, this.setup.gradClipNorm)
      : gradients;
    const map: tf.NamedTensorMap = {};
    this.variables.forEach((v, i) => (map[v.name] = clipped[i]!));
    this.setup.optimizer.applyGradients(map);
  }

  /** Losses on the same batch after the update (FAMO's observe), forward only. */
  private lossesAfter(batch: Batch): number[] {
    return tf.tidy(() => {
      const [teacherLogits, teacherFeatures] = predict(this.setup.teacher, batch.xs);
      const inputs = this.forward(batch.xs, { teacherLogits, teacherFeatures, labels: batch.ys });
      return this.setup.objectives.map((o) => o.loss(inputs).dataSync()[0]!);
    });
  }
}

type FrozenInputs = Omit<ObjectiveInputs, "studentLogits" | "studentFeatures">;
