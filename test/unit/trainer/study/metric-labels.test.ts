import { describe, expect, it } from "vitest";
import { STUDY_METRIC_LABELS } from "../../../../api/v1alpha1/index.ts";
import { TrainerMetrics } from "../../../../trainer/src/telemetry/metrics.ts";
import { studyLabels } from "../../../../trainer/src/study/stage.ts";
import { parseStudyConfig } from "../../../../trainer/src/study/config.ts";

describe("a study pod's metrics", () => {
  it("carry mokd_study ($MOKD_STUDY) and mokd_variant beside mokd_job", async () => {
    const config = parseStudyConfig(
      {
        apiVersion: "distillation.mokd.io/v1alpha1",
        kind: "DistillationStudy",
        metadata: { name: "pilot" },
        spec: { template: {}, seeds: [1] },
      },
      "test",
      {},
    );
    const labels = studyLabels(
      { config, index: 2, log: { info: () => {}, warn: () => {} }, studyName: "pilot" },
      config.variants[2]!.name,
    );
    expect(labels).toEqual({
      [STUDY_METRIC_LABELS.study]: "pilot",
      [STUDY_METRIC_LABELS.variant]: "mokd-amortized-s1",
    });
    const metrics = new TrainerMetrics("pilot", "default", labels);
    metrics.testAccuracy("student", 0.5);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/mokd_job="pilot".*mokd_study="pilot".*mokd_variant="mokd-amortized-s1"/);
  });
});
