// A study's status from its stage Jobs and their pods (status/study.ts): the stage and phase, one variants[]
// entry per index from its latest pod, a failed index isolated, and analyseStudy's answer.
import { describe, expect, it } from "vitest";
import { analyseStudy, expandVariants } from "../../../../api/v1alpha1/index.ts";
import {
  deriveStudyStatus,
  parseIndexes,
  variantEndEvents,
  variantStatuses,
  type StudyObserved,
} from "../../../../operator/src/status/study.ts";
import { complete, indexedPod, stageJob, study, variantResult } from "../../../fixtures/study.ts";

const NOW = "2026-01-01T01:00:00.000Z";
const GPU = { devices: 1, unit: "GPU" as const };
// 1 seed x (alone, mokd, kd@0.5, kd@0.9): indexes 0..3.
const s = study({ seeds: [1], variants: { automatic: ["mokd"], fixedAlphas: [0.5, 0.9] } });
const none = { pods: [] };
const observed = (o: Partial<StudyObserved>): StudyObserved => ({
  teacher: none,
  variants: none,
  report: none,
  ...o,
});
const condition = (st: ReturnType<typeof deriveStudyStatus>, type: string) =>
  st.conditions?.find((c) => c.type === type);

describe("parseIndexes", () => {
  it("reads a Job's completed/failed index list", () => {
    expect([...parseIndexes("0,2-4,7")]).toEqual([0, 2, 3, 4, 7]);
    expect([...parseIndexes("")]).toEqual([]);
    expect([...parseIndexes(undefined)]).toEqual([]);
  });
});

describe("study stages", () => {
  it("creates the teacher first", () => {
    const st = deriveStudyStatus(s, observed({}), NOW, GPU);
    expect(st).toMatchObject({ phase: "Pending", stage: "Teacher", runs: 4, succeeded: 0, failed: 0 });
    expect(condition(st, "Running")?.reason).toBe("Creating");
  });

  it("teacher running, then the variants, with the stage's own reason", () => {
    const teacher = { job: stageJob("pilot-teacher", { active: 1 }), pods: [indexedPod(0, "Running")] };
    const st = deriveStudyStatus(s, observed({ teacher }), NOW, GPU);
    expect(st).toMatchObject({ phase: "Running", stage: "Teacher", teacherJobName: "pilot-teacher" });
    expect(condition(st, "Running")?.reason).toBe("TeacherRunning");
    const variants = {
      job: stageJob("pilot-variants", { active: 2 }),
      pods: [indexedPod(0, "Running"), indexedPod(1, "Pending")],
    };
    const done = { job: stageJob("pilot-teacher", { succeeded: 1, conditions: [complete] }), pods: [] };
    const v = deriveStudyStatus(s, observed({ teacher: done, variants }), NOW, GPU);
    expect(v).toMatchObject({ phase: "Running", stage: "Variants", variantsJobName: "pilot-variants" });
    expect(condition(v, "Running")?.reason).toBe("VariantsRunning");
    expect(v.variants?.map((x) => x.phase)).toEqual(["Running", "Pending", "Pending", "Pending"]);
  });

  it("the teacher failing fails the study, with the teacher pod's reason and message", () => {
    const failed = { type: "Failed", status: "True", reason: "PodFailurePolicy", message: "pod failed" };
    const teacher = {
      job: stageJob("pilot-teacher", { failed: 1, conditions: [failed] }),
      pods: [
        indexedPod(0, "Failed", {
          exitCode: 3,
          message: JSON.stringify({ error: "data.path: no such file", reason: "BadData" }),
        }),
      ],
    };
    const st = deriveStudyStatus(s, observed({ teacher }), NOW, GPU);
    expect(st).toMatchObject({ phase: "Failed", stage: "Teacher" });
    expect(condition(st, "Failed")).toMatchObject({ status: "True", reason: "TeacherFailed" });
    expect(condition(st, "Failed")?.message).toMatch(/BadData.*data\.path: no such file/);
    expect(st.completionTime).toBe(NOW);
  });

  it("a stuck variant pod shows the job reconciler's stuck reason", () => {
    const stuck = indexedPod(0, "Pending");
    stuck.status!.containerStatuses![0]!.state = {
      waiting: { reason: "ImagePullBackOff", message: "no such image" },
    };
    const variants = { job: stageJob("pilot-variants", { active: 1 }), pods: [stuck] };
    const teacher = { job: stageJob("pilot-teacher", { conditions: [complete] }), pods: [] };
    const st = deriveStudyStatus(s, observed({ teacher, variants }), NOW, GPU);
    expect(condition(st, "Running")?.reason).toBe("ImagePullBackOff");
  });

  it("a suspended stage Job under Kueue waits for admission", () => {
    const queued = study({ template: { output: { uri: "s3://bucket/p" }, queueName: "q" } });
    const teacher = { job: stageJob("pilot-teacher", {}, true), pods: [] };
    const st = deriveStudyStatus(queued, observed({ teacher }), NOW, GPU);
    expect(st.phase).toBe("Suspended");
    expect(condition(st, "Suspended")?.reason).toBe("WaitingForAdmission");
  });
});

