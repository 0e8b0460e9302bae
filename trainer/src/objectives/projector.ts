// The adaptation module of feature distillation: a linear map from the student's feature size to the teacher's,
// trained with the student. Initialised (seeded) with orthonormal rows or columns, and kept near that by the
// regulariser ||W W^T - I||_F^2 taken on the smaller side (the Gram matrix that can be the identity).
import * as tf from "@tensorflow/tfjs";
import { Random } from "../data/random.ts";

/** A name not yet registered as a tfjs variable (tf.variable throws on duplicates). */
function freeVariableName(base: string): string {
  const taken = tf.engine().registeredVariables;
  let name = base;
  for (let i = 1; name in taken; i++) name = `${base}_${i}`;
  return name;
}

/**
 * `rows` x `cols` matrix whose vectors along the smaller side are orthonormal (Gram-Schmidt on seeded Gaussian
 * vectors), so the orthogonality term starts at 0.
 */
export function orthonormalMatrix(rows: number, cols: number, seed: number): Float32Array {
  const random = new Random(seed);
  const count = Math.min(rows, cols);
  const length = Math.max(rows, cols);
  const vectors: Float64Array[] = [];
  while (vectors.length < count) {
    const v = Float64Array.from({ length }, () => random.normal());
    for (const u of vectors) {
      let dot = 0;
      for (let i = 0; i < length; i++) dot += v[i]! * u[i]!;
      for (let i = 0; i < length; i++) v[i]! -= dot * u[i]!;
    }
    const norm = Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
    if (norm < 1e-6) continue; // numerically dependent draw: draw again
    vectors.push(v.map((x) => x / norm));
  }
  const out = new Float32Array(rows * cols);
  vectors.forEach((v, k) => {
    // rows <= cols: vector k is row k; otherwise it is column k.
    for (let i = 0; i < length; i++) out[rows <= cols ? k * cols + i : i * cols + k] = v[i]!;
  });
  return out;
}

export class Projector {
  /** [studentDim, teacherDim] */
  readonly weight: tf.Variable<tf.Rank.R2>;
  /** [teacherDim] */
  readonly bias: tf.Variable<tf.Rank.R1>;

  constructor(studentDim: number, teacherDim: number, seed: number, name = "projector") {
    const init = orthonormalMatrix(studentDim, teacherDim, seed);
    this.weight = tf.variable(
      tf.tensor2d(init, [studentDim, teacherDim]),
      true,
      freeVariableName(`${name}/kernel`),
    );
    this.bias = tf.variable(tf.zeros([teacherDim]), true, freeVariableName(`${name}/bias`));
  }

  get variables(): tf.Variable[] {
    return [this.weight, this.bias];
  }

  /** Student features [batch, studentDim] -> [batch, teacherDim]. */
  project(features: tf.Tensor2D): tf.Tensor2D {
    return tf.add(tf.matMul(features, this.weight), this.bias);
  }

  /** ||G - I||_F^2 with G = W W^T or W^T W, whichever is smaller. */
  orthogonalityPenalty(): tf.Scalar {
    const [rows, cols] = this.weight.shape;
    const gram =
      rows <= cols
        ? tf.matMul(this.weight, this.weight, false, true)
        : tf.matMul(this.weight, this.weight, true, false);
    return tf.sum(tf.square(tf.sub(gram, tf.eye(Math.min(rows, cols)))));
  }

  dispose(): void {
    this.weight.dispose();
    this.bias.dispose();
  }
}
