import { describe, expect, it } from "vitest";
import {
  analyseStudy,
  DistillationStudy,
  expandVariants,
  runCount,
  variantTrainerSpec,
  type VariantStatus,
} from "../../../api/v1alpha1/index.ts";

const study = (spec: Record<string, unknown>) =>
  DistillationStudy.parse({
    apiVersion: "distillation.mokd.io/v1alpha1",
    kind: "DistillationStudy",
    metadata: { name: "pilot" },
    spec: { template: { output: { uri: "s3://bucket/pilot" } }, ...spec },
  });

describe("study variants", () => {
  it("expands arms x seeds, index = position, names unique", () => {
    const s = study({ seeds: [3, 7], variants: { fixedAlphas: [0.5, 0.9] } }).spec;
    const v = expandVariants(s);
    expect(runCount(s)).toBe(10);
    expect(v.map((x) => x.name)).toEqual([
      "alone-s3",
      "alone-s7",
      "mokd-s3",
      "mokd-s7",
      "mokd-amortized-s3",
      "mokd-amortized-s7",
      "kd@0.5-s3",
      "kd@0.5-s7",
      "kd@0.9-s3",
      "kd@0.9-s7",
    ]);
    expect(v.map((x) => x.index)).toEqual([...v.keys()]);
  });

  it("changes only the weighting and the seed", () => {
    const s = study({ seeds: [5], variants: { fixedAlphas: [0.7] } }).spec;
    const [alone, mokd, , fixed] = expandVariants(s).map((v) => variantTrainerSpec(s.template, v));
    expect(alone!.objectives.distillation.enabled).toBe(false);
    expect(alone!.strategy.name).toBe("sum");
    expect(mokd!.strategy.name).toBe("mokd");
    expect(fixed!.strategy).toMatchObject({ name: "sum", weights: { task: 0.3, distillation: 0.7 } });
    for (const t of [alone!, mokd!, fixed!]) {
      expect(t.training.seed).toBe(5);
      expect(t.data).toEqual(s.template.data);
    }
  });

  it("refuses a study without shared storage, duplicate seeds or no variant", () => {
    const bad = DistillationStudy.safeParse({
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationStudy",
      spec: { seeds: [1, 1], variants: { automatic: [], fixedAlphas: [], studentAlone: false } },
    });
    expect(bad.success).toBe(false);
    const fields = bad.error!.issues.map((i) => i.path.join("."));
    expect(fields).toEqual(expect.arrayContaining(["spec.seeds", "spec.variants", "spec.template.output"]));
  });
});

const run = (arm: string, seed: number, val: number, test: number): VariantStatus => ({
  index: 0,
  name: `${arm}-s${seed}`,
  arm,
  seed,
  phase: "Succeeded",
  bestValidationAccuracy: val,
  testAccuracy: test,
  deviceSeconds: 10,
});

describe("the study's answer", () => {
  it("chooses on validation, never on test, and pairs by seed", () => {
    const variants = [
      // kd@0.9 has the best test accuracy but kd@0.5 the best validation: kd@0.5 is the best fixed cell.
      ...[1, 2, 3].map((s) => run("kd@0.9", s, 0.8, 0.9)),
      ...[1, 2, 3].map((s) => run("kd@0.5", s, 0.82, 0.8)),
      run("mokd", 1, 0.81, 0.81),
      run("mokd", 2, 0.81, 0.83),
      run("mokd", 3, 0.81, 0.82),
      { ...run("mokd", 4, 0.99, 0.99), phase: "Failed" as const },
    ];
    const answer = analyseStudy(variants);
    expect(answer.best?.arm).toBe("kd@0.5");
    const [c] = answer.comparisons!;
    expect(c).toMatchObject({ arm: "mokd", against: "kd@0.5", pairs: 3, wins: 3 });
    expect(c!.meanDifference).toBeCloseTo(0.02, 10);
    // t(0.975, df 2) = 4.303; the differences 0.01, 0.03, 0.02 have se 0.00577.
    expect(c!.lower).toBeCloseTo(0.02 - 4.303 * 0.005774, 4);
    expect(answer.arms!.find((a) => a.arm === "mokd")).toMatchObject({ seeds: 3, deviceSeconds: 30 });
  });

  it("has no answer before a run succeeds, and no interval from one pair", () => {
    expect(analyseStudy([{ ...run("mokd", 1, 0.8, 0.8), phase: "Running" }])).toEqual({});
    const one = analyseStudy([run("mokd", 1, 0.8, 0.8), run("kd@0.5", 1, 0.7, 0.7)]);
    expect(one.comparisons![0]).not.toHaveProperty("lower");
  });
});
