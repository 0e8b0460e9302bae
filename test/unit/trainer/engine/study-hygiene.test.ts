// Study hygiene: the split does not follow the training seed, a saved teacher carries its input
// normalisation and a loaded one is fed in it, and the fingerprint ignores what only evaluates or selects.
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import type { Split } from "../../../../trainer/src/contracts.ts";
import { loadDataset } from "../../../../trainer/src/data/index.ts";
import { specFingerprint } from "../../../../trainer/src/engine/fingerprint.ts";
import { loadTeacherAsData } from "../../../../trainer/src/engine/teacher.ts";
import { buildNetwork, saveNetwork } from "../../../../trainer/src/models/index.ts";
import { tempDir } from "../../../fixtures/dataset-files.ts";
import { writeTinyIdx } from "../../../fixtures/tiny-run.ts";

let data: string;
const quiet = { info: () => {}, warn: () => {} };
const specOf = (over: Record<string, unknown>) => parseConfig(over, "t", {}).spec;

beforeAll(async () => {
  await selectBackend("cpu", () => {});
  data = writeTinyIdx();
});

/** The split's images in order (first batch of everything), as numbers. */
function pixels(split: Split): number[] {
  const [batch] = split.batches({ batchSize: split.size, shuffle: false, seed: 0, epoch: 0, augment: false });
  const values = Array.from(batch!.xs.dataSync());
  tf.dispose([batch!.xs, batch!.ys]);
  return values;
}

describe("data split seed", () => {
  it("is data.splitSeed, whatever training.seed is", async () => {
    const load = (training: number, split?: number) =>
      loadDataset(specOf({ data: { path: data, splitSeed: split }, training: { seed: training } }).data);
    const [a, b, c] = await Promise.all([load(1), load(2), load(1, 9)]);
    expect(pixels(a.validation)).toEqual(pixels(b.validation));
    expect(pixels(a.validation)).not.toEqual(pixels(c.validation));
  });
});

describe("fingerprint", () => {
  it("ignores evaluation settings and the split seed at the old behaviour, not a changed split", () => {
    const base = specFingerprint(specOf({}));
    expect(specFingerprint(specOf({ training: { evaluationsPerEpoch: 4, reportedModel: "last" } }))).toBe(
      base,
    );
    // The default training seed and split seed are both 42: the split earlier releases made.
    expect(specFingerprint(specOf({ data: { splitSeed: 42 } }))).toBe(base);
    expect(specFingerprint(specOf({ data: { splitSeed: 7 } }))).not.toBe(base);
  });
});

describe("teacher input normalisation", () => {
  it("is saved with a trained teacher and applied when it is loaded for data normalised otherwise", async () => {
    const standardized = await loadDataset(specOf({ data: { path: data } }).data);
    const unit = await loadDataset(specOf({ data: { path: data, normalization: "unit" } }).data);
    const arch = { architecture: "cnn" as const, width: 2, depth: 1, hiddenUnits: 8, dropout: 0 };
    const net = buildNetwork(arch, standardized.inputShape, standardized.numClasses, 3);
    const dir = tempDir();
    await saveNetwork({ ...net, inputNormalization: standardized.normalization }, dir);

    const onOwn = await loadTeacherAsData(dir, undefined, standardized, quiet);
    const onUnit = await loadTeacherAsData(dir, undefined, unit, quiet);
    expect(onOwn.model.layers.some((l) => l.name.endsWith("input_normalization"))).toBe(false);
    const logits = (network: typeof net, split: Split) =>
      tf.tidy(() => {
        const [batch] = split.batches({ batchSize: 16, shuffle: false, seed: 0, epoch: 0, augment: false });
        return Array.from((network.model.predict(batch!.xs) as tf.Tensor[])[0]!.dataSync());
      });
    const expected = logits(net, standardized.test);
    const converted = logits(onUnit, unit.test);
    const unconverted = logits(net, unit.test);
    converted.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 4));
    expect(unconverted.some((v, i) => Math.abs(v - expected[i]!) > 1e-2)).toBe(true);
    [net, onOwn, onUnit].forEach((n) => n.model.dispose());
  });
});
