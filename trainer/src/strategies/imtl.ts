// `imtl`: IMTL-G, the gradient half of impartial multi-task learning (Liu et al., "Towards Impartial Multi-task
// Learning", ICLR 2021). Find weights a (sum 1) such that d = sum_i a_i g_i has equal projections on every unit
// gradient u_i = g_i / |g_i|. The paper's closed form a_{2..K} = g_1 U^T (D U^T)^{-1} is the solution of the
// K x K linear system  <d, u_1> - <d, u_i> = 0 (i = 2..K), sum_i a_i = 1, written here with the Gram matrix:
//   sum_j a_j (G_j1 / |g_1| - G_ji / |g_i|) = 0.
// Zero (or non-finite) gradients get weight 0 and are left out. When some gradients are collinear the system is
// singular: two gradients with the same direction share their unit vector, so their equal-projection row is zero
// and the conditions leave a family of solutions. We take the minimum-norm solution of the system (every
// solution satisfies the condition; the shortest one spreads the weight over a collinear group). The earlier
// fallback, uniform weights, does not satisfy the condition for K = 3 when only two of them are collinear.
import type { Combination, GradientStrategy } from "../contracts.ts";
import { activeIndices, minNormSolution, normalise, scatter, solveLinear, subGram } from "./min-norm.ts";

export class ImtlStrategy implements GradientStrategy {
  readonly kind = "gradient";
  readonly name = "imtl";

  combine(gram: number[][]): Combination {
    const k = gram.length;
    const idx = activeIndices(gram);
    if (idx.length === 0) return uniform(k);
    const a = scatter(k, idx, equalProjectionWeights(subGram(gram, idx)));
    return { coefficients: a, weights: normalise(a) };
  }

  state(): unknown {
    return {};
  }

  loadState(): void {}
}

function equalProjectionWeights(gram: number[][]): number[] {
  const k = gram.length;
  const norms = gram.map((row, i) => Math.sqrt(row[i]!));
  const rows = Array.from({ length: k - 1 }, (_, r) => {
    const i = r + 1;
    return gram.map((row) => row[0]! / norms[0]! - row[i]! / norms[i]!);
  });
  const system = [...rows, new Array<number>(k).fill(1)];
  const rhs = [...new Array<number>(k - 1).fill(0), 1];
  return solveLinear(system, rhs) ?? minNormSolution(system, rhs);
}

function uniform(k: number): Combination {
  const w = new Array<number>(k).fill(1 / k);
  return { coefficients: w, weights: w };
}
