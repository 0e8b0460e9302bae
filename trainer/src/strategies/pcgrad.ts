// `pcgrad`: gradient surgery (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020). For each
// objective i, visiting the others in a random order, if its (already projected) gradient conflicts with g_j
// (negative inner product) it is projected onto g_j's normal plane: g_i <- g_i - <g_i, g_j> / |g_j|^2 g_j.
// The update is the sum of the projected gradients. Each projected gradient is tracked as coefficients over
// the raw gradients, so only the Gram matrix is needed: <sum_k a_k g_k, g_j> = (a^T G)_j. Zero gradients are
// never projected onto. The order comes from the step's seeded generator, so a resumed run repeats it.
import type { Combination, GradientStrategy, StepContext } from "../contracts.ts";
import { EPS, gramTimes, normalise } from "./min-norm.ts";

export class PcgradStrategy implements GradientStrategy {
  readonly kind = "gradient";
  readonly name = "pcgrad";

  combine(gram: number[][], _losses: number[], context: StepContext): Combination {
    const k = gram.length;
    const largest = Math.max(...gram.map((row, i) => row[i]!));
    const total = new Array<number>(k).fill(0);
    for (let i = 0; i < k; i++) {
      const a = unit(k, i);
      for (const j of shuffledOthers(k, i, context.random)) {
        const gjj = gram[j]![j]!;
        if (!(gjj > EPS * largest)) continue;
        const dot = gramTimes(gram, a)[j]!;
        if (dot < 0) a[j]! -= dot / gjj;
      }
      a.forEach((x, n) => (total[n]! += x));
    }
    return { coefficients: total, weights: normalise(total) };
  }

  state(): unknown {
    return {};
  }

  loadState(): void {}
}

function unit(k: number, i: number): number[] {
  return Array.from({ length: k }, (_, n) => (n === i ? 1 : 0));
}

/** The indices other than i, Fisher-Yates shuffled. */
function shuffledOthers(k: number, i: number, random: () => number): number[] {
  const others = Array.from({ length: k }, (_, n) => n).filter((n) => n !== i);
  for (let n = others.length - 1; n > 0; n--) {
    const m = Math.floor(random() * (n + 1));
    [others[n], others[m]] = [others[m]!, others[n]!];
  }
  return others;
}