describe("variants[] per index", () => {
  const failedIndexJob = stageJob("pilot-variants", {
    succeeded: 3,
    failed: 2,
    completedIndexes: "0,1,3",
    failedIndexes: "2",
    conditions: [
      { type: "Failed", status: "True", reason: "FailedIndexes", message: "Job has failed indexes" },
    ],
  });
  const pods = [
    indexedPod(0, "Succeeded", { message: variantResult(0.8, 0.79, 50) }),
    indexedPod(1, "Succeeded", { message: variantResult(0.86, 0.85, 100) }),
    // Index 2: two attempts, the latest failed with a non-retriable exit.
    indexedPod(2, "Failed", { exitCode: 1, created: "2026-01-01T00:01:00Z", message: "oom" }),
    indexedPod(2, "Failed", {
      exitCode: 3,
      created: "2026-01-01T00:02:00Z",
      message: JSON.stringify({ error: "bad shard", reason: "BadData" }),
    }),
    // Index 3: a failed attempt, then the retry that succeeded (the latest pod counts).
    indexedPod(3, "Failed", { exitCode: 1, created: "2026-01-01T00:01:00Z" }),
    indexedPod(3, "Succeeded", { created: "2026-01-01T00:03:00Z", message: variantResult(0.84, 0.83, 80) }),
  ];

  it("one entry per index: figures from the latest pod's Result, attempts, a failed index isolated and named", () => {
    const v = variantStatuses(s, { job: failedIndexJob, pods }, undefined, { devices: 4, unit: "CPU" });
    expect(v.map((x) => [x.index, x.name, x.phase, x.attempts])).toEqual([
      [0, "alone-s1", "Succeeded", 1],
      [1, "mokd-s1", "Succeeded", 1],
      [2, "kd@0.5-s1", "Failed", 2],
      [3, "kd@0.9-s1", "Succeeded", 2],
    ]);
    expect(v[1]).toMatchObject({
      bestValidationAccuracy: 0.86,
      testAccuracy: 0.85,
      durationSeconds: 100,
      deviceSeconds: 400,
      bestEpoch: 3,
      epochsToTarget: null,
    });
    expect(v[2]).toMatchObject({ reason: "BadData" });
    expect(v[2]!.message).toMatch(/exit code 3.*bad shard/);
  });

  it("a failed variant does not fail the study: the report runs, then Succeeded naming the failure", () => {
    const teacher = { job: stageJob("pilot-teacher", { conditions: [complete] }), pods: [] };
    const variants = { job: failedIndexJob, pods };
    const before = deriveStudyStatus(s, observed({ teacher, variants }), NOW, GPU);
    // The report Job is being created: the report stage is Pending (as the teacher is before its Job exists).
    expect(before).toMatchObject({ phase: "Pending", stage: "Report", succeeded: 3, failed: 1 });
    const report = { job: stageJob("pilot-report", { succeeded: 1, conditions: [complete] }), pods: [] };
    const st = deriveStudyStatus(s, observed({ teacher, variants, report }), NOW, GPU);
    expect(st).toMatchObject({
      phase: "Succeeded",
      stage: "Done",
      succeeded: 3,
      failed: 1,
      reportUri: "s3://bucket/pilot/report.html",
    });
    expect(condition(st, "Succeeded")?.message).toMatch(/3 of 4 runs succeeded \(1 failed/);
    // analyseStudy's answer over the succeeded runs, final now.
    expect(st.best).toEqual(analyseStudy(st.variants!).best);
    expect(st.best?.arm).toBe("mokd");
    expect(st.comparisons?.[0]).toMatchObject({ arm: "mokd", against: "kd@0.9" });
    expect(condition(st, "Compared")).toMatchObject({ status: "True", reason: "AllRunsEnded" });
  });

  it("no variant succeeded: Failed/NoVariantSucceeded, no report", () => {
    const allFailed = stageJob("pilot-variants", {
      failed: 4,
      failedIndexes: "0-3",
      conditions: [{ type: "Failed", status: "True", reason: "FailedIndexes", message: "" }],
    });
    const teacher = { job: stageJob("pilot-teacher", { conditions: [complete] }), pods: [] };
    const st = deriveStudyStatus(s, observed({ teacher, variants: { job: allFailed, pods: [] } }), NOW, GPU);
    expect(st).toMatchObject({ phase: "Failed", failed: 4, succeeded: 0 });
    expect(condition(st, "Failed")?.reason).toBe("NoVariantSucceeded");
  });

  it("the comparison is provisional while runs remain", () => {
    const running = stageJob("pilot-variants", { active: 2, succeeded: 2, completedIndexes: "0,1" });
    const teacher = { job: stageJob("pilot-teacher", { conditions: [complete] }), pods: [] };
    const st = deriveStudyStatus(
      s,
      observed({ teacher, variants: { job: running, pods: pods.slice(0, 2) } }),
      NOW,
      GPU,
    );
    expect(st.best?.arm).toBe("mokd");
    expect(condition(st, "Compared")).toMatchObject({ status: "False", reason: "Provisional" });
  });

  it("keeps an ended entry's figures when its pods are gone", () => {
    const first = variantStatuses(s, { job: failedIndexJob, pods }, undefined, GPU);
    const later = variantStatuses(s, { job: failedIndexJob, pods: [] }, first, GPU);
    expect(later).toEqual(first);
  });

  it("one event per variant that ended, with its figures or reason", () => {
    const first = variantStatuses(s, { job: failedIndexJob, pods }, undefined, GPU);
    const events = variantEndEvents(undefined, first, "GPU");
    expect(events.map((e) => e.reason)).toEqual([
      "VariantSucceeded",
      "VariantSucceeded",
      "VariantFailed",
      "VariantSucceeded",
    ]);
    expect(events[1]!.message).toBe(
      "variant mokd-s1 (index 1) succeeded: validation 86.00%, test 85.00%, 100 GPU-s",
    );
    expect(events[2]).toMatchObject({ type: "Warning" });
    expect(variantEndEvents(first, first, "GPU")).toEqual([]);
    expect(expandVariants(s.spec)).toHaveLength(4);
  });
});

describe("final statuses", () => {
  it("are kept as they are", () => {
    const done = { ...s, status: { phase: "Succeeded" as const, stage: "Done" as const, runs: 4 } };
    expect(deriveStudyStatus(done, observed({}), NOW, GPU)).toBe(done.status);
  });
});

/** A pod Pending that the scheduler cannot place. */
function unschedulable(index: number, created = "2026-01-01T00:02:00Z") {
  const pod = indexedPod(index, "Pending", { created });
  pod.status!.conditions = [
    { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/3 nodes are available" },
  ];
  return pod;
}
const later = (iso: string, seconds: number) => new Date(Date.parse(iso) + seconds * 1000).toISOString();
const withStatus = (st: ReturnType<typeof deriveStudyStatus>, base = s) => ({ ...base, status: st });

describe("a stage of several pods", () => {
  it("runs while any of its pods does, the newest waiting for room or not", () => {
    const teacher = { job: stageJob("pilot-teacher", { conditions: [complete] }), pods: [] };
    const variants = {
      job: stageJob("pilot-variants", { active: 2 }),
      pods: [indexedPod(0, "Running", { created: "2026-01-01T00:01:00Z" }), unschedulable(1)],
    };
    const st = deriveStudyStatus(s, observed({ teacher, variants }), NOW, GPU);
    expect(st).toMatchObject({ phase: "Running", stage: "Variants" });
    expect(condition(st, "Running")?.reason).toBe("VariantsRunning");
  });
});

describe("Kueue preempting a stage", () => {
  const queued = study({
    seeds: [1],
    variants: { automatic: ["mokd"], fixedAlphas: [0.5, 0.9] },
    template: { output: { uri: "s3://bucket/p" }, queueName: "q" },
  });
  const teacherDone = { job: stageJob("pilot-teacher", { succeeded: 1, conditions: [complete] }), pods: [] };
  const teacherRunning = deriveStudyStatus(
    queued,
    observed({
      teacher: { job: stageJob("pilot-teacher", { active: 1 }), pods: [indexedPod(0, "Running")] },
    }),
    NOW,
    GPU,
  );

  it("the variants Job's first wait for admission, after the teacher ran, is no preemption", () => {
    expect(teacherRunning.phase).toBe("Running");
    const variants = { job: stageJob("pilot-variants", {}, true), pods: [] };
    const st = deriveStudyStatus(
      withStatus(teacherRunning, queued),
      observed({ teacher: teacherDone, variants }),
      NOW,
      GPU,
    );
    expect(st).toMatchObject({ phase: "Suspended", stage: "Variants" });
    expect(condition(st, "Suspended")?.reason).toBe("WaitingForAdmission");
  });

  it("the variants Job suspended after its indexes ran: Preempted, naming what is kept, until it runs again", () => {
    const running = deriveStudyStatus(
      withStatus(teacherRunning, queued),
      observed({
        teacher: teacherDone,
        variants: {
          job: stageJob("pilot-variants", { active: 2, succeeded: 1, completedIndexes: "0" }),
          pods: [
            indexedPod(0, "Succeeded", { message: variantResult(0.8, 0.79) }),
            indexedPod(1, "Running"),
            indexedPod(2, "Running"),
          ],
        },
      }),
      NOW,
      GPU,
    );
    expect(running).toMatchObject({ phase: "Running", stage: "Variants" });
    // Kueue suspends the Job; the Job controller deletes the running pods; completed index 0 stays completed.
    const evicted = {
      job: stageJob("pilot-variants", { succeeded: 1, completedIndexes: "0" }, true),
      pods: [indexedPod(0, "Succeeded", { message: variantResult(0.8, 0.79) })],
    };
    const st = deriveStudyStatus(
      withStatus(running, queued),
      observed({ teacher: teacherDone, variants: evicted }),
      NOW,
      GPU,
    );
    expect(st).toMatchObject({ phase: "Suspended", stage: "Variants", succeeded: 1 });
    expect(condition(st, "Suspended")).toMatchObject({ status: "True", reason: "Preempted" });
    expect(condition(st, "Suspended")?.message).toMatch(
      /^Kueue suspended the variants Job \(preempted or evicted\).*runs only the indexes not yet completed \(1 of 4 completed\)$/,
    );
    expect(condition(st, "Running")).toMatchObject({ status: "False", reason: "Preempted" });
    // Still waiting to be re-admitted: still Preempted.
    const waiting = deriveStudyStatus(
      withStatus(st, queued),
      observed({ teacher: teacherDone, variants: evicted }),
      later(NOW, 30),
      GPU,
    );
    expect(condition(waiting, "Suspended")?.reason).toBe("Preempted");
    // Re-admitted: running again.
    const resumed = {
      job: stageJob("pilot-variants", { active: 1, succeeded: 1, completedIndexes: "0" }),
      pods: [...evicted.pods, indexedPod(1, "Running", { created: "2026-01-01T00:05:00Z" })],
    };
    const again = deriveStudyStatus(
      withStatus(waiting, queued),
      observed({ teacher: teacherDone, variants: resumed }),
      later(NOW, 60),
      GPU,
    );
    expect(again).toMatchObject({ phase: "Running", stage: "Variants" });
    expect(condition(again, "Suspended")?.status).toBe("False");
  });

  it("is Preempted also when Kueue struck while the newest pod was starting", () => {
    const starting = {
      ...teacherRunning,
      phase: "Pending" as const,
      stage: "Variants" as const,
      variants: [
        { index: 0, name: "alone-s1", arm: "alone", seed: 1, phase: "Pending" as const, attempts: 1 },
      ],
    };
    const evicted = { job: stageJob("pilot-variants", {}, true), pods: [] };
    const st = deriveStudyStatus(
      withStatus(starting, queued),
      observed({ teacher: teacherDone, variants: evicted }),
      NOW,
      GPU,
    );
    expect(condition(st, "Suspended")?.reason).toBe("Preempted");
  });
});

describe("template.runPolicy.pendingDeadlineSeconds on a study's stages", () => {
  const deadline = (seconds: number, extra: Record<string, unknown> = {}) =>
    study({
      seeds: [1],
      variants: { automatic: ["mokd"], fixedAlphas: [0.5, 0.9] },
      template: {
        output: { uri: "s3://bucket/p" },
        runPolicy: { pendingDeadlineSeconds: seconds },
        ...extra,
      },
    });
  const teacherDone = { job: stageJob("pilot-teacher", { succeeded: 1, conditions: [complete] }), pods: [] };
  /** The status derived `seconds` after NOW from `previous`, with the teacher done and these variants. */
  const derivedAfter = (
    previous: ReturnType<typeof deriveStudyStatus>,
    d: ReturnType<typeof deadline>,
    variants: NonNullable<Parameters<typeof observed>[0]>["variants"],
    seconds: number,
  ) =>
    deriveStudyStatus(
      withStatus(previous, d),
      observed({ teacher: teacherDone, variants }),
      later(NOW, seconds),
      GPU,
    );

  it("a variants stage whose pods do not start fails the study with the stuck reason, naming the stage", () => {
    const d = deadline(60);
    const variants = {
      job: stageJob("pilot-variants", { active: 2 }),
      pods: [unschedulable(0), unschedulable(1)],
    };
    const first = deriveStudyStatus(d, observed({ teacher: teacherDone, variants }), NOW, GPU);
    expect(first).toMatchObject({ phase: "Pending", stage: "Variants" });
    expect(condition(first, "Running")?.reason).toBe("Unschedulable");
    const before = derivedAfter(first, d, variants, 59);
    expect(before.phase).toBe("Pending");
    const st = derivedAfter(before, d, variants, 60);
    expect(st).toMatchObject({ phase: "Failed", stage: "Variants", completionTime: later(NOW, 60) });
    expect(condition(st, "Failed")).toMatchObject({ status: "True", reason: "Unschedulable" });
    expect(condition(st, "Failed")?.message).toBe(
      "the variants stage's pods did not start within template.runPolicy.pendingDeadlineSeconds (60 s): Unschedulable: 0/3 nodes are available",
    );
  });

  it("a teacher pod that cannot pull its image: its waiting reason and message", () => {
    const d = deadline(30);
    const pod = indexedPod(0, "Pending");
    pod.status!.containerStatuses![0]!.state = {
      waiting: { reason: "ErrImageNeverPull", message: 'image "mokd/trainer:nope" is not present' },
    };
    const teacher = { job: stageJob("pilot-teacher", { active: 1 }), pods: [pod] };
    const first = deriveStudyStatus(d, observed({ teacher }), NOW, GPU);
    const st = deriveStudyStatus(withStatus(first, d), observed({ teacher }), later(NOW, 31), GPU);
    expect(st).toMatchObject({ phase: "Failed", stage: "Teacher" });
    expect(condition(st, "Failed")).toMatchObject({ reason: "ErrImageNeverPull" });
    expect(condition(st, "Failed")?.message).toMatch(
      /^the teacher stage's pods did not start within .*\(30 s\): ErrImageNeverPull: image "mokd\/trainer:nope" is not present$/,
    );
  });

  it("counts from when the stage last ran, not from the study's start", () => {
    const d = deadline(60);
    const running = deriveStudyStatus(
      d,
      observed({
        teacher: teacherDone,
        variants: { job: stageJob("pilot-variants", { active: 1 }), pods: [indexedPod(0, "Running")] },
      }),
      later(NOW, 600),
      GPU,
    );
    expect(running.phase).toBe("Running");
    const variants = {
      job: stageJob("pilot-variants", { active: 1, succeeded: 1, completedIndexes: "0" }),
      pods: [unschedulable(1)],
    };
    const pending = derivedAfter(running, d, variants, 610);
    const still = derivedAfter(pending, d, variants, 660);
    expect(still.phase).toBe("Pending");
    const st = derivedAfter(still, d, variants, 671);
    expect(st.phase).toBe("Failed");
  });

  it("waiting for Kueue's admission does not count, nor does a deadline of 0 ever end it", () => {
    const queued = deadline(10, { queueName: "q" });
    const variants = { job: stageJob("pilot-variants", {}, true), pods: [] };
    const first = deriveStudyStatus(queued, observed({ teacher: teacherDone, variants }), NOW, GPU);
    const st = deriveStudyStatus(
      withStatus(first, queued),
      observed({ teacher: teacherDone, variants }),
      later(NOW, 3600),
      GPU,
    );
    expect(st).toMatchObject({ phase: "Suspended" });
    const never = deadline(0);
    const stuck = { job: stageJob("pilot-variants", { active: 1 }), pods: [unschedulable(0)] };
    const a = deriveStudyStatus(never, observed({ teacher: teacherDone, variants: stuck }), NOW, GPU);
    const b = deriveStudyStatus(
      withStatus(a, never),
      observed({ teacher: teacherDone, variants: stuck }),
      later(NOW, 86_400),
      GPU,
    );
    expect(b.phase).toBe("Pending");
  });
});
