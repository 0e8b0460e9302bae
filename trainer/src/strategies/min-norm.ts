// Small dense solvers shared by the gradient strategies. Everything works on the K x K Gram matrix of the
// objective gradients (K is 2 or 3), never on the gradients themselves, so it is plain arithmetic on numbers.

/** Relative tolerance below which a squared norm (or a denominator) counts as zero. */
export const EPS = 1e-12;

/**
 * Weight `a` on v1 minimising |a v1 + (1 - a) v2|^2 over a in [0, 1], from v11 = |v1|^2, v12 = <v1, v2>,
 * v22 = |v2|^2. The unconstrained optimum (v22 - v12) / (v11 + v22 - 2 v12) is clamped to [0, 1], which covers
 * v12 >= v11 (v1 is the shorter end: a = 1) and v12 >= v22 (a = 0). When v1 and v2 (nearly) coincide, the
 * denominator |v1 - v2|^2 vanishes, every a gives the same point, and we return 0.5.
 */
export function minNormTwo(v11: number, v12: number, v22: number): number {
  const denom = v11 + v22 - 2 * v12;
  if (!(denom > EPS * (v11 + v22))) return 0.5;
  return clamp01((v22 - v12) / denom);
}

export function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}

/** (G a)_i */
export function gramTimes(gram: number[][], a: number[]): number[] {
  return gram.map((row) => row.reduce((s, gij, j) => s + gij * a[j]!, 0));
}

/** a^T G b */
export function quadForm(gram: number[][], a: number[], b: number[] = a): number {
  return gramTimes(gram, b).reduce((s, x, i) => s + x * a[i]!, 0);
}

/**
 * Min-norm point of the convex hull of the gradients (MGDA's sub-problem), as weights on the simplex:
 * the closed form for two; for up to four, exactly, by solving the KKT system on every face of the simplex
 * (Frank-Wolfe converges only as O(1/t) when the hull contains the origin); Frank-Wolfe with exact line search
 * beyond that (Sener & Koltun 2018, Alg. 2).
 */
export function minNormSimplex(gram: number[][]): number[] {
  const k = gram.length;
  if (k === 1) return [1];
  if (k === 2) {
    const a = minNormTwo(gram[0]![0]!, gram[0]![1]!, gram[1]![1]!);
    return [a, 1 - a];
  }
  return (k <= 4 ? minNormByFaces(gram) : null) ?? minNormFrankWolfe(gram);
}

/** On each face S: minimise a^T G_S a subject to sum a = 1; keep the best candidate with a >= 0. */
function minNormByFaces(gram: number[][]): number[] | null {
  const k = gram.length;
  let best: number[] | null = null;
  let bestNorm = Infinity;
  for (let mask = 1; mask < 1 << k; mask++) {
    const idx = Array.from({ length: k }, (_, i) => i).filter((i) => mask & (1 << i));
    const g = subGram(gram, idx);
    // [G 1; 1^T 0] [a; -lambda] = [0; 1]
    const kkt = [...g.map((row) => [...row, 1]), [...idx.map(() => 1), 0]];
    const solution = solveLinear(kkt, [...idx.map(() => 0), 1]);
    if (!solution) continue;
    const a = solution.slice(0, idx.length);
    if (a.some((x) => x < -1e-12)) continue;
    const full = scatter(
      k,
      idx,
      a.map((x) => Math.max(x, 0)),
    );
    const norm = quadForm(gram, full);
    if (norm < bestNorm - 1e-15 * Math.abs(norm)) {
      best = full;
      bestNorm = norm;
    }
  }
  return best && normalise(best);
}

function minNormFrankWolfe(gram: number[][], maxIterations = 1000, tolerance = 1e-9): number[] {
  const k = gram.length;
  let alpha = new Array<number>(k).fill(1 / k);
  for (let it = 0; it < maxIterations; it++) {
    const ga = gramTimes(gram, alpha);
    const t = argmin(ga);
    // Line search between the current point (v1) and vertex t (v2).
    const gamma = minNormTwo(quadForm(gram, alpha), ga[t]!, gram[t]![t]!);
    const next = alpha.map((a, i) => gamma * a + (i === t ? 1 - gamma : 0));
    const change = next.reduce((s, x, i) => s + Math.abs(x - alpha[i]!), 0);
    alpha = next;
    if (change < tolerance) break;
  }
  return alpha;
}

