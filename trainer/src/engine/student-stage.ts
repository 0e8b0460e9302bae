// The student stage: StudentStep as a program of the stage runner (stage.ts: loop, evaluation, checkpoints every
// epoch and on a stop request, resume). Before the first step the frozen teacher's outputs are cached per
// training sample when `teacher.outputCache` allows it (teacher-cache.ts), or come from a cache the caller
// already filled (the quality benchmark shares one across runs); a resumed run rebuilds them.
import * as tf from "@tensorflow/tfjs";
import type { TeacherOutputCacheMode } from "../../../api/v1alpha1/index.ts";
import type {
  Batch,
  Dataset,
  EpochRecord,
  EvaluationRecord,
  ObjectiveName,
  StepRecord,
} from "../contracts.ts";
import type { Checkpoint, NamedTensor } from "../checkpoint/index.ts";
import { Random } from "../data/random.ts";
import {
  initialStageState,
  runStage,
  type StageHooks,
  type StageOptions,
  type StageProgram,
  type StageState,
  type StepResult,
} from "./stage.ts";
import type { StopSignal } from "./stop.ts";
import { StudentStep, type StepOutcome, type StudentStepSetup } from "./student-step.ts";
import { planTeacherCache, TeacherOutputCache, type TeacherOutputSource } from "./teacher-cache.ts";

/** Where the teacher of a run lives (so a resumed run uses the same one). */
export interface TeacherInfo {
  path: string;
  source: "trained" | "loaded";
  accuracy: number;
  validationAccuracy?: number;
  /** specFingerprint of the run that trained it. */
  fingerprint?: string;
}

/** Everything besides tensors that a resumed run needs: the runner's fields plus the student's own. */
export interface StudentState extends StageState {
  stage: "student";
  /** The step generator (PCGrad's order) and the strategy's state. */
  rng: number;
  strategy: unknown;
  teacher?: TeacherInfo;
}

/** A StudentStep's setup (the stage builds its teacher output source) plus what the stage loop needs. */
export interface StudentStageSetup extends Omit<StudentStepSetup, "teacherOutputs"> {
  dataset: Dataset;
  epochs: number;
  batchSize: number;
  seed: number;
  /** spec.teacher.outputCache; absent: "auto", the spec's default. */
  teacherOutputCache?: TeacherOutputCacheMode;
  teacherInfo?: TeacherInfo;
  fingerprint?: string;
  checkpoint?: { dir: string; keep: number };
  stop?: StopSignal;
  hooks: StageHooks;
  log?: (message: string) => void;
}

export interface StudentStageResult {
  history: EpochRecord[];
  evaluations: EvaluationRecord[];
  best?: EvaluationRecord;
  steps: number;
  measuredSteps: number;
  conflictSteps: number;
  /** Steps skipped because their losses or gradients were not finite. */
  nonFiniteSteps: number;
  elapsedSeconds: number;
}

/** Values keyed by objective; one value per objective, or the step's telemetry would carry undefined. */
export function byName(names: readonly ObjectiveName[], values: readonly number[], what: string) {
  if (values.length !== names.length)
    throw new Error(`${what}: ${values.length} values for ${names.length} objectives (${names.join(", ")})`);
  return Object.fromEntries(names.map((n, i) => [n, values[i]!])) as Record<string, number>;
}

function stepRecord(names: ObjectiveName[], state: StudentState, outcome: StepOutcome): StepRecord {
  const record: StepRecord = {
    type: "step",
    stage: "student",
    epoch: state.epoch + 1,
    step: state.step,
    losses: byName(names, outcome.losses, "losses"),
    weights: byName(names, outcome.weights, "strategy weights"),
    seconds: 0,
  };
  if (outcome.pairs) {
    record.cosines = outcome.pairs.cosines;
    record.normRatios = outcome.pairs.normRatios;
    record.conflict = outcome.pairs.conflict;
    record.stepShares = byName(names, outcome.pairs.stepShares, "step shares");
  }
  if (outcome.nonFinite) record.nonFinite = true;
  return record;
}

class StudentProgram implements StageProgram<StudentState> {
  readonly stage = "student";
  readonly network: StudentStageSetup["student"];
  readonly dataset: Dataset;
  readonly lossNames: ObjectiveName[];
  readonly epochs: number;
  readonly batchSize: number;
  readonly seed: number;
  private readonly setup: StudentStageSetup;
  private readonly step_: StudentStep;
  private random: Random;

  constructor(setup: StudentStageSetup, teacherOutputs: TeacherOutputSource | undefined) {
    this.setup = setup;
    this.network = setup.student;
    this.dataset = setup.dataset;
    this.lossNames = setup.objectives.map((o) => o.name);
    this.epochs = setup.epochs;
    this.batchSize = setup.batchSize;
    this.seed = setup.seed;
    this.step_ = new StudentStep({ ...setup, teacherOutputs });
    this.random = new Random(setup.seed ^ 0x5eed);
  }

  initialState(): StudentState {
    const base = initialStageState("student", this.lossNames.length, this.setup.fingerprint);
    return {
      ...base,
      stage: "student",
      rng: this.random.state(),
      strategy: this.setup.strategy.state(),
      teacher: this.setup.teacherInfo,
    };
  }

