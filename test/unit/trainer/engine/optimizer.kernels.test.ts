import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { wasmSimdKernels } from "../../../../trainer/src/backend/wasm-simd.ts";
import { createOptimizer, FusedAdamOptimizer } from "../../../../trainer/src/engine/optimizer.ts";
import { backendsUnderTest } from "../backend-under-test.ts";

type NamedTensor = { name: string; tensor: tf.Tensor };

const shapes = [[7, 5], [5], [3, 3, 2, 4], [1]];

let made = 0;
/** Seeded variables with unique names; `shareStorage` keeps a live tensor aliasing the first one's storage. */
function makeVariables(prefix: string, shareStorage = false) {
  prefix = `${prefix}${made++}_`;
  const inits = shapes.map((s, i) => tf.randomNormal(s, 0, 1, "float32", 11 + i));
  const vars = inits.map((t, i) => tf.variable(t, true, `${prefix}${i}`));
  const alias = shareStorage ? inits[0]! : undefined;
  inits.forEach((t) => t !== alias && t.dispose());
  return { vars, alias };
}

/** Per step, per variable gradients (the last variable gets none on odd steps). */
function gradients(vars: tf.Variable[], step: number): NamedTensor[] {
  return vars.flatMap((v, i) =>
    i === vars.length - 1 && step % 2 === 1
      ? []
      : [
          {
            name: v.name,
            tensor: tf.randomNormal(
              v.shape,
              0,
              1 + i,
              "float32",
              100 * step + i + 1,
            ) /* seed 0 means unseeded */,
          },
        ],
  );
}

function train(optimizer: tf.Optimizer, vars: tf.Variable[], steps: number, from = 0): void {
  for (let step = from; step < from + steps; step++)
    tf.tidy(() => optimizer.applyGradients(gradients(vars, step)));
}

const values = (vars: tf.Variable[]) => vars.map((v) => Array.from(v.dataSync()));

function maxAbsDiff(a: number[][], b: number[][]): number {
  let worst = 0;
  a.forEach((row, i) => row.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - b[i]![j]!)))));
  return worst;
}

// On tensorflow (the `tensorflow` project) the fused update does not apply: these check its stock fallback.
describe.each(backendsUnderTest(["cpu", "wasm"]))("FusedAdamOptimizer on %s", (backend) => {
  it("matches tf.train.adam bit for bit, with a missing gradient and sizes not a multiple of 4", async () => {
    await selectBackend(backend, () => {});
    // On wasm the update runs in the SIMD kernel (the cpu backend uses the JS loop).
    expect(wasmSimdKernels() !== null).toBe(backend === "wasm");
    const stock = makeVariables("stock");
    const fused = makeVariables("fused");
    const [a, b] = [tf.train.adam(0.01), new FusedAdamOptimizer(0.01)];
    for (let step = 0; step < 6; step++) {
      train(a, stock.vars, 1, step);
      train(b, fused.vars, 1, step);
      expect(maxAbsDiff(values(fused.vars), values(stock.vars))).toBe(0);
    }
    // Parameters really moved (a no-op update would also "match" a no-op reference).
    const initial = makeVariables("initial");
    expect(maxAbsDiff(values(fused.vars), values(initial.vars))).toBeGreaterThan(0.01);
    const [wa, wb] = [await a.getWeights(), await b.getWeights()];
    const slotNames = (ws: NamedTensor[]) => ws.map((w) => w.name.replace(/^[a-z]+\d+_/, ""));
    expect(slotNames(wb)).toEqual(slotNames(wa));
    expect(slotNames(wb)).toContain("0/m");
    expect(
      maxAbsDiff(
        wb.map((w) => Array.from(w.tensor.dataSync())),
        wa.map((w) => Array.from(w.tensor.dataSync())),
      ),
    ).toBe(0);
    tf.dispose([...stock.vars, ...fused.vars, ...initial.vars]);
    a.dispose();
    b.dispose();
  });

  it("does not write through storage another tensor shares, and leaks no tensors", async () => {
    await selectBackend(backend, () => {});
    const { vars, alias } = makeVariables("shared", true);
    const before = Array.from(alias!.dataSync());
    const optimizer = new FusedAdamOptimizer(0.1);
    train(optimizer, vars, 1);
    const count = tf.memory().numTensors;
    train(optimizer, vars, 3, 1);
    expect(tf.memory().numTensors).toBe(count);
    expect(Array.from(alias!.dataSync())).toEqual(before);
    expect(Array.from(vars[0]!.dataSync())).not.toEqual(before);
    tf.dispose([...vars, alias!]);
    optimizer.dispose();
  });

  it("updated weights reach the next matMul (wasm caches packed weights by tensor id)", async () => {
    await selectBackend(backend, () => {});
    const init = tf.randomNormal([6, 5], 0, 1, "float32", 5);
    const w = tf.variable(init, true, `matmul${backend}`);
    init.dispose(); // the variable owns its storage alone, as a layer's weights do
    const x = tf.randomNormal([3, 6], 0, 1, "float32", 6);
    const optimizer = new FusedAdamOptimizer(0.1);
    const product = (b: tf.Tensor) => tf.fused.matMul({ a: x, b: b as tf.Tensor2D, activation: "relu" });
    tf.dispose(product(w)); // primes the backend's operator cache with the old weights
    tf.tidy(() => optimizer.applyGradients([{ name: w.name, tensor: tf.onesLike(w) }]));
    const fromVariable = product(w).dataSync();
    const fromCopy = product(tf.tensor(w.dataSync(), w.shape)).dataSync();
    expect(Array.from(fromVariable)).toEqual(Array.from(fromCopy));
    tf.dispose([w, x]);
    optimizer.dispose();
  });

  it("resumes from a stock optimiser's checkpoint weights and continues identically", async () => {
    await selectBackend(backend, () => {});
    const stock = makeVariables("resumeStock");
    const fused = makeVariables("resumeFused");
    const reference = tf.train.adam(0.02);
    train(reference, stock.vars, 3);
    fused.vars.forEach((v, i) => v.assign(stock.vars[i]!));
    const saved = await reference.getWeights();
    const restored = new FusedAdamOptimizer(0.02);
    await restored.setWeights(saved.map((w) => ({ name: w.name, tensor: w.tensor.clone() })));
    train(reference, stock.vars, 3, 3);
    train(restored, fused.vars, 3, 3);
    expect(maxAbsDiff(values(fused.vars), values(stock.vars))).toBeLessThanOrEqual(1e-6);
    expect(restored.iterations).toBe(6);
    tf.dispose([...stock.vars, ...fused.vars]);
    reference.dispose();
    restored.dispose();
  });
});

describe("createOptimizer", () => {
  it("gives the fused Adam by default and the stock one when asked", () => {
    const spec = { optimizer: "adam", learningRate: 0.002, momentum: 0.9 } as Parameters<
      typeof createOptimizer
    >[0];
    expect(createOptimizer(spec)).toBeInstanceOf(FusedAdamOptimizer);
    const stock = createOptimizer(spec, false);
    // instanceof is duck-typed for tfjs optimisers: compare constructors.
    expect(stock.constructor).toBe(tf.AdamOptimizer);
  });
});