export function argmin(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! < xs[best]!) best = i;
  return best;
}

/**
 * Indices whose squared norm is finite and non-zero relative to the largest finite one. A non-finite gradient
 * is never active: it must not take part in the step, nor turn the relative threshold into NaN (which made every
 * objective inactive, and the caller's uniform fallback then gave the NaN gradient half the weight).
 */
export function activeIndices(gram: number[][]): number[] {
  const norms = gram.map((row, i) => row[i]!);
  const finite = norms.filter(Number.isFinite);
  const largest = finite.length ? Math.max(...finite) : 0;
  return norms.flatMap((n, i) => (Number.isFinite(n) && n > EPS * largest && n > 0 ? [i] : []));
}

/** The sub-matrix of `gram` on rows and columns `idx`. */
export function subGram(gram: number[][], idx: number[]): number[][] {
  return idx.map((i) => idx.map((j) => gram[i]![j]!));
}

/** Scatters weights solved on `idx` back to a K-vector (zeros elsewhere). */
export function scatter(k: number, idx: number[], values: number[]): number[] {
  const out = new Array<number>(k).fill(0);
  idx.forEach((i, n) => (out[i] = values[n]!));
  return out;
}

/**
 * Min-norm simplex weights with the zero-gradient rule: objectives whose gradient is zero (relative to the
 * largest) are left out and get weight 0, so a stationary objective does not stall the others (the plain
 * min-norm point would be that zero vector: no step at all). All zero: uniform weights (the step is zero).
 */
export function minNormIgnoringZeros(gram: number[][]): number[] {
  const k = gram.length;
  const idx = activeIndices(gram);
  if (idx.length === 0) return new Array<number>(k).fill(1 / k);
  return scatter(k, idx, minNormSimplex(subGram(gram, idx)));
}

/** Solves A x = b by Gaussian elimination with partial pivoting; null when A is (numerically) singular. */
export function solveLinear(a: number[][], b: number[]): number[] | null {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  const scale = Math.max(...a.flat().map(Math.abs));
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[pivot]![col]!)) pivot = r;
    if (!(Math.abs(m[pivot]![col]!) > 1e-10 * scale)) return null;
    [m[col], m[pivot]] = [m[pivot]!, m[col]!];
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = m[r]![col]! / m[col]![col]!;
      for (let c = col; c <= n; c++) m[r]![c]! -= f * m[col]![c]!;
    }
  }
  return m.map((row, i) => row[n]! / row[i]!);
}

/**
 * The minimum-norm x with A x = b for a consistent but possibly rank-deficient system (rows that depend on
 * earlier ones are dropped): modified Gram-Schmidt on the rows, x = sum_k c_k q_k over the orthonormal rows q_k
 * with q_k . x = c_k. A dependent row whose right-hand side disagrees (an inconsistent system) is dropped too, so
 * the result then satisfies the independent rows only.
 */
export function minNormSolution(a: number[][], b: number[]): number[] {
  const n = a[0]!.length;
  const basis: { q: number[]; c: number }[] = [];
  a.forEach((row, r) => {
    const v = [...row];
    let rhs = b[r]!;
    for (const { q, c } of basis) {
      const p = v.reduce((s, x, i) => s + x * q[i]!, 0);
      v.forEach((_, i) => (v[i]! -= p * q[i]!));
      rhs -= p * c;
    }
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const scale = Math.sqrt(row.reduce((s, x) => s + x * x, 0));
    if (!(norm > 1e-10 * scale)) return;
    basis.push({ q: v.map((x) => x / norm), c: rhs / norm });
  });
  const x = new Array<number>(n).fill(0);
  for (const { q, c } of basis) q.forEach((qi, i) => (x[i]! += c * qi));
  return x;
}

/** Weights scaled to sum to 1 (uniform when the sum is not positive): what telemetry reports. */
export function normalise(xs: number[]): number[] {
  const s = xs.reduce((a, b) => a + b, 0);
  if (!(s > 0) || !Number.isFinite(s)) return xs.map(() => 1 / xs.length);
  return xs.map((x) => x / s);
}

/** A copy of the Gram matrix scaled by 1 / (s_i s_j): the Gram of g_i / s_i. */
export function scaleGram(gram: number[][], s: number[]): number[][] {
  return gram.map((row, i) => row.map((g, j) => g / (s[i]! * s[j]!)));
}
