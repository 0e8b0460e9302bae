// The student stage: epochs of StudentStep with evaluation, telemetry records, checkpoints every epoch and on a
// stop request, and resume from a checkpoint (mid-epoch: the data order is seeded by (seed, epoch), so skipping
// the batches already done continues the same sequence). Before the first step the frozen teacher's outputs are
// cached per training sample when `teacher.outputCache` allows it (teacher-cache.ts); a resumed run rebuilds them.
import * as tf from "@tensorflow/tfjs";
import type { TeacherOutputCacheMode } from "../../../api/v1alpha1/index.ts";
import type { Dataset, EpochRecord, ObjectiveName, StepRecord } from "../contracts.ts";
import { disposeGroups, saveCheckpoint, type Checkpoint, type NamedTensor } from "../checkpoint/index.ts";
import { Random } from "../data/random.ts";
import { dropoutLayers, seedDropout } from "./dropout.ts";
import { epochFigures } from "./evaluate.ts";
import { StoppedError, yieldToEventLoop, type StopSignal } from "./stop.ts";
import { StudentStep, type StepOutcome, type StudentStepSetup } from "./student-step.ts";
import { planTeacherCache, TeacherOutputCache } from "./teacher-cache.ts";
import type { StageHooks } from "./teacher-stage.ts";

/** Where the teacher of a run lives (so a resumed run uses the same one). */
export interface TeacherInfo {
  path: string;
  source: "trained" | "loaded";
  accuracy: number;
  validationAccuracy?: number;
  /** specFingerprint of the run that trained it. */
  fingerprint?: string;
}

/** Everything besides tensors that a resumed run needs. */
export interface StudentState {
  stage: "student";
  /** specFingerprint of the run: a checkpoint of another spec is not resumed. */
  fingerprint?: string;
  /** 0-based epoch in progress. */
  epoch: number;
  /** Batches of `epoch` already done. */
  batchIndex: number;
  /** Global student step (optimiser steps done). */
  step: number;
  rng: number;
  strategy: unknown;
  teacher?: TeacherInfo;
  history: EpochRecord[];
  measuredSteps: number;
  conflictSteps: number;
  /** Accumulators of the epoch in progress. */
  partial: {
    correct: number;
    seen: number;
    lossSums: number[];
    steps: number;
    seconds: number;
    measured: number;
    conflicts: number;
  };
  /** Wall time of the run before this process (resumed runs add up). */
  elapsedSeconds: number;
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
  steps: number;
  measuredSteps: number;
  conflictSteps: number;
  elapsedSeconds: number;
}

function initialState(setup: StudentStageSetup): StudentState {
  return {
    stage: "student",
    fingerprint: setup.fingerprint,
    epoch: 0,
    batchIndex: 0,
    step: 0,
    rng: new Random(setup.seed ^ 0x5eed).state(),
    strategy: setup.strategy.state(),
    teacher: setup.teacherInfo,
    history: [],
    measuredSteps: 0,
    conflictSteps: 0,
    partial: emptyPartial(setup.objectives.length),
    elapsedSeconds: 0,
  };
}

const emptyPartial = (n: number): StudentState["partial"] => ({
  correct: 0,
  seen: 0,
  lossSums: new Array<number>(n).fill(0),
  steps: 0,
  seconds: 0,
  measured: 0,
  conflicts: 0,
});

/** Restores weights, optimiser slots and strategy state from a checkpoint (its tensors are disposed here). */
async function restore(
  setup: StudentStageSetup,
  checkpoint: Checkpoint<StudentState>,
): Promise<StudentState> {
  const { groups, state } = checkpoint;
  const saved = [...(groups.student ?? []), ...(groups.projector ?? [])];
  const all = [...setup.student.model.weights.map((w) => w.read() as tf.Variable), ...setup.extraVariables];
  if (saved.length !== all.length) {
    disposeGroups(groups);
    throw new Error(
      `checkpoint has ${saved.length} weight tensors, the model ${all.length}: different model?`,
    );
  }
  all.forEach((v, i) => v.assign(saved[i]!.tensor));
  // Optimiser slots are created lazily on the first applyGradients; setWeights recreates them by position.
  if (groups.optimizer && groups.optimizer.length > 0) await setup.optimizer.setWeights(groups.optimizer);
  setup.strategy.loadState(state.strategy);
  disposeGroups({ student: groups.student ?? [], projector: groups.projector ?? [] });
  return state;
}

async function writeCheckpoint(
  setup: StudentStageSetup,
  state: StudentState,
  elapsed: number,
): Promise<string> {
  const { dir, keep } = setup.checkpoint!;
  const named = (vars: tf.Variable[]): NamedTensor[] => vars.map((v) => ({ name: v.name, tensor: v }));
  const groups = {
    student: named(setup.student.model.weights.map((w) => w.read() as tf.Variable)),
    projector: named(setup.extraVariables),
    optimizer: await setup.optimizer.getWeights(),
  };
  const toSave: StudentState = { ...state, strategy: setup.strategy.state(), elapsedSeconds: elapsed };
  const path = saveCheckpoint(dir, state.step, toSave, groups, keep);
  // getWeights returns fresh scalars for the iteration counter: free them.
  const iterations = groups.optimizer.filter((w) => w.name === "iter");
  for (const { tensor } of iterations) tensor.dispose();
  return path;
}

