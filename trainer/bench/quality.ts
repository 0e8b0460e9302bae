// Distillation quality, driven by a study file (trainer/bench/studies/*.yaml): ONE teacher (trained once per
// fingerprint of its spec and data, saved under the study's cacheDir and reused), then for every student setting,
// seed and method the student trained against it. Methods: the student alone, and every loss crossed with a
// fixed-weight grid (`sum`) and the automatic weightings (mokd, mokd-amortized). The teacher's outputs are
// computed once per setting and shared by its runs. Prints the study used, then per setting mean ± standard error
// of the test accuracy and differences paired by seed; writes JSON after every run (--resume continues a file).
// A script, not a test: minutes to an hour depending on the study.
//   node trainer/bench/quality.ts [--study trainer/bench/studies/small.yaml] [--out out/bench/quality.json]
//     [--seeds N] [--first-seed S] [--resume] [--methods "kd,dkd mokd"] (substrings of method names) [--settings name,...] (exact)
//   node trainer/bench/quality.ts --report out/a.json,out/b.json   (the report of results files, no training)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import type { TrainerSpec } from "../../api/v1alpha1/index.ts";
import { selectBackend, type BackendPreference } from "../src/backend/index.ts";
import type { Network } from "../src/contracts.ts";
import { loadDataset, type LoadedDataset } from "../src/data/index.ts";
import { trainStudent } from "../src/engine/student.ts";
import { epochsToTarget } from "../src/engine/build-summary.ts";
import { loadTeacherAsData } from "../src/engine/teacher.ts";
import { planTeacherCache, TeacherOutputCache } from "../src/engine/teacher-cache.ts";
import { loadStudy, merge, settingLearningRates, studyMethods, type Method, type Study } from "./study.ts";
import { report, type Run } from "./quality-report.ts";
import {
  benchSpec as spec,
  hash,
  obtainTeacher,
  studyWorkload,
  teacherCached,
  teacherSpec,
  type BenchTeacher,
} from "./teacher.ts";

const { values: args } = parseArgs({
  options: {
    study: { type: "string", default: "trainer/bench/studies/small.yaml" },
    out: { type: "string" },
    seeds: { type: "string" },
    "first-seed": { type: "string" },
    resume: { type: "boolean", default: false },
    methods: { type: "string" },
    settings: { type: "string" },
    report: { type: "string" },
  },
});

const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);
const quiet = { info: () => {}, warn: (m: string) => log(`warn: ${m}`) };

function studentSpec(
  study: Study,
  setting: Study["settings"][number],
  method: Method,
  seed: number,
  learningRate?: number,
): TrainerSpec {
  const lr = learningRate === undefined ? {} : { learningRate };
  return spec(
    {
      data: { ...study.data, maxTrainSamples: setting.trainSamples },
      student: setting.student,
      training: merge(setting.training, { seed, targetAccuracy: study.target, ...lr }),
      objectives: method.objectives,
      strategy: method.strategy,
      metrics: { port: 0 },
    },
    method.name,
  );
}

/** The teacher's outputs on a setting's training split, computed once and shared by every run of it. */
class SharedTeacherOutputs {
  private readonly caches = new Map<string, TeacherOutputCache | undefined>();
  private readonly teacher: Network;

  constructor(teacher: Network) {
    this.teacher = teacher;
  }

  async for(
    setting: string,
    s: TrainerSpec,
    dataset: LoadedDataset,
  ): Promise<TeacherOutputCache | undefined> {
    const withFeatures = s.objectives.feature.enabled;
    const key = `${setting}:${withFeatures}`;
    if (this.caches.has(key)) return this.caches.get(key);
    const plan = planTeacherCache({
      mode: s.teacher.outputCache,
      samples: dataset.train.size,
      numClasses: this.teacher.numClasses,
      teacherFeatureDim: this.teacher.featureDim,
      needsFeatures: withFeatures,
      augmented: dataset.train.augments,
    });
    const cache = plan.use
      ? await TeacherOutputCache.fill(this.teacher, dataset.train, withFeatures, 256)
      : undefined;
    log(
      `teacher outputs for ${key}: ${plan.use ? "cached once for all runs" : `not cached (${plan.reason})`}`,
    );
    this.caches.set(key, cache);
    return cache;
  }
}

/** The items named in `filter` (comma-separated; exact names, or substrings with `exact` false); all if unset. */
function selected<T extends { name: string }>(items: T[], filter: string | undefined, exact = false): T[] {
  if (!filter) return items;
  const parts = filter.split(",").map((p) => p.trim());
  return items.filter((m) => parts.some((p) => m.name === p || (!exact && m.name.includes(p))));
}

interface Results {
  study: Study;
  studyHash: string;
  header: string;
  teacher: { dir: string; testAccuracy: number; trainSeconds: number };
  /** The backend the runs used (auto resolved by the trainer's rule). */
  backend?: string;
  runs: Run[];
}

function previousRuns(out: string, studyHash: string): Run[] {
  if (!args.resume || !existsSync(out)) return [];
  const previous = JSON.parse(readFileSync(out, "utf8")) as Results;
  if (previous.studyHash !== studyHash) throw new Error(`${out} holds another study (${previous.studyHash})`);
  return previous.runs;
}

