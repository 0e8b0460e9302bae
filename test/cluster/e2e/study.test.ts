// A small DistillationStudy end to end on the bed's real node: the images built from their Dockerfiles, the
// operator installed by the chart (which installs the study CRD), the trainer-cpu image running the teacher
// pass, 4 variants and the report as real containers, data from and results to a real S3-compatible server
// (versitygw). Checked from the system's own records: one teacher pod ran and the report counts one teacher
// training; every variant's summary says where its teacher outputs came from (the shared pass, or none for the
// student alone); the status's comparison table is filled and the report is in the bucket. Lean on purpose
// (1,000 samples, 1 epoch): it runs in CI every time.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DistillationStudyStatus } from "../../../api/v1alpha1/index.ts";
import { StudyLayout } from "../../../api/v1alpha1/study-contract.ts";
import { kubectl, waitFor } from "../../bed/env.ts";
import { RealNodeOperator } from "./operator-bed.ts";
import { type ClusterS3 } from "./s3.ts";
import { OPERATOR_DEPLOYMENT, realNode, type BuiltImage } from "./real-node.ts";

const node = realNode();
const BUCKET = "mokd-study";
const NAME = "pilot";
const ROOT_PREFIX = `runs/${NAME}`;
let namespace = "";
let s3: ClusterS3 | undefined;
let trainer: BuiltImage;

/** alone, mokd, kd@0.5, kd@0.9 on one seed: 4 variants; parallelism 2 for the bed's 2 cores. */
function study(): object {
  return {
    apiVersion: "distillation.mokd.io/v1alpha1",
    kind: "DistillationStudy",
    metadata: { name: NAME },
    spec: {
      seeds: [1],
      parallelism: 2,
      variants: { automatic: ["mokd"], fixedAlphas: [0.5, 0.9], studentAlone: true },
      template: {
        data: {
          format: "idx",
          path: `s3://${BUCKET}/datasets/fashion-mnist/`,
          maxTrainSamples: 1000,
          maxTestSamples: 500,
          validationSplit: 0.1,
        },
        teacher: { architecture: "mlp", width: 32, hiddenUnits: 32, depth: 1, epochs: 1 },
        student: { architecture: "mlp", width: 16, hiddenUnits: 16, depth: 1 },
        training: { epochs: 1, batchSize: 64, seed: 7 },
        output: { uri: `s3://${BUCKET}/${ROOT_PREFIX}` },
        storage: s3!.storage(),
        runtime: {
          image: trainer.ref,
          imagePullPolicy: "Never",
          gpus: 0,
          resources: { requests: { cpu: "500m", memory: "1Gi" }, limits: { cpu: "1", memory: "3Gi" } },
        },
        runPolicy: { backoffLimit: 1 },
      },
    },
  };
}

async function status(): Promise<DistillationStudyStatus> {
  const r = await kubectl(["get", "distillationstudy", NAME, "-n", namespace, "-o", "json"]);
  return r.code === 0 ? ((JSON.parse(r.stdout) as { status?: DistillationStudyStatus }).status ?? {}) : {};
}

async function context(): Promise<string> {
  const objects = await kubectl(["get", "distillationstudies,jobs,pods", "-n", namespace, "-o", "wide"]);
  const logs = await kubectl(["logs", "-n", namespace, `deploy/${OPERATOR_DEPLOYMENT}`, "--tail=30"]);
  const events = await kubectl(["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"]);
  return `${objects.stdout}\noperator:\n${logs.stdout}\nevents:\n${events.stdout.slice(-3000)}`;
}

const podsOf = async (stage: string) => {
  const r = await kubectl([
    "get",
    "pods",
    "-n",
    namespace,
    "-l",
    `mokd.io/study-stage=${stage}`,
    "-o",
    "name",
  ]);
  return r.stdout.split("\n").filter(Boolean);
};

describe.skipIf(!node)("a DistillationStudy end to end on the real node", () => {
  // Its pods run on the real node: shared with the other real-node files, never while node loss stops its kubelet.
  const bed = new RealNodeOperator();
  beforeAll(async () => {
    await bed.setUp({
      prefix: "study",
      labels: { "pod-security.kubernetes.io/enforce": "restricted" },
      bucket: BUCKET,
      prepare: (_ns, bucket) =>
        bucket.uploadDir("/usr/share/datasets/fashion-mnist", "datasets/fashion-mnist"),
    });
    ({ namespace, s3 } = bed);
    trainer = bed.trainer!;
  }, 1_200_000);

  afterAll(() => bed.tearDown("distillationstudies,jobs"));

  it("runs to Succeeded with the teacher trained once, its outputs shared, and the comparison filled", async () => {
    const started = Date.now();
    const applied = await kubectl(["apply", "-n", namespace, "-f", "-"], { input: JSON.stringify(study()) });
    expect(applied.code, applied.stderr).toBe(0);
    const final = await waitFor(
      "the study finished",
      async () => {
        const s = await status();
        return (s.phase === "Succeeded" || s.phase === "Failed") && s;
      },
      600_000,
      1000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await context()}`, { cause: e });
    });
    console.log(
      `[study e2e] teacher + 4 variants + report on the real node: ${(Date.now() - started) / 1000} s`,
    );
    expect(final, await context()).toMatchObject({
      phase: "Succeeded",
      stage: "Done",
      runs: 4,
      succeeded: 4,
      failed: 0,
    });

    // The teacher was trained once: one teacher pod, and the report's count of teacher trainings is 1.
    expect(await podsOf("teacher")).toHaveLength(1);
    expect(await podsOf("variants")).toHaveLength(4);
    const dir = mkdtempSync(join(tmpdir(), "mokd-study-"));
    await s3!.download(ROOT_PREFIX, dir);
    const summary = JSON.parse(readFileSync(join(dir, StudyLayout.studySummary), "utf8")) as {
      teacher: { trainings: number };
    };
    expect(summary.teacher.trainings).toBe(1);
    // Every variant's teacher outputs came from the shared pass (none for the student alone).
    for (const v of final.variants!) {
      const own = JSON.parse(readFileSync(join(dir, StudyLayout.variantSummary(v.name)), "utf8")) as {
        study: { teacherOutputs: string };
      };
      expect(own.study.teacherOutputs, v.name).toBe(v.arm === "alone" ? "none" : "shared");
      expect(v.bestValidationAccuracy, v.name).toBeGreaterThan(0.1);
      expect(v.testAccuracy, v.name).toBeGreaterThan(0.1);
      expect(v.deviceSeconds, v.name).toBeGreaterThan(0);
    }
    // The comparison table: every arm, the best on validation, mokd against the best fixed cell.
    expect(final.arms?.map((a) => a.arm).sort()).toEqual(["alone", "kd@0.5", "kd@0.9", "mokd"]);
    expect(final.best?.arm).toBeDefined();
    expect(final.comparisons).toEqual([expect.objectContaining({ arm: "mokd", pairs: 1 })]);
    expect(final.teacherAccuracy).toBeGreaterThan(0.1);
    expect(final.reportUri).toBe(`s3://${BUCKET}/${ROOT_PREFIX}/${StudyLayout.report}`);
    expect(readFileSync(join(dir, StudyLayout.report), "utf8")).toContain("<html");
  }, 900_000);
});
