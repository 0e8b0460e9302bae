// The student's optimiser from spec.training.
import * as tf from "@tensorflow/tfjs";
import type { TrainingSpec } from "../../../api/v1alpha1/index.ts";

export function createOptimizer(training: TrainingSpec): tf.Optimizer {
  switch (training.optimizer) {
    case "adam":
      return tf.train.adam(training.learningRate);
    case "sgd":
      return tf.train.sgd(training.learningRate);
    case "momentum":
      return tf.train.momentum(training.learningRate, training.momentum);
  }
}
