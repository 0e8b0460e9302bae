// The student's training recipe around a tfjs optimiser: the learning-rate schedule and weight decay
// (spec.training.schedule, weightDecay). Each applyGradients first sets the inner optimiser's learning rate for
// its step (the inner's own iteration count, which its checkpointed weights restore, so a resumed run continues
// the schedule), then applies weight decay as PyTorch does:
// - decoupled (AdamW): x <- x (1 - lr_t wd) before the Adam update, which does not read x, so the order is moot;
// - L2 (Adam, SGD, momentum): the gradient becomes g + wd x.
// A variable without a gradient this step is neither decayed nor updated (as in PyTorch, where p.grad is None).
import * as tf from "@tensorflow/tfjs";
import { learningRateAt, type ScheduleShape, type ScheduleSpec } from "./schedule.ts";

type Gradients = Parameters<tf.Optimizer["applyGradients"]>[0];
type NamedTensor = { name: string; tensor: tf.Tensor };

export interface RecipeSettings {
  schedule: ScheduleSpec;
  shape: ScheduleShape;
  weightDecay: number;
  decoupled: boolean;
}

/** The learning-rate field every stock tfjs optimiser keeps (SGD and momentum also cache it as a scalar). */
interface WithLearningRate {
  learningRate: number;
  setLearningRate?: (lr: number) => void;
}

export class RecipeOptimizer extends tf.Optimizer {
  static get className(): string {
    return "RecipeOptimizer";
  }

  readonly inner: tf.Optimizer;
  private readonly settings: RecipeSettings;

  constructor(inner: tf.Optimizer, settings: RecipeSettings) {
    super();
    this.inner = inner;
    this.settings = settings;
  }

  /** The learning rate the next update uses. */
  currentLearningRate(): number {
    return learningRateAt(this.settings.schedule, this.settings.shape, this.inner.iterations);
  }

  override applyGradients(variableGradients: Gradients): void {
    const lr = this.currentLearningRate();
    setLearningRate(this.inner, lr);
    const entries: NamedTensor[] = Array.isArray(variableGradients)
      ? variableGradients
      : Object.entries(variableGradients).map(([name, tensor]) => ({ name, tensor }));
    const { weightDecay, decoupled } = this.settings;
    if (weightDecay === 0) return this.inner.applyGradients(entries);
    if (decoupled) {
      for (const { name, tensor } of entries) {
        if (!tensor) continue;
        const v = tf.engine().registeredVariables[name]!;
        tf.tidy(() => v.assign(tf.mul(v, 1 - lr * weightDecay)));
      }
      return this.inner.applyGradients(entries);
    }
    const decayed = tf.tidy(() =>
      entries.map(({ name, tensor }) => ({
        name,
        tensor: tensor && tf.add(tensor, tf.mul(tf.engine().registeredVariables[name]!, weightDecay)),
      })),
    );
    try {
      this.inner.applyGradients(decayed);
    } finally {
      decayed.forEach((d) => d.tensor?.dispose());
    }
  }

  override get iterations(): number {
    return this.inner.iterations;
  }

  override getWeights(): Promise<NamedTensor[]> {
    return this.inner.getWeights();
  }

  override setWeights(weights: NamedTensor[]): Promise<void> {
    return this.inner.setWeights(weights);
  }

  override dispose(): void {
    this.inner.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...this.inner.getConfig(), weightDecay: this.settings.weightDecay };
  }
}

function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  const o = optimizer as unknown as WithLearningRate;
  if (o.learningRate === lr) return;
  if (o.setLearningRate) o.setLearningRate(lr);
  else o.learningRate = lr;
}