const objectiveNames = (setup: StudentStageSetup) => setup.objectives.map((o) => o.name);

/** Values keyed by objective; one value per objective, or the step's telemetry would carry undefined. */
export function byName(names: readonly ObjectiveName[], values: readonly number[], what: string) {
  if (values.length !== names.length)
    throw new Error(`${what}: ${values.length} values for ${names.length} objectives (${names.join(", ")})`);
  return Object.fromEntries(names.map((n, i) => [n, values[i]!])) as Record<string, number>;
}

function stepRecord(
  names: ObjectiveName[],
  state: StudentState,
  outcome: StepOutcome,
  seconds: number,
): StepRecord {
  const record: StepRecord = {
    type: "step",
    stage: "student",
    epoch: state.epoch + 1,
    step: state.step,
    losses: byName(names, outcome.losses, "losses"),
    weights: byName(names, outcome.weights, "strategy weights"),
    seconds,
  };
  if (outcome.pairs) {
    record.cosines = outcome.pairs.cosines;
    record.normRatios = outcome.pairs.normRatios;
    record.conflict = outcome.pairs.conflict;
  }
  return record;
}

export async function runStudentStage(
  setup: StudentStageSetup,
  resume?: Checkpoint<StudentState>,
): Promise<StudentStageResult> {
  const state = resume ? await restore(setup, resume) : initialState(setup);
  const random = new Random(state.rng);
  const processStart = performance.now(); // the run's wall time includes the cache fill
  const step = new StudentStep({ ...setup, teacherOutputs: await teacherOutputCache(setup) });
  const names = objectiveNames(setup);
  const stepsPerEpoch = Math.ceil(setup.dataset.train.size / setup.batchSize);
  const dropouts = dropoutLayers(setup.student.model);
  const elapsed = () => state.elapsedSeconds + (performance.now() - processStart) / 1000;
  setup.hooks.onStageStart?.("student", setup.epochs, stepsPerEpoch);
  if (resume) setup.log?.(`resumed from ${resume.path} at epoch ${state.epoch + 1}, step ${state.step}`);

  const save = async () => {
    state.rng = random.state();
    return setup.checkpoint ? await writeCheckpoint(setup, state, elapsed()) : undefined;
  };
  if (setup.stop?.requested) throw new StoppedError(await save()); // during the teacher output cache's fill

  while (state.epoch < setup.epochs) {
    const options = {
      batchSize: setup.batchSize,
      shuffle: true,
      seed: setup.seed,
      epoch: state.epoch,
      augment: true,
      skipBatches: state.batchIndex,
    };
    for (const batch of setup.dataset.train.batches(options)) {
      const t0 = performance.now();
      // Seeded by the global step, so a resumed run draws the masks the uninterrupted one would have.
      seedDropout(dropouts, setup.seed, state.step);
      const outcome = step.run(batch, { step: state.step, random: () => random.next() });
      const size = batch.ys.shape[0];
      batch.xs.dispose();
      batch.ys.dispose();
      const seconds = (performance.now() - t0) / 1000;
      const record = stepRecord(names, state, outcome, seconds);
      const p = state.partial;
      p.correct += outcome.correct;
      p.seen += size;
      p.steps++;
      p.seconds += seconds;
      outcome.losses.forEach((l, i) => (p.lossSums[i]! += l));
      if (record.conflict !== undefined) {
        state.measuredSteps++;
        p.measured++;
        if (record.conflict) {
          state.conflictSteps++;
          p.conflicts++;
        }
      }
      state.step++;
      state.batchIndex++;
      setup.hooks.onStep?.(record, size, state.batchIndex);
      await yieldToEventLoop();
      if (setup.stop?.requested) throw new StoppedError(await save());
    }
    finishEpoch(setup, state);
    await save();
  }
  return {
    history: state.history,
    steps: state.step,
    measuredSteps: state.measuredSteps,
    conflictSteps: state.conflictSteps,
    elapsedSeconds: elapsed(),
  };
}

/** The teacher output cache when the plan allows it (the decision is logged); undefined: a forward per step. */
async function teacherOutputCache(setup: StudentStageSetup): Promise<TeacherOutputCache | undefined> {
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

function finishEpoch(setup: StudentStageSetup, state: StudentState): void {
  const p = state.partial;
  const record: EpochRecord = {
    type: "epoch",
    stage: "student",
    epoch: state.epoch + 1,
    epochs: setup.epochs,
    step: state.step,
    ...epochFigures(p, setup.student, setup.dataset.validation, setup.batchSize),
    conflictRate: p.measured ? p.conflicts / p.measured : 0,
    losses: byName(
      objectiveNames(setup),
      p.lossSums.map((s) => (p.steps ? s / p.steps : 0)),
      "epoch losses",
    ),
  };
  state.history.push(record);
  setup.hooks.onEpoch?.(record);
  state.epoch++;
  state.batchIndex = 0;
  state.partial = emptyPartial(setup.objectives.length);
}
