// The quality benchmark's study expansion and statistics (trainer/bench): what the published tables are made of.
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { TrainerSpec, parseTrainerSpec, unknownFields } from "../../../../api/v1alpha1/index.ts";
import { paired, se, sd } from "../../../../trainer/bench/stats.ts";
import { loadStudy, studyMethods, Study } from "../../../../trainer/bench/study.ts";

describe("bench study", () => {
  it("crosses every loss with its fixed grid and the automatic weightings, after the student alone", () => {
    const study = Study.parse({
      name: "t",
      data: {},
      teacher: { spec: {} },
      settings: [{ name: "s", trainSamples: 10, student: {}, training: {} }],
      seeds: { count: 2 },
      losses: [
        { name: "kd", objectives: { distillation: { loss: "kd" } }, grid: [{ alpha: 0.3 }, { alpha: 0.7 }] },
        { name: "dist", objectives: { distillation: { loss: "dist" } }, grid: [{ alpha: 0.5 }] },
      ],
    });
    const methods = studyMethods(study);
    expect(methods.map((m) => m.name)).toEqual([
      "student alone (CE)",
      "kd sum alpha=0.3",
      "kd sum alpha=0.7",
      "kd mokd",
      "kd mokd-amortized",
      "dist sum alpha=0.5",
      "dist mokd",
      "dist mokd-amortized",
    ]);
    expect(methods[2]!.strategy).toEqual({
      name: "sum",
      weights: { task: 0.30000000000000004, distillation: 0.7 },
    });
    expect(methods[6]!.objectives).toEqual({ distillation: { loss: "dist" } });
  });

  it("ships studies whose every method is a spec the trainer knows completely", () => {
    // Every shipped study but evidence-minweight, whose option (strategy.mokdMinWeight) the study itself removed.
    const studies = readdirSync("trainer/bench/studies")
      .map((f) => f.replace(/\.yaml$/, ""))
      .filter((f) => f !== "evidence-minweight");
    expect(studies.length).toBeGreaterThanOrEqual(20);
    for (const file of studies) {
      const study = loadStudy(`trainer/bench/studies/${file}.yaml`);
      // The converged setting's first file ran 3 seeds and was extended by --first-seed ranges.
      if (file !== "evidence-converged") expect(study.seeds.count, file).toBeGreaterThanOrEqual(5);
      for (const setting of study.settings) {
        for (const m of studyMethods(study)) {
          const value = {
            data: study.data,
            student: setting.student,
            training: setting.training,
            objectives: m.objectives,
            strategy: m.strategy,
          };
          expect(unknownFields(TrainerSpec, value), `${file} ${m.name}`).toEqual([]);
          expect(() => parseTrainerSpec(value)).not.toThrow();
        }
      }
    }
  });
});

describe("bench statistics", () => {
  it("pairs by seed and gives the standard error of the differences", () => {
    const a = new Map([
      [1, 80],
      [2, 82],
      [3, 81],
      [9, 99], // no partner: left out
    ]);
    const b = new Map([
      [1, 79],
      [2, 82],
      [3, 79],
    ]);
    const d = paired(a, b);
    expect(d).toMatchObject({ n: 3, wins: 2, ties: 1 });
    expect(d.mean).toBeCloseTo(1, 12);
    // diffs 1, 0, 2: sd 1, se 1/sqrt(3)
    expect(d.se).toBeCloseTo(1 / Math.sqrt(3), 12);
    expect(sd([1, 0, 2])).toBeCloseTo(1, 12);
    expect(se([5])).toBe(0);
  });
});