async function runOne(
  study: Study,
  setting: Study["settings"][number],
  method: Method,
  seed: number,
  learningRate: number | undefined,
  context: { dataset: LoadedDataset; teacher: Network; shared: SharedTeacherOutputs },
): Promise<Run> {
  const s = studentSpec(study, setting, method, seed, learningRate);
  const gridded = setting.learningRates.length > 0;
  const teacherOutputs = await context.shared.for(setting.name, s, context.dataset);
  const run = await trainStudent(
    s,
    context.dataset,
    { network: context.teacher },
    {
      hooks: {},
      log: quiet,
      teacherOutputs,
    },
  );
  run.network.model.dispose();
  return {
    setting: setting.name,
    // With a learning-rate grid every (method, rate) is its own row of the report.
    method: gridded ? `${method.name} lr=${s.training.learningRate}` : method.name,
    baseMethod: method.name,
    learningRate: s.training.learningRate,
    loss: method.loss,
    kind: method.kind,
    seed,
    testAccuracy: run.accuracy,
    bestValidationAccuracy: run.best?.validationAccuracy ?? run.history.at(-1)?.validationAccuracy ?? 0,
    epochsToTarget: epochsToTarget(run.evaluations, study.target),
    secondsPerEpoch: run.history.reduce((a, r) => a + r.seconds, 0) / Math.max(1, run.history.length),
    conflictRate: run.measuredSteps ? run.conflictSteps / run.measuredSteps : 0,
    validationCurve: run.evaluations.map((e) => [e.step, e.validationAccuracy]),
  };
}

/** --report a.json,b.json: the report of results files (e.g. one per setting, or a partial run), no training. */
function reportOnly(files: string[]): void {
  const all = files.map((f) => JSON.parse(readFileSync(f, "utf8")) as Results);
  const runs = all.flatMap((r) => r.runs);
  const settings = [...new Set(runs.map((r) => r.setting))];
  const seeds = (s: string) => [...new Set(runs.filter((r) => r.setting === s).map((r) => r.seed))].join(",");
  const lines = all.map((r, i) => `${files[i]}: ${r.header.split("\n").at(-1)}`);
  lines.push(
    ...settings.map((s) => `${s}: ${runs.filter((r) => r.setting === s).length} runs, seeds ${seeds(s)}`),
  );
  process.stdout.write(`${lines.join("\n")}\n\n${report(runs, settings, all[0]!.study.target)}\n`);
}

async function main(): Promise<void> {
  if (args.report) return reportOnly(args.report.split(","));
  const study = loadStudy(args.study);
  if (args.seeds) study.seeds.count = Number(args.seeds);
  // Another range of seeds in another process (and results file): the analysis merges the files.
  if (args["first-seed"]) study.seeds.first = Number(args["first-seed"]);
  const out = args.out ?? `out/bench/quality-${study.name}.json`;
  const studyHash = hash(study);
  const started = Date.now();
  const methods = selected(studyMethods(study), args.methods);
  const settings = selected(study.settings, args.settings, true);
  // The data first, as a run does: auto's choice depends on the models' size, which depends on the input shape.
  const teacherData = await loadDataset(teacherSpec(study).data);
  const workload = studyWorkload(study, settings, teacherData, !teacherCached(study));
  const backend = await selectBackend(study.backend as BackendPreference, log, workload);
  const acquired: BenchTeacher = await obtainTeacher(study, teacherData, log);
  const seeds = Array.from({ length: study.seeds.count }, (_, i) => study.seeds.first + i);
  const runs = previousRuns(out, studyHash);
  const done = new Set(runs.map((r) => `${r.setting}|${r.method}|${r.seed}`));
  const header = () =>
    [
      `study ${args.study} (${study.name}, ${studyHash}):`,
      stringify(study).trimEnd(),
      `teacher: ${acquired.dir} (${acquired.trainedNow ? `trained now in ${(acquired.seconds / 60).toFixed(1)} min` : "reused"}), ` +
        `test accuracy ${(acquired.testAccuracy * 100).toFixed(2)}%`,
      `methods: ${methods.length}, settings: ${settings.map((s) => s.name).join(", ")}, seeds ${seeds.join(",")}; ` +
        `backend ${backend.choice}; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}); ` +
        `load average ${os
          .loadavg()
          .map((l) => l.toFixed(1))
          .join(" ")}; ${new Date().toISOString()}; ` +
        `${((Date.now() - started) / 60000).toFixed(1)} min`,
    ].join("\n");
  mkdirSync(dirname(out), { recursive: true });
  const save = () => {
    const results: Results = {
      study,
      studyHash,
      header: header(),
      teacher: { dir: acquired.dir, testAccuracy: acquired.testAccuracy, trainSeconds: acquired.seconds },
      backend: backend.choice,
      runs,
    };
    writeFileSync(out, JSON.stringify(results, null, 2) + "\n");
  };
  for (const setting of settings) {
    const dataset = await loadDataset(studentSpec(study, setting, methods[0]!, seeds[0]!).data);
    const teacher = await loadTeacherAsData(acquired.dir, undefined, dataset, { info: log, warn: log });
    log(`setting ${setting.name}: ${dataset.train.size} training images`);
    const context = { dataset, teacher, shared: new SharedTeacherOutputs(teacher) };
    // Seeds in the outer loop: a partial run still covers every method.
    for (const seed of seeds) {
      for (const learningRate of settingLearningRates(setting)) {
        for (const method of methods) {
          const name = setting.learningRates.length ? `${method.name} lr=${learningRate}` : method.name;
          if (done.has(`${setting.name}|${name}|${seed}`)) continue;
          const t0 = performance.now();
          const run = await runOne(study, setting, method, seed, learningRate, context);
          run.seconds = (performance.now() - t0) / 1000;
          runs.push(run);
          save();
          log(`${setting.name} ${name} seed ${seed}: ${(run.testAccuracy * 100).toFixed(2)}%`);
        }
      }
    }
    teacher.model.dispose();
  }
  save();
  process.stdout.write(
    `${header()}\n\n${report(
      runs,
      settings.map((s) => s.name),
      study.target,
    )}\n`,
  );
}

await main();
