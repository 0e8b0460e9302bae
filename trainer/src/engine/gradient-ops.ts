// TEMPORARY stand-in for trainer/src/gradients.ts (numerics helper): delete once that lands.
import * as tf from "@tensorflow/tfjs";

export interface PairStatistics {
  /** keyed "i:j" by objective index. */
  cosines: number[][];
  normRatios: number[][];
  conflict: boolean;
}

export function perObjectiveGradients(
  count: number,
  loss: (i: number) => tf.Scalar,
  variables: tf.Variable[],
): { losses: number[]; grads: tf.Tensor[][] } {
  const losses: number[] = [];
  const grads: tf.Tensor[][] = [];
  for (let i = 0; i < count; i++) {
    const r = tf.variableGrads(() => loss(i), variables);
    losses.push(r.value.dataSync()[0]!);
    grads.push(variables.map((v) => r.grads[v.name] ?? tf.zerosLike(v)));
  }
  return { losses, grads };
}

export function gramMatrix(grads: tf.Tensor[][]): number[][] {
  return tf.tidy(() => {
    const flat = grads.map((g) => tf.concat(g.map((t) => t.reshape([-1]))));
    const m = tf.stack(flat) as tf.Tensor2D;
    return tf.matMul(m, m, false, true).arraySync() as number[][];
  });
}

export function applyCoefficients(grads: tf.Tensor[][], coefficients: number[]): tf.Tensor[] {
  return grads[0]!.map((_, v) => tf.addN(grads.map((g, i) => tf.mul(g[v]!, coefficients[i]!))));
}

export function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): tf.Tensor[] {
  const norm = Math.sqrt(grads.reduce((acc, g) => acc + (tf.sum(tf.square(g)).dataSync()[0] ?? 0), 0));
  if (norm <= maxNorm) return grads;
  return grads.map((g) => tf.mul(g, maxNorm / norm));
}

export function pairwiseStatistics(gram: number[][]): PairStatistics {
  const n = gram.length;
  const cosines: number[][] = [];
  const normRatios: number[][] = [];
  let conflict = false;
  for (let i = 0; i < n; i++) {
    cosines.push([]);
    normRatios.push([]);
    for (let j = 0; j < n; j++) {
      const ni = Math.sqrt(gram[i]![i]!);
      const nj = Math.sqrt(gram[j]![j]!);
      const cos = ni > 0 && nj > 0 ? gram[i]![j]! / (ni * nj) : 0;
      cosines[i]!.push(cos);
      normRatios[i]!.push(Math.max(ni, nj) / Math.max(Math.min(ni, nj), 1e-30));
      if (i < j && cos < 0) conflict = true;
    }
  }
  return { cosines, normRatios, conflict };
}
