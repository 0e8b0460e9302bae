// Plain float64 vector helpers for the strategy tests' reference computations.
export type Vec = number[];
export const dot = (a: Vec, b: Vec) => a.reduce((s, x, i) => s + x * b[i]!, 0);
export const gramOf = (gs: Vec[]) => gs.map((a) => gs.map((b) => dot(a, b)));
/** sum_i c_i g_i */
export const combine = (gs: Vec[], c: number[]) =>
  gs[0]!.map((_, d) => gs.reduce((s, g, i) => s + c[i]! * g[d]!, 0));