  step(batch: Batch, state: StudentState): StepResult {
    const context = {
      step: state.step,
      epoch: state.epoch + 1,
      progress: (state.step + 1) / (this.epochs * Math.ceil(this.dataset.train.size / this.batchSize)),
      random: () => this.random.next(),
    };
    const outcome = this.step_.run(batch, context);
    const record = stepRecord(this.lossNames, state, outcome);
    return { record, size: batch.ys.shape[0], correct: outcome.correct, losses: outcome.losses };
  }

  capture(state: StudentState): void {
    state.rng = this.random.state();
    state.strategy = this.setup.strategy.state();
  }

  async checkpointGroups(): Promise<Record<string, NamedTensor[]>> {
    const named = (vars: tf.Variable[]): NamedTensor[] => vars.map((v) => ({ name: v.name, tensor: v }));
    return {
      student: named(this.setup.student.model.weights.map((w) => w.read() as tf.Variable)),
      projector: named(this.setup.extraVariables),
      optimizer: await this.setup.optimizer.getWeights(),
    };
  }

  releaseGroups(groups: Record<string, NamedTensor[]>): void {
    // getWeights returns fresh scalars for the iteration counter: free them.
    for (const { name, tensor } of groups.optimizer ?? []) if (name === "iter") tensor.dispose();
  }

  /** Restores weights, optimiser slots, strategy state and the step generator. */
  async restore(checkpoint: Checkpoint<StudentState>): Promise<void> {
    const { groups, state } = checkpoint;
    const setup = this.setup;
    const saved = [...(groups.student ?? []), ...(groups.projector ?? [])];
    const all = [...setup.student.model.weights.map((w) => w.read() as tf.Variable), ...setup.extraVariables];
    if (saved.length !== all.length) {
      throw new Error(
        `checkpoint has ${saved.length} weight tensors, the model ${all.length}: different model?`,
      );
    }
    all.forEach((v, i) => v.assign(saved[i]!.tensor));
    // Optimiser slots are created lazily on the first applyGradients; setWeights recreates them by position.
    if (groups.optimizer && groups.optimizer.length > 0) await setup.optimizer.setWeights(groups.optimizer);
    setup.strategy.loadState(state.strategy);
    this.random = new Random(state.rng);
  }
}

export interface StudentStageOptions {
  /** Validation evaluations per epoch (default 1). */
  evaluationsPerEpoch?: number;
  /** Which weights the student keeps: the best validation's (default) or the last epoch's. */
  keep?: StageOptions["keep"];
  /** A teacher output source the caller built (e.g. a cache shared by runs with the same teacher and data). */
  teacherOutputs?: TeacherOutputSource;
}

export async function runStudentStage(
  setup: StudentStageSetup,
  resume?: Checkpoint<StudentState>,
  options: StudentStageOptions = {},
): Promise<StudentStageResult> {
  const startedAt = performance.now(); // the run's wall time includes the cache fill
  const outputs = options.teacherOutputs ?? (await teacherOutputCache(setup));
  const program = new StudentProgram(setup, outputs);
  const result = await runStage(
    program,
    {
      checkpoint: setup.checkpoint,
      evaluationsPerEpoch: options.evaluationsPerEpoch,
      keep: options.keep,
      startedAt,
      stop: setup.stop,
      hooks: setup.hooks,
      log: setup.log,
    },
    resume,
  );
  const { state } = result;
  return {
    history: result.history,
    evaluations: result.evaluations,
    best: result.best,
    steps: state.step,
    measuredSteps: state.measuredSteps,
    conflictSteps: state.conflictSteps,
    nonFiniteSteps: state.nonFiniteSteps ?? 0,
    elapsedSeconds: result.elapsedSeconds,
  };
}

/** The teacher output cache when the plan allows it (the decision is logged); undefined: a forward per step. */
export async function teacherOutputCache(
  setup: Pick<
    StudentStageSetup,
    "teacherOutputCache" | "dataset" | "teacher" | "objectives" | "batchSize" | "stop" | "log"
  >,
): Promise<TeacherOutputCache | undefined> {
  const plan = planTeacherCache({
    mode: setup.teacherOutputCache ?? "auto",
    samples: setup.dataset.train.size,
    numClasses: setup.teacher.numClasses,
    teacherFeatureDim: setup.teacher.featureDim,
    needsFeatures: setup.objectives.some((o) => o.name === "feature"),
    augmented: setup.dataset.train.augments,
  });
  if (!plan.use) {
    setup.log?.(`teacher output cache: not used (${plan.reason}); the teacher runs on every batch`);
    return undefined;
  }
  const t0 = performance.now();
  const cache = await TeacherOutputCache.fill(
    setup.teacher,
    setup.dataset.train,
    plan.withFeatures,
    setup.batchSize * 4,
    setup.stop,
  );
  if (!cache) return undefined; // stopped during the fill
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  setup.log?.(`teacher output cache: ${plan.reason}, filled by one teacher pass in ${seconds} s`);
  return cache;
}
