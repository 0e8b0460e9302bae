// The quality benchmark's study file: one teacher, student settings, losses crossed with a fixed-weight grid and
// automatic weightings, seeds. The same script runs the small default (studies/small.yaml) and a large study.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

const Overrides = z.record(z.string(), z.unknown()).default({});

const GridCell = z.object({
  /** Weight of the distillation loss; the task gets 1 - alpha (classic KD's convention). */
  alpha: z.number().min(0).max(1),
  /** Objective overrides of this cell only (e.g. another temperature). */
  objectives: Overrides,
  label: z.string().optional(),
});

/** An automatic weighting: a strategy name, or a variant of one (strategy overrides, its own label). */
const StrategyEntry = z.union([
  z.string().min(1),
  z.object({ name: z.string().min(1), label: z.string().min(1).optional(), strategy: Overrides }),
]);
type StrategyEntry = z.infer<typeof StrategyEntry>;

const Loss = z.object({
  name: z.string().min(1),
  /** spec.objectives overrides selecting and configuring the loss. */
  objectives: Overrides,
  /** Fixed-weight cells (none: only the automatic weightings run, e.g. a variant of one study's loss). */
  grid: z.array(GridCell).default([]),
  /** The `sum-log` control: the same kind of cells as fixed weights on the log-losses (none: not run). */
  logGrid: z.array(GridCell).default([]),
  /** This loss's automatic weightings, replacing the study's `strategies`. */
  strategies: z.array(StrategyEntry).optional(),
});

const Setting = z.object({
  name: z.string().min(1),
  /** Training images of the student (first of the split's training part). */
  trainSamples: z.number().int().min(1),
  student: Overrides,
  training: Overrides,
  /** Every method runs at each of these student learning rates (none: training.learningRate only). */
  learningRates: z.array(z.number().positive()).default([]),
});

export const Study = z.object({
  name: z.string().min(1),
  data: z.object({
    path: z.string().min(1).default("/usr/share/datasets/fashion-mnist"),
    format: z.string().default("idx"),
    splitSeed: z.number().int().min(0).default(42),
    validationSplit: z.number().min(0).max(0.5).default(0.1),
    maxTestSamples: z.number().int().min(1).optional(),
  }),
  backend: z.string().default("wasm"),
  /** Where trained teachers are kept, one directory per teacher fingerprint. */
  cacheDir: z.string().default(".cache/bench"),
  teacher: z.object({
    trainSamples: z.number().int().min(1).optional(),
    /** spec.teacher fields (architecture, width, depth, hiddenUnits, dropout, epochs, learningRate). */
    spec: Overrides,
    batchSize: z.number().int().min(1).default(64),
    seed: z.number().int().min(0).default(1),
    evaluationsPerEpoch: z.number().int().min(1).default(1),
  }),
  settings: z.array(Setting).min(1),
  seeds: z.object({ first: z.number().int().min(0).default(1), count: z.number().int().min(1) }),
  /** Validation accuracy whose first reaching is reported (in epochs). */
  target: z.number().min(0).max(1).default(0.8),
  /** The student trained alone (cross-entropy only) as a baseline. */
  alone: z.boolean().default(true),
  losses: z.array(Loss).min(1),
  /** Automatic weightings run with every loss (strategy names, or variants with overrides and a label). */
  strategies: z.array(StrategyEntry).default(["mokd", "mokd-amortized"]),
});
export type Study = z.infer<typeof Study>;

export function loadStudy(path: string): Study {
  const parsed = Study.safeParse(parseYaml(readFileSync(path, "utf8")));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`).join("\n");
    throw new Error(`invalid study ${path}:\n${problems}`);
  }
  return parsed.data;
}

export type MethodKind = "alone" | "fixed" | "fixed-log" | "auto";

/** One method of a study: spec overrides of objectives and strategy, and how it is grouped in the report. */
export interface Method {
  name: string;
  /** The loss it distils with; undefined: the student alone. */
  loss?: string;
  kind: MethodKind;
  objectives: Record<string, unknown>;
  strategy: Record<string, unknown>;
}

/** Deep merge of plain objects (b wins). */
export function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    const bothObjects = isObject(prev) && isObject(v);
    out[k] = bothObjects ? merge(prev, v) : v;
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** The learning rates a setting runs at: its grid, else its one training.learningRate (undefined: the default). */
export function settingLearningRates(setting: Study["settings"][number]): (number | undefined)[] {
  if (setting.learningRates.length) return setting.learningRates;
  const lr = setting.training.learningRate;
  return [typeof lr === "number" ? lr : undefined];
}

/** Every method of the study, in report order: alone, then per loss its grid and the automatic weightings. */
export function studyMethods(study: Study): Method[] {
  const methods: Method[] = [];
  if (study.alone) {
    methods.push({
      name: "student alone (CE)",
      kind: "alone",
      objectives: { distillation: { enabled: false } },
      strategy: { name: "sum", weights: { task: 1 } },
    });
  }
  for (const loss of study.losses) {
    for (const cell of loss.grid) {
      const label = cell.label ?? `alpha=${cell.alpha}`;
      methods.push({
        name: `${loss.name} sum ${label}`,
        loss: loss.name,
        kind: "fixed",
        objectives: merge(loss.objectives, cell.objectives),
        strategy: { name: "sum", weights: { task: 1 - cell.alpha, distillation: cell.alpha } },
      });
    }
    for (const cell of loss.logGrid) {
      const label = cell.label ?? `alpha=${cell.alpha}`;
      methods.push({
        name: `${loss.name} sum-log ${label}`,
        loss: loss.name,
        kind: "fixed-log",
        objectives: merge(loss.objectives, cell.objectives),
        strategy: { name: "sum-log", weights: { task: 1 - cell.alpha, distillation: cell.alpha } },
      });
    }
    for (const entry of loss.strategies ?? study.strategies) {
      const { label, strategy } = strategyOf(entry);
      methods.push({
        name: `${loss.name} ${label}`,
        loss: loss.name,
        kind: "auto",
        objectives: loss.objectives,
        strategy,
      });
    }
  }
  return methods;
}

/** A strategy entry's label and spec.strategy overrides (a bare name labels itself). */
function strategyOf(entry: StrategyEntry): { label: string; strategy: Record<string, unknown> } {
  if (typeof entry === "string") return { label: entry, strategy: { name: entry } };
  return { label: entry.label ?? entry.name, strategy: merge(entry.strategy, { name: entry.name }) };
}
