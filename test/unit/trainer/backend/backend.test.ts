import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { conv2dFilterGradient, registerTrainingKernels } from "../../../../trainer/src/backend/kernels.ts";

type Case = {
  x: [number, number, number, number];
  f: [number, number, number, number];
  s: number | [number, number];
  pad: "same" | "valid";
};
const cases: Case[] = [
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], s: 1, pad: "same" },
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], s: 1, pad: "valid" },
  { x: [2, 8, 9, 2], f: [3, 3, 2, 5], s: 2, pad: "same" },
  { x: [2, 8, 9, 2], f: [3, 3, 2, 5], s: 2, pad: "valid" },
  { x: [1, 9, 9, 1], f: [5, 5, 1, 3], s: 1, pad: "same" },
  { x: [3, 6, 10, 4], f: [2, 4, 4, 2], s: [1, 2], pad: "same" },
  { x: [2, 12, 12, 8], f: [3, 3, 8, 16], s: 1, pad: "same" },
];

interface Reference {
  c: Case;
  x: Float32Array;
  dy: Float32Array;
  filter: Float32Array;
  dyShape: number[];
  dW: Float32Array;
  dX: Float32Array;
}

function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let worst = 0;
  const scale = Math.max(...Array.from(expected, Math.abs), 1e-6);
  for (let i = 0; i < expected.length; i++)
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / scale);
  return worst;
}

const run = (name: string, inputs: tf.NamedTensorMap, attrs: object) =>
  (tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor).dataSync() as Float32Array;

type PoolCase = { x: [number, number, number, number]; size: number; s: number; pad: "same" | "valid" };
const poolCases: PoolCase[] = [
  { x: [2, 8, 8, 3], size: 2, s: 2, pad: "valid" },
  { x: [2, 7, 9, 4], size: 2, s: 2, pad: "same" },
  { x: [1, 9, 9, 2], size: 3, s: 2, pad: "same" }, // overlapping windows accumulate
  { x: [2, 6, 6, 5], size: 3, s: 1, pad: "valid" },
];
interface PoolReference {
  c: PoolCase;
  x: Float32Array;
  dy: Float32Array;
  dyShape: number[];
  dX: Float32Array;
}

// References from the cpu backend's STOCK kernels, computed before any replacement is registered.
const references: Reference[] = [];
const poolReferences: PoolReference[] = [];
beforeAll(async () => {
  await tf.setBackend("cpu");
  for (const c of poolCases) {
    // ReLU-like input rounded to a coarse grid: many ties, where the first maximum must get the gradient.
    const x = tf.round(tf.relu(tf.randomNormal(c.x)).mul(2)).div(2);
    const output = tf.maxPool(x as tf.Tensor4D, c.size, c.s, c.pad);
    const dy = tf.randomNormal(output.shape);
    const attrs = { filterSize: c.size, strides: c.s, pad: c.pad };
    poolReferences.push({
      c,
      x: x.dataSync() as Float32Array,
      dy: dy.dataSync() as Float32Array,
      dyShape: dy.shape,
      dX: run(tf.MaxPoolGrad, { dy, input: x, output }, attrs),
    });
  }
  for (const c of cases) {
    const info = tf.backend_util.computeConv2DInfo(c.x, c.f, c.s, 1, c.pad);
    const x = tf.randomNormal(c.x);
    const filter = tf.randomNormal(c.f);
    const dy = tf.randomNormal(info.outShape);
    const common = { strides: c.s, pad: c.pad, dataFormat: "NHWC" };
    references.push({
      c,
      x: x.dataSync() as Float32Array,
      dy: dy.dataSync() as Float32Array,
      filter: filter.dataSync() as Float32Array,
      dyShape: info.outShape,
      dW: run(tf.Conv2DBackpropFilter, { x, dy }, { ...common, filterShape: c.f }),
      dX: run(tf.Conv2DBackpropInput, { dy, filter }, { ...common, inputShape: c.x }),
    });
  }
});

const tensors = (r: Reference) => ({
  x: tf.tensor4d(r.x, r.c.x),
  dy: tf.tensor4d(r.dy, r.dyShape as [number, number, number, number]),
  filter: tf.tensor4d(r.filter, r.c.f),
});
const label = (r: Reference) => `x ${r.c.x} filter ${r.c.f} stride ${r.c.s} ${r.c.pad}`;

