// The quality bench's study machinery behind the evidence study: the teacher's test accuracy (trained now or
// reused), `backend: auto` by the trainer's own rule, learning-rate grids and the sum-log grid, and the
// analysis that makes every choice on validation and reports test once, with t-intervals and Holm.
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { analyseAdaptation } from "../../../../trainer/bench/evidence/adaptation.ts";
import { analyseBestLoss } from "../../../../trainer/bench/evidence/best-loss.ts";
import {
  chooseOnValidation,
  configurations,
  lateValidationGain,
} from "../../../../trainer/bench/evidence/choices.ts";
import { analyseCost } from "../../../../trainer/bench/evidence/cost.ts";
import { costMarkdown } from "../../../../trainer/bench/evidence/markdown.ts";
import { analysePairs } from "../../../../trainer/bench/evidence/pairs.ts";
import { analyseSchedule } from "../../../../trainer/bench/evidence/schedule.ts";
import { analyse } from "../../../../trainer/bench/evidence/setting.ts";
import type { Run } from "../../../../trainer/bench/quality-report.ts";
import { holm, pairedInterval, tQuantile } from "../../../../trainer/bench/stats.ts";
import { settingLearningRates, Study, studyMethods } from "../../../../trainer/bench/study.ts";
import { obtainTeacher, studyWorkload, teacherSpec } from "../../../../trainer/bench/teacher.ts";
import { autoOrder, selectBackend } from "../../../../trainer/src/backend/index.ts";
import { forwardMacsPerSample } from "../../../../trainer/src/backend/workload.ts";
import { loadDataset } from "../../../../trainer/src/data/index.ts";
import { evaluateAccuracy } from "../../../../trainer/src/engine/evaluate.ts";
import { loadTeacherAsData } from "../../../../trainer/src/engine/teacher.ts";
import { tempDir } from "../../../fixtures/dataset-files.ts";
import { writeTinyIdx } from "../../../fixtures/tiny-run.ts";

const studyOf = (data: string, cacheDir: string, extra: Record<string, unknown> = {}) =>
  Study.parse({
    name: "t",
    data: { path: data, validationSplit: 0.125 },
    cacheDir,
    teacher: {
      spec: { architecture: "mlp", width: 16, depth: 1, hiddenUnits: 16, epochs: 2, learningRate: 0.01 },
    },
    settings: [{ name: "s", trainSamples: 64, student: { architecture: "mlp", width: 4 }, training: {} }],
    seeds: { count: 1 },
    losses: [{ name: "kd", objectives: {}, grid: [{ alpha: 0.5 }] }],
    ...extra,
  });

describe("bench teacher", () => {
  const data = writeTinyIdx(256, 64);
  const cache = tempDir("mokd-bench-cache-");
  beforeAll(async () => {
    await selectBackend("cpu", () => {});
  });
  afterAll(() => rmSync(cache, { recursive: true, force: true }));

  it("reports a freshly trained teacher's test accuracy (it read 0.00%), and the same when reused", async () => {
    const study = studyOf(data, cache);
    const dataset = await loadDataset(teacherSpec(study).data);
    const fresh = await obtainTeacher(study, dataset, () => {});
    expect(fresh.trainedNow).toBe(true);
    const loaded = await loadTeacherAsData(fresh.dir, undefined, dataset, { info: () => {}, warn: () => {} });
    const independent = evaluateAccuracy(loaded, dataset.test, 16);
    loaded.model.dispose();
    expect(independent).toBeGreaterThan(0.3); // banded images: learnable, well above 1/4 chance
    expect(fresh.testAccuracy).toBe(independent);
    const reused = await obtainTeacher(study, dataset, () => {});
    expect(reused).toMatchObject({ trainedNow: false, seconds: 0, testAccuracy: independent });
  });
});

