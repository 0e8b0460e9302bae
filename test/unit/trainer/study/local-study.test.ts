import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { DistillationStudy, Result, StudyLayout } from "../../../../api/v1alpha1/index.ts";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import { baselinesStudy, studyFromManifest, type StudyConfig } from "../../../../trainer/src/study/config.ts";
import { runStudyLocally } from "../../../../trainer/src/study/local.ts";
import { runTeacherStage } from "../../../../trainer/src/study/teacher-pass.ts";
import { runVariantStage } from "../../../../trainer/src/study/variant.ts";
import { tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

const quiet = { info: () => {}, warn: () => {} };
let data: string;

beforeAll(async () => {
  await selectBackend("cpu", () => {});
  data = writeTinyIdx();
});

/** A tiny study: the tiny job as template (trained mlp teacher), `variants`, `seeds`, its own directory. */
function tinyStudy(
  out: string,
  spec: Record<string, unknown>,
  teacher: Record<string, unknown> = {},
): StudyConfig {
  const template = tinyJob(data, out, { epochs: 1 }).spec;
  const manifest = DistillationStudy.parse({
    apiVersion: "distillation.mokd.io/v1alpha1",
    kind: "DistillationStudy",
    metadata: { name: "tiny-study", namespace: "tests" },
    spec: {
      template: {
        ...template,
        teacher: { ...template.teacher, ...teacher },
        output: { ...template.output, compression: { enabled: false } },
        runtime: { volumes: { output: { claimName: "shared" } } },
      },
      ...spec,
    },
  });
  return studyFromManifest(manifest, "test", {});
}

const json = (path: string) => JSON.parse(readFileSync(path, "utf8"));

describe("a study run locally, every stage in one process", () => {
  it("trains the teacher once, feeds every variant from the shared pass and writes the report", async () => {
    const out = mkdtempSync(join(tmpdir(), "mokd-study-"));
    const config = tinyStudy(out, {
      variants: { automatic: ["mokd"], fixedAlphas: [0.9], studentAlone: true },
      seeds: [1, 2],
    });
    const shared = join(out, "output");
    const { answer, exitCode } = await runStudyLocally({
      config,
      backend: "cpu",
      log: quiet,
      metricsPort: 0,
    });
    expect(exitCode).toBe(0);
    expect([answer.runs, answer.succeeded, answer.failed]).toEqual([6, 6, 0]);
    // Counted from the stages' own records: one training of the teacher, every variant fed from the pass.
    expect(answer.teacher.trainings).toBe(1);
    expect(json(join(shared, StudyLayout.teacherSummary(0)))).toMatchObject({
      teacher: "trained",
      teacherTrainings: 1,
    });
    for (const v of config.variants) {
      const summary = json(join(shared, StudyLayout.variantSummary(v.name)));
      expect(summary.study).toMatchObject({
        name: v.name,
        seed: v.seed,
        teacherOutputs: v.method === "alone" ? "none" : "shared",
      });
    }
    // The answer: arms over their seeds, the best chosen on validation, mokd paired against the fixed cell.
    expect(answer.arms!.map((a) => [a.arm, a.seeds])).toEqual([
      ["alone", 2],
      ["mokd", 2],
      ["kd@0.9", 2],
    ]);
    const bestVal = Math.max(...answer.arms!.map((a) => a.meanValidationAccuracy));
    expect(answer.best!.meanValidationAccuracy).toBe(bestVal);
    expect(answer.comparisons).toEqual([
      expect.objectContaining({ arm: "mokd", against: "kd@0.9", pairs: 2 }),
    ]);
    expect(answer.cost.gridDeviceSeconds).toBeGreaterThan(0);
    expect(answer.curves).toHaveLength(6);
    const html = readFileSync(join(shared, StudyLayout.report), "utf8");
    expect(html).toContain("Best on validation");
    expect(html).toContain("mokd vs kd@0.9");
    expect(json(join(shared, StudyLayout.studySummary)).succeeded).toBe(6);

    // A retried teacher pod finds its shard complete: it recomputes nothing and trains nothing.
    const again = await runTeacherStage({ config, index: 0, backend: "cpu", log: quiet, metricsPort: 0 });
    expect(again).toMatchObject({ teacher: "reused", teacherTrainings: 0 });

    // A variant pod's termination message carries what the study's status needs.
    const terminationLog = join(out, "termination-log");
    await runVariantStage({ config, index: 2, backend: "cpu", log: quiet, metricsPort: 0, terminationLog });
    const result = Result.parse(json(terminationLog));
    expect(result).toMatchObject({ variant: "mokd-s1", teacherSource: "shared" });
    expect(result.bestValidationAccuracy).toBeGreaterThan(0);
  }, 120_000);

  it("shards the pass of a given teacher into the same outputs as one pass", async () => {
    const first = mkdtempSync(join(tmpdir(), "mokd-study-"));
    const base = tinyStudy(first, {
      variants: { automatic: [], fixedAlphas: [0.9], studentAlone: false },
      seeds: [1],
    });
    await runTeacherStage({ config: base, index: 0, backend: "cpu", log: quiet, metricsPort: 0 });
    const model = join(first, "output", StudyLayout.teacherModel, "model.json");
    expect(existsSync(model)).toBe(true);

    const rows = (dir: string, shards: number) =>
      Buffer.concat(
        [...Array(shards).keys()].map((i) => readFileSync(join(dir, "output", StudyLayout.teacherShard(i)))),
      );
    const outputs: Buffer[] = [];
    for (const shards of [1, 3]) {
      const out = mkdtempSync(join(tmpdir(), "mokd-study-"));
      const config = tinyStudy(
        out,
        {
          variants: { automatic: [], fixedAlphas: [0.9], studentAlone: false },
          seeds: [1],
          teacherShards: shards,
        },
        { model },
      );
      for (let i = 0; i < shards; i++) {
        const s = await runTeacherStage({ config, index: i, backend: "cpu", log: quiet, metricsPort: 0 });
        expect(s).toMatchObject({ teacher: "loaded", teacherTrainings: 0 });
      }
      outputs.push(rows(out, shards));
      // A variant reads all three shards back.
      await runVariantStage({ config, index: 0, backend: "cpu", log: quiet, metricsPort: 0 });
    }
    const [one, three] = outputs.map((b) => new Float32Array(new Uint8Array(b).buffer));
    expect(one!.length).toBe(224 * 4); // every training sample's 4 logits
    expect(three!.length).toBe(one!.length);
    const maxDiff = one!.reduce((m, v, i) => Math.max(m, Math.abs(v - three![i]!)), 0);
    expect(maxDiff).toBeLessThan(1e-5);
  }, 120_000);

  it("runs a job's --baselines as a one-seed study: its weighting, classic KD, the student alone", async () => {
    const out = mkdtempSync(join(tmpdir(), "mokd-baselines-"));
    const config = baselinesStudy(parseConfig(tinyJob(data, out, { epochs: 1 }), "test", {}));
    expect(config.variants.map((v) => v.name)).toEqual(["alone-s7", "mokd-s7", "kd@0.5-s7"]);
    const { answer } = await runStudyLocally({ config, backend: "cpu", log: quiet, metricsPort: 0 });
    expect([answer.succeeded, answer.teacher.trainings]).toEqual([3, 1]);
  }, 120_000);
});