describe("replacement conv gradient kernels match the cpu backend's stock kernels", () => {
  it("Conv2DBackpropFilter on cpu (registered) ", () => {
    expect(registerTrainingKernels("cpu")).toEqual([tf.Conv2DBackpropFilter, tf.MaxPoolGrad]);
    for (const r of references) {
      const { x, dy } = tensors(r);
      const dW = run(
        tf.Conv2DBackpropFilter,
        { x, dy },
        { strides: r.c.s, pad: r.c.pad, filterShape: r.c.f },
      );
      expect(maxRelativeError(dW, r.dW), label(r)).toBeLessThan(1e-4);
    }
  });

  it("Conv2DBackpropFilter and Conv2DBackpropInput on wasm, and conv nets train there", async () => {
    const selected = await selectBackend("wasm", () => {});
    expect(selected.tfBackend).toBe("wasm");
    expect(selected.kernels).toContain(tf.Conv2DBackpropFilter);
    for (const r of references) {
      const { x, dy, filter } = tensors(r);
      const common = { strides: r.c.s, pad: r.c.pad, dataFormat: "NHWC" as const };
      const dW = run(tf.Conv2DBackpropFilter, { x, dy }, { ...common, filterShape: r.c.f });
      expect(maxRelativeError(dW, r.dW), label(r)).toBeLessThan(1e-4);
      const dX = run(tf.Conv2DBackpropInput, { dy, filter }, { ...common, inputShape: r.c.x });
      expect(maxRelativeError(dX, r.dX), label(r)).toBeLessThan(1e-4);
      // The helper itself (also used for strides > 1).
      expect(
        maxRelativeError(conv2dFilterGradient(x, dy, { ...common, filterShape: r.c.f }).dataSync(), r.dW),
      ).toBeLessThan(1e-4);
    }
    const before = tf.memory().numTensors;
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [12, 12, 1],
          filters: 4,
          kernelSize: 3,
          padding: "same",
          activation: "relu",
        }),
        tf.layers.batchNormalization(),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, activation: "relu" }),
        tf.layers.flatten(),
        tf.layers.dropout({ rate: 0.2 }),
        tf.layers.dense({ units: 3 }),
      ],
    });
    model.compile({ optimizer: "adam", loss: "meanSquaredError" });
    const history = await model.fit(tf.randomNormal([8, 12, 12, 1]), tf.randomNormal([8, 3]), {
      epochs: 3,
      verbose: 0,
    });
    expect(history.history.loss!.every((l) => Number.isFinite(l as number))).toBe(true);
    expect(tf.memory().numTensors).toBeGreaterThan(before); // sanity: the model exists
  });

  it("BatchMatMul with transposed operands on wasm matches the cpu backend (ranks 2 and 3)", async () => {
    const shapes: [number[], number[], boolean, boolean][] = [
      [[6, 5], [6, 4], true, false],
      [[5, 6], [4, 6], false, true],
      [[6, 5], [4, 6], true, true],
      [[5, 6], [6, 4], false, false],
      [[2, 7, 3], [2, 7, 4], true, false],
      [[2, 3, 7], [1, 4, 7], false, true],
    ];
    await tf.setBackend("cpu");
    const cases = shapes.map(([sa, sb, ta, tb]) => {
      const [a, b] = [tf.randomNormal(sa), tf.randomNormal(sb)];
      return { a: a.arraySync(), b: b.arraySync(), ta, tb, expected: tf.matMul(a, b, ta, tb) };
    });
    const expected = cases.map((c) => ({ shape: c.expected.shape, values: c.expected.dataSync().slice() }));
    const selected = await selectBackend("wasm", () => {});
    expect(selected.kernels).toContain(tf.BatchMatMul);
    cases.forEach((c, i) => {
      const before = tf.memory().numTensors;
      const out = tf.tidy(() => tf.matMul(tf.tensor(c.a), tf.tensor(c.b), c.ta, c.tb));
      expect(out.shape).toEqual(expected[i]!.shape);
      expect(maxRelativeError(out.dataSync(), expected[i]!.values), `case ${i}`).toBeLessThan(1e-5);
      out.dispose();
      expect(tf.memory().numTensors).toBe(before); // the explicit transposes are freed
    });
  });

  it("MaxPoolGrad on cpu and wasm matches the cpu stock kernel, ties included", async () => {
    for (const backend of ["cpu", "wasm"] as const) {
      await selectBackend(backend, () => {});
      expect(tf.getBackend()).toBe(backend);
      for (const r of poolReferences) {
        const x = tf.tensor4d(r.x, r.c.x);
        const output = tf.maxPool(x, r.c.size, r.c.s, r.c.pad);
        const dy = tf.tensor(r.dy, r.dyShape);
        const attrs = { filterSize: r.c.size, strides: r.c.s, pad: r.c.pad };
        const dX = run(tf.MaxPoolGrad, { dy, input: x, output }, attrs);
        expect(maxRelativeError(dX, r.dX), `${backend} ${JSON.stringify(r.c)}`).toBeLessThan(1e-6);
      }
    }
  });

  it("does not register for other backends", () => {
    expect(registerTrainingKernels("tensorflow")).toEqual([]);
  });
});
