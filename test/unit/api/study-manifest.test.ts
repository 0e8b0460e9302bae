import { describe, expect, it } from "vitest";
import { checkManifestFile, studyTrainerConfig } from "../../../api/v1alpha1/index.ts";

const study = (spec: string) => `apiVersion: distillation.mokd.io/v1alpha1
kind: DistillationStudy
metadata:
  name: pilot
spec:
${spec}`;

describe("a DistillationStudy manifest checked as the apiserver would", () => {
  it("accepts a valid study, every default applied", () => {
    const [checked] = checkManifestFile(
      study("  template:\n    output: { uri: s3://bucket/pilot }\n  seeds: [1, 2]"),
    );
    expect(checked!.errors).toEqual([]);
    expect(checked!.study!.spec.variants.automatic).toEqual(["mokd", "mokd-amortized"]);
    expect(checked!.job).toBeUndefined();
  });

  it("names every bad field: unknown ones in the template, cross-field rules", () => {
    const [checked] = checkManifestFile(
      study("  template:\n    trainig: {}\n  seeds: [3, 3]\n  variants: { fixedAlphas: [0] }"),
    );
    const fields = checked!.errors.map((e) => e.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        "spec.template.trainig",
        "spec.seeds",
        "spec.template.output",
        "spec.variants.fixedAlphas.0",
      ]),
    );
    expect(checked!.study).toBeUndefined();
  });

  it("still refuses other kinds, naming both it accepts", () => {
    const [checked] = checkManifestFile(
      "apiVersion: distillation.mokd.io/v1alpha1\nkind: Distillation\nmetadata: {name: x}\nspec: {}",
    );
    expect(checked!.errors[0]).toMatchObject({
      field: "kind",
      message: expect.stringContaining("DistillationJob or DistillationStudy"),
    });
  });

  it("gives the pods the template's trainer part only (runtime is the operator's)", () => {
    const [checked] = checkManifestFile(
      study(
        "  template:\n    runtime: { gpus: 1, volumes: { output: { claimName: shared } } }\n  seeds: [1]",
      ),
    );
    const config = studyTrainerConfig(checked!.study!) as {
      kind: string;
      spec: { template: Record<string, unknown>; seeds: number[] };
    };
    expect(config.kind).toBe("DistillationStudy");
    expect(config.spec.template.runtime).toBeUndefined();
    expect(config.spec.template.training).toBeDefined();
    expect(config.spec.seeds).toEqual([1]);
  });
});