describe("bench backend: auto", () => {
  const shape = { inputShape: [28, 28, 1] as [number, number, number], numClasses: 10 };
  const study = Study.parse({
    name: "t",
    data: {},
    teacher: { spec: { architecture: "cnn", width: 32, depth: 2, hiddenUnits: 128 }, batchSize: 64 },
    settings: [
      {
        name: "small",
        trainSamples: 10,
        student: { architecture: "mlp", width: 64, depth: 1, hiddenUnits: 32 },
        training: { batchSize: 64 },
      },
    ],
    seeds: { count: 1 },
    losses: [{ name: "kd", objectives: {}, grid: [{ alpha: 0.5 }] }],
  });

  it("weighs the students, and the teacher only when it is trained now, as a run does", () => {
    const student = forwardMacsPerSample(
      { architecture: "mlp", width: 64, depth: 1, hiddenUnits: 32 },
      shape.inputShape,
      10,
    );
    const onlyStudent = studyWorkload(study, study.settings, shape, false)!;
    expect(onlyStudent.forwardMacsPerBatch).toBe(student * 64);
    expect(autoOrder(false, onlyStudent)[0]).toBe("wasm");
    const withTeacher = studyWorkload(study, study.settings, shape, true)!;
    expect(withTeacher.model).toBe("teacher");
    expect(autoOrder(false, withTeacher)[0]).toBe("tensorflow");
    expect(studyWorkload(study, [], shape, false)).toBeUndefined();
  });
});

describe("bench study grids", () => {
  it("runs every method at each learning rate of the grid, and the sum-log cells", () => {
    const study = studyOf("/nowhere", "/nowhere", {
      settings: [{ name: "s", trainSamples: 8, student: {}, training: {}, learningRates: [0.002, 0.008] }],
      losses: [{ name: "kd", objectives: {}, grid: [{ alpha: 0.5 }], logGrid: [{ alpha: 0.6 }] }],
      strategies: ["mokd", "mokd-normalized"],
    });
    expect(settingLearningRates(study.settings[0]!)).toEqual([0.002, 0.008]);
    const methods = studyMethods(study);
    expect(methods.map((m) => m.name)).toEqual([
      "student alone (CE)",
      "kd sum alpha=0.5",
      "kd sum-log alpha=0.6",
      "kd mokd",
      "kd mokd-normalized",
    ]);
    expect(methods[2]).toMatchObject({
      kind: "fixed-log",
      strategy: { name: "sum-log", weights: { distillation: 0.6 } },
    });
    const plain = studyOf("/nowhere", "/nowhere");
    expect(settingLearningRates(plain.settings[0]!)).toEqual([undefined]);
  });
  it("runs a loss's own strategy variants (overrides, a label) without a fixed grid", () => {
    const study = studyOf("/nowhere", "/nowhere", {
      alone: false,
      losses: [
        {
          name: "kd+feature",
          objectives: { feature: { enabled: true } },
          strategies: [
            "mokd",
            { name: "mokd", label: "mokd projector=own", strategy: { projectorUpdate: "own" } },
          ],
        },
      ],
      strategies: ["mokd-amortized"],
    });
    const methods = studyMethods(study);
    expect(methods.map((m) => m.name)).toEqual(["kd+feature mokd", "kd+feature mokd projector=own"]);
    expect(methods[1]).toMatchObject({
      kind: "auto",
      loss: "kd+feature",
      objectives: { feature: { enabled: true } },
      strategy: { name: "mokd", projectorUpdate: "own" },
    });
  });
});

/** A run with the given accuracies (points). */
function run(method: string, kind: Run["kind"], lr: number, seed: number, val: number, test: number): Run {
  return {
    setting: "s",
    method: `${method} lr=${lr}`,
    baseMethod: method,
    learningRate: lr,
    kind,
    loss: kind === "alone" ? undefined : method.split(" ")[0],
    seed,
    testAccuracy: test / 100,
    bestValidationAccuracy: val / 100,
    epochsToTarget: null,
    secondsPerEpoch: 1,
    conflictRate: 0,
    validationCurve: [
      [10, (val - 2) / 100],
      [20, val / 100],
    ],
  };
}

describe("evidence analysis", () => {
  it("chooses on validation, never on test", () => {
    const runs = [1, 2, 3].flatMap((seed) => [
      run("kd sum alpha=0.5", "fixed", 0.002, seed, 80, 90), // best test, worse validation
      run("kd sum alpha=0.9", "fixed", 0.002, seed, 81, 85),
    ]);
    const { configs } = configurations(runs);
    const choice = chooseOnValidation("best", configs);
    expect(choice.config.method).toBe("kd sum alpha=0.9");
    expect(choice.edges).toEqual(["alpha 0.9 at the edge of 0.5/0.9"]);
  });

  it("the student alone is the KD grid's alpha 0: the lowest cell next to it is not flagged as an edge", () => {
    const cells = (seed: number) => [
      run("kd sum alpha=0.1", "fixed", 0.005, seed, 82, 82),
      run("kd sum alpha=0.5", "fixed", 0.005, seed, 81, 81),
      run("kd mokd", "auto", 0.005, seed, 81, 81),
    ];
    const without = analyse("s", [1, 2].flatMap(cells), 0.005, 10).choices[0]!;
    expect(without.edges).toEqual(["alpha 0.1 at the edge of 0.1/0.5"]);
    const withAlone = [1, 2].flatMap((seed) => [
      ...cells(seed),
      run("student alone (CE)", "alone", 0.005, seed, 80, 80),
    ]);
    const chosen = analyse("s", withAlone, 0.005, 10).choices.find((c) => c.label.startsWith("best fixed"))!;
    expect(chosen.config.method).toBe("kd sum alpha=0.1");
    expect(chosen.edges).toEqual([]);
  });

  it("the plateau: validation gained from the last evaluation at or before 75% of the steps to the last", () => {
    const r = run("kd mokd", "auto", 0.005, 1, 80, 80);
    r.validationCurve = [
      [10, 0.5],
      [20, 0.6],
      [30, 0.7],
      [40, 0.725],
    ];
    expect(lateValidationGain(r)).toBeCloseTo(2.5, 10); // 0.725 - 0.7 (step 30 = 75% of 40)
    r.validationCurve = [
      [10, 0.5],
      [29, 0.7],
      [31, 0.71],
      [40, 0.72],
    ];
    expect(lateValidationGain(r)).toBeCloseTo(2, 10); // from step 29, the last at or before 30
    expect(lateValidationGain({ ...r, validationCurve: [] })).toBeNaN();
    const a = analyse(
      "s",
      [1, 2].flatMap((s) => [
        run("kd sum alpha=0.5", "fixed", 0.005, s, 80, 80),
        run("kd mokd", "auto", 0.005, s, 81, 81),
      ]),
      0.005,
      10,
    );
    // run()'s curve: (val - 2) at step 10, val at step 20: 7.5 <= 10, so the gain is the last evaluation's 2 points
    expect(a.plateau).toHaveLength(a.choices.length);
    for (const p of a.plateau) expect(p.gain).toBeCloseTo(2, 10);
  });

  it("uses only seeds every configuration finished, and pairs the headline comparisons by seed", () => {
    const methods: [string, Run["kind"]][] = [
      ["student alone (CE)", "alone"],
      ["kd sum alpha=0.5", "fixed"],
      ["kd sum alpha=0.9", "fixed"],
      ["kd sum-log alpha=0.6", "fixed-log"],
      ["kd mokd", "auto"],
      ["kd mokd-normalized", "auto"],
      ["kd mokd-amortized", "auto"],
    ];
    const runs = [1, 2, 3].flatMap((seed) =>
      [0.002, 0.008].flatMap((lr) =>
        methods.map(([m, kind]) => {
          const bonus = (m === "kd mokd" ? 1 : 0) + (lr === 0.008 ? 2 : 0);
          return run(m, kind, lr, seed, 80 + bonus, 80 + bonus + seed * (m === "kd mokd" ? 0.1 : 0));
        }),
      ),
    );
    runs.push(run("kd mokd", "auto", 0.002, 4, 99, 99)); // seed 4 is incomplete: left out
    const a = analyse("s", runs, 0.002, 10);
    expect(a.seeds).toEqual([1, 2, 3]);
    const headline = a.comparisons[0]!;
    expect(headline.claim).toBe("better than tuned KD");
    expect(headline.a.config.learningRate).toBe(0.008);
    // mokd - best fixed: 1 + 0.1 seed -> 1.1, 1.2, 1.3: mean 1.2, sd 0.1
    expect(headline.interval.mean).toBeCloseTo(1.2, 10);
    const half = (tQuantile(0.95, 2) * 0.1) / Math.sqrt(3);
    expect(headline.interval.high - headline.interval.mean).toBeCloseTo(half, 10);
    expect(a.comparisons.every((c) => c.holmP >= c.interval.p || Number.isNaN(c.interval.p))).toBe(true);
  });

  it("the adaptation module: each mokd variant's LR chosen on validation, paired by seed against mokd", () => {
    const variants = ["kd mokd", "kd+feature mokd", "kd+feature mokd projector=own"];
    const runs = [1, 2, 3].flatMap((seed) =>
      [0.002, 0.008].flatMap((lr) =>
        variants.map((m, v) => {
          // The feature variant is best at 0.008 on validation but better at 0.002 on test: validation decides.
          const val = 80 + v + (v === 1 && lr === 0.008 ? 3 : 0);
          const test = 80 + (v === 1 ? (lr === 0.002 ? 5 : 0.5 + 0.1 * seed) : 0);
          return run(m, "auto", lr, seed, val, test);
        }),
      ),
    );
    runs.push(run("kd+feature mokd", "auto", 0.002, 4, 99, 99)); // seed 4 is incomplete: left out
    const a = analyseAdaptation("s", runs, "kd", "kd+feature", 0.002);
    expect(a.seeds).toEqual([1, 2, 3]);
    const [helps, atDefault, own] = a.comparisons;
    expect(helps!.a.config).toMatchObject({ method: "kd+feature mokd", learningRate: 0.008 });
    expect(helps!.interval.mean).toBeCloseTo(0.7, 10); // 0.6, 0.7, 0.8
    expect(atDefault!.interval.mean).toBeCloseTo(5, 10);
    expect(own!.b.config.method).toBe("kd+feature mokd");
    expect(own!.interval.mean).toBeCloseTo(-0.7, 10);
    expect(a.comparisons.every((c) => c.holmP >= c.interval.p)).toBe(true);
  });

  it("the adaptation module under FAMO, when both FAMO configurations ran: chosen on validation, paired by seed", () => {
    const variants = ["kd mokd", "kd+feature mokd", "kd+feature mokd projector=own"];
    const famo = ["kd mokd-amortized", "kd+feature mokd-amortized"];
    const runs = [1, 2, 3].flatMap((seed) =>
      [0.002, 0.008].flatMap((lr) => [
        ...variants.map((m) => run(m, "auto", lr, seed, 80, 80)),
        // FAMO with the module: best on validation at 0.008, where it is 0.4 + 0.1 seed points better on test.
        ...famo.map((m, v) =>
          run(
            m,
            "auto",
            lr,
            seed,
            80 + (v === 1 && lr === 0.008 ? 1 : 0),
            80 + (v === 1 && lr === 0.008 ? 0.4 + 0.1 * seed : 0),
          ),
        ),
      ]),
    );
    const a = analyseAdaptation("s", runs, "kd", "kd+feature", 0.002);
    expect(a.comparisons).toHaveLength(4);
    const underFamo = a.comparisons[3]!;
    expect(underFamo.question).toContain("FAMO");
    expect(underFamo.a.config).toMatchObject({ method: "kd+feature mokd-amortized", learningRate: 0.008 });
    expect(underFamo.interval.mean).toBeCloseTo(0.6, 10);
    // Without the FAMO runs the analysis is as before: three comparisons.
    const withoutFamo = runs.filter((r) => !r.method.includes("amortized"));
    expect(analyseAdaptation("s", withoutFamo, "kd", "kd+feature", 0.002).comparisons).toHaveLength(3);
  });

  it("a reduced study (one LR, no controls) compares what ran, each distinct pair once", () => {
    const runs = [1, 2, 3].flatMap((seed) => [
      run("kd sum alpha=0.5", "fixed", 0.005, seed, 80, 80),
      run("kd sum alpha=0.9", "fixed", 0.005, seed, 81, 81),
      run("kd mokd", "auto", 0.005, seed, 82, 82 + seed / 10),
    ]);
    const a = analyse("s", runs, 0.005, 10);
    // "no tuning needed" is the same pair as "better than tuned KD" at one LR; LR rows compare a config to itself.
    expect(a.comparisons.map((c) => c.claim)).toEqual([
      "better than tuned KD; no tuning needed; no tuning needed (weighting only)",
      "fewer epochs",
    ]);
    expect(a.comparisons[0]!.interval.mean).toBeCloseTo(1.2, 10);
    expect(a.choices.map((c) => c.label)).toEqual([
      "best fixed cell, alpha and LR tuned",
      "best fixed cell at the default LR",
      "published weighting (alpha 0.9), LR tuned",
      "mokd, LR tuned",
      "mokd at the default LR (untuned)",
    ]);
  });

  it("the published weighting is the cell the study labels so (each loss its own), alpha 0.9 when none is", () => {
    const runs = [1, 2].flatMap((seed) => [
      run("lskd sum alpha=0.9", "fixed", 0.005, seed, 81, 81),
      run("lskd sum alpha=0.99 (published)", "fixed", 0.005, seed, 80, 80),
      run("lskd mokd", "auto", 0.005, seed, 82, 82),
    ]);
    const published = analyse("s", runs, 0.005, 10).choices.find((c) => c.label.startsWith("published"))!;
    expect(published.label).toBe("published weighting (alpha 0.99), LR tuned");
    expect(published.config.method).toBe("lskd sum alpha=0.99 (published)");
  });

  it("the best loss: mokd's loss and the best fixed cell of any loss both chosen on validation, never on test", () => {
    const runs = [1, 2, 3].flatMap((seed) => [
      // kd's cell wins on validation, lskd's on test: the choice must be kd's.
      run("kd sum alpha=0.5", "fixed", 0.005, seed, 84, 80),
      run("lskd sum alpha=0.9", "fixed", 0.005, seed, 83, 90),
      run("kd mokd", "auto", 0.005, seed, 82, 81 + seed / 10),
      run("kd mokd", "auto", 0.002, seed, 80, 79),
      // lskd's mokd wins on validation at 0.002 only, loses on test.
      run("lskd mokd", "auto", 0.005, seed, 81, 95),
      run("lskd mokd", "auto", 0.002, seed, 81.5, 78),
      run("student alone (CE)", "alone", 0.005, seed, 70, 70),
    ]);
    const a = analyseBestLoss("s", runs, ["kd", "lskd"], 0.002, 10);
    expect(a.seeds).toEqual([1, 2, 3]);
    expect(a.choices.slice(0, 3).map((c) => `${c.config.method} @ ${c.config.learningRate}`)).toEqual([
      "kd sum alpha=0.5 @ 0.005",
      "kd mokd @ 0.005",
      "lskd mokd @ 0.002",
    ]);
    // Each loss's own claims join the any-loss ones in one Holm family, each distinct pair once: kd holds both
    // any-loss choices, and lskd's mokd chose the default rate, so its two point rows are one pair.
    expect(a.comparisons.map((c) => c.claim)).toEqual([
      "better than tuned KD (any loss); better than tuned KD (kd)",
      "no tuning needed (any loss)",
      "no tuning needed (kd)",
      "fewer epochs (kd)",
      "better than tuned KD (lskd); no tuning needed (lskd)",
      "fewer epochs (lskd)",
    ]);
    expect(a.comparisons[4]!.interval.mean).toBeCloseTo(-12, 10); // lskd mokd @ 0.002 (78) - its cell (90)
    const ps = a.comparisons.map((c) => c.interval.p);
    expect(a.comparisons.map((c) => c.holmP)).toEqual(holm(ps));
    // When one loss holds both any-loss choices, its own row is that pair: counted once in Holm.
    const one = analyseBestLoss("s", runs, ["kd"], 0.002, 10);
    expect(one.comparisons.map((c) => c.claim)).toEqual([
      "better than tuned KD (any loss); better than tuned KD (kd)",
      "no tuning needed (any loss); no tuning needed (kd)",
      "fewer epochs (kd)",
    ]);
    expect(a.comparisons[0]!.interval.mean).toBeCloseTo(1.2, 10); // 81.2 - 80 on test
    expect(a.comparisons[1]!.interval.mean).toBeCloseTo(-2, 10); // 78 - 80
    // The student alone takes no part in the choice.
    expect(a.choices.some((c) => c.config.kind === "alone")).toBe(false);
  });

  it("variants against their bases: each one's LR on validation, paired by seed, Holm over the pairs", () => {
    const runs = [1, 2, 3, 4].flatMap((seed) => [
      run("kd mokd", "auto", 0.002, seed, 80, 80),
      run("kd mokd", "auto", 0.005, seed, 81, 79),
      run("kd mokd minWeight=0.1", "auto", 0.002, seed, 82, 80 + seed / 10),
      run("kd mokd minWeight=0.1", "auto", 0.005, seed, 81, 90),
    ]);
    const a = analysePairs("s", runs, [["kd mokd minWeight=0.1", "kd mokd"]]);
    expect(a.choices.map((c) => c.config.learningRate)).toEqual([0.002, 0.005]);
    expect(a.comparisons).toHaveLength(1);
    expect(a.comparisons[0]!.interval.mean).toBeCloseTo(1.25, 10); // 80.25 - 79
    expect(a.comparisons[0]!.holmP).toBe(a.comparisons[0]!.interval.p);
    // A side of several variants: one of them, and its rate, chosen on validation.
    const grid = [1, 2].flatMap((seed) => [
      run("kd mokd", "auto", 0.002, seed, 80, 80),
      run("kd sum feature=0.1", "auto", 0.002, seed, 79, 95),
      run("kd sum feature=1", "auto", 0.005, seed, 81, 78),
    ]);
    const g = analysePairs("s", grid, [["kd sum feature=0.1|kd sum feature=1", "kd mokd"]]);
    expect(g.choices[0]!.config.method).toBe("kd sum feature=1");
    expect(g.comparisons[0]!.interval.mean).toBeCloseTo(-2, 10);
  });

  it("a longer schedule: each configuration against itself at the shorter one, methods against the cell", () => {
    const at = (setting: string, r: Run): Run => ({ ...r, setting });
    const runs = [1, 2, 3].flatMap((seed) => [
      at("short", run("kd sum alpha=0.1", "fixed", 0.005, seed, 90, 90)),
      at("short", run("kd sum alpha=0.1", "fixed", 0.01, seed, 95, 95)), // not run longer: not compared
      at("short", run("kd mokd", "auto", 0.005, seed, 89, 89)),
      at("long", run("kd sum alpha=0.1", "fixed", 0.005, seed, 91, 90 + seed)),
      at("long", run("kd mokd", "auto", 0.005, seed, 90, 90)),
    ]);
    // Seed 3 of the longer schedule is missing for mokd: only seeds both schedules finished are paired.
    const a = analyseSchedule("long", "short", runs.slice(0, -1));
    expect(a.seeds).toEqual([1, 2]);
    expect(a.comparisons.map((c) => c.question)).toEqual([
      "kd sum alpha=0.1: long vs short",
      "kd mokd: long vs short",
      "kd mokd vs kd sum alpha=0.1",
    ]);
    const means = [1.5, 1, -1.5]; // 91.5 - 90, 90 - 89, 90 - 91.5
    a.comparisons.forEach((c, i) => expect(c.interval.mean).toBeCloseTo(means[i]!, 10));
    expect(a.comparisons.map((c) => c.interval.n)).toEqual([2, 2, 2]);
    expect(a.choices.every((c) => c.config.learningRate === 0.005)).toBe(true);
    for (const p of a.plateau) expect(p.gain).toBeCloseTo(2, 10); // the fixture's curves gain 2 points at the end
  });

  it("the study's cost: runs, configurations and seeds per setting, recorded hours and the median run", () => {
    const timed = (r: Run, seconds?: number): Run => ({ ...r, seconds });
    const runs = [
      timed(run("kd mokd", "auto", 0.002, 1, 80, 80), 100),
      timed(run("kd mokd", "auto", 0.002, 2, 80, 80), 300),
      timed(run("kd mokd", "auto", 0.005, 1, 80, 80), 3200),
      timed(run("kd sum alpha=0.1", "fixed", 0.002, 1, 80, 80)), // an older file: no wall time
      { ...timed(run("kd mokd", "auto", 0.002, 1, 80, 80), 7), setting: "t" },
    ];
    const [s, t] = analyseCost(runs);
    expect(s).toEqual({
      setting: "s",
      runs: 4,
      configurations: 3,
      seeds: 2,
      timed: 3,
      hours: 1,
      medianSeconds: 300,
    });
    expect(t!.medianSeconds).toBe(7);
    const md = costMarkdown([s!, t!]);
    expect(md).toContain("| s | 4 (3 timed) | 3 | 2 | 1.0 | 300.0 |");
    expect(md).toContain("| all | 5 | | | 1.0 | |");
  });

  it("paired t-interval and Holm against hand values", () => {
    const i = pairedInterval(
      new Map([
        [1, 2],
        [2, 4],
        [3, 6],
      ]),
      new Map([
        [1, 1],
        [2, 2],
        [3, 3],
      ]),
    );
    // diffs 1, 2, 3: mean 2, se 1/sqrt(3), t = 2 sqrt(3) = 3.464 on 2 df: p = 0.0742, half-width 4.303/sqrt(3)
    expect(i.mean).toBe(2);
    expect(i.p).toBeCloseTo(0.0742, 4);
    expect(i.high).toBeCloseTo(2 + 4.302653 / Math.sqrt(3), 5);
    expect(holm([0.01, 0.04, 0.03, 0.005])).toEqual([0.03, 0.06, 0.06, 0.02]);
  });
});
