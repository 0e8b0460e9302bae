import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { parseProgress, parsePrometheusText } from "../../../operator/src/progress/parse.ts";
import { ProgressScraper } from "../../../operator/src/progress/scraper.ts";

const NOW = "2025-01-01T00:00:00.000Z";

const EXPOSITION = `# HELP mokd_trainer_loss latest loss
# TYPE mokd_trainer_loss gauge
mokd_trainer_loss{mokd_job="j",mokd_namespace="n",objective="task"} 0.512345
mokd_trainer_loss{mokd_job="j",mokd_namespace="n",objective="distillation"} 1.25
mokd_trainer_objective_weight{mokd_job="j",mokd_namespace="n",objective="task"} 0.4
mokd_trainer_objective_weight{mokd_job="j",mokd_namespace="n",objective="distillation"} 0.6
mokd_trainer_steps_total{mokd_job="j",mokd_namespace="n",stage="teacher"} 900
mokd_trainer_steps_total{mokd_job="j",mokd_namespace="n",stage="student"} 300
mokd_trainer_conflict_steps_total{mokd_job="j",mokd_namespace="n"} 75
mokd_trainer_measured_steps_total{mokd_job="j",mokd_namespace="n"} 300
mokd_trainer_epoch{mokd_job="j",mokd_namespace="n",stage="teacher"} 3
mokd_trainer_epoch{mokd_job="j",mokd_namespace="n",stage="student"} 2
mokd_trainer_epochs_total_planned{mokd_job="j",mokd_namespace="n",stage="student"} 5
mokd_trainer_accuracy_ratio{mokd_job="j",mokd_namespace="n",stage="student",split="train"} 0.8
mokd_trainer_accuracy_ratio{mokd_job="j",mokd_namespace="n",stage="student",split="validation"} 0.7812
mokd_trainer_accuracy_ratio{mokd_job="j",mokd_namespace="n",stage="teacher",split="validation"} 0.9
mokd_trainer_samples_per_second{mokd_job="j",mokd_namespace="n",stage="student"} 1234.56
mokd_trainer_step_duration_seconds_bucket{mokd_job="j",mokd_namespace="n",stage="student",le="+Inf"} 300
mokd_trainer_step_duration_seconds_sum{mokd_job="j",mokd_namespace="n",stage="student"} 30
mokd_trainer_step_duration_seconds_count{mokd_job="j",mokd_namespace="n",stage="student"} 300
process_cpu_seconds_total 12.5
`;

describe("parsePrometheusText", () => {
  it("reads names, escaped labels, special values and skips junk", () => {
    const samples = parsePrometheusText(
      'a{x="q\\"uo\\\\te",y="2"} +Inf\nb 3 1700000000\nnot a sample\n# c 1\nd NaN\n',
    );
    expect(samples).toEqual([
      { name: "a", labels: { x: 'q"uo\\te', y: "2" }, value: Infinity },
      { name: "b", labels: {}, value: 3 },
    ]);
  });
});

describe("parseProgress", () => {
  it("maps the trainer metrics onto status.progress", () => {
    expect(parseProgress(EXPOSITION, NOW)).toEqual({
      stage: "student",
      epoch: 2,
      totalEpochs: 5,
      step: 300,
      losses: { task: 0.5123, distillation: 1.25 },
      weights: { task: 0.4, distillation: 0.6 },
      trainAccuracy: 0.8,
      validationAccuracy: 0.7812,
      studentAccuracy: 0.7812,
      conflictRate: 0.25,
      samplesPerSecond: 1234.6,
      // 300 steps per finished epoch, 5 epochs = 1500 steps, 1200 to go at 0.1 s each.
      etaSeconds: 120,
      lastUpdateTime: NOW,
    });
  });

  it("rates conflicts among the measured steps, not all steps", () => {
    // A single-backward strategy measures gradients on every 10th step: 9 of 30 measured steps conflicted.
    const single = EXPOSITION.replace(/(measured_steps_total\{[^}]*\}) 300/, "$1 30").replace(
      /(conflict_steps_total\{[^}]*\}) 75/,
      "$1 9",
    );
    expect(parseProgress(single, NOW)?.conflictRate).toBe(0.3);
    const withoutMeasured = EXPOSITION.replace(/^mokd_trainer_measured_steps_total.*\n/m, "");
    expect(parseProgress(withoutMeasured, NOW)?.conflictRate).toBeUndefined();
  });

  it("follows the teacher stage before the student starts", () => {
    const p = parseProgress(
      'mokd_trainer_epoch{stage="teacher"} 1\nmokd_trainer_steps_total{stage="teacher"} 10\n',
      NOW,
    );
    expect(p).toMatchObject({ stage: "teacher", epoch: 1, step: 10 });
    expect(p?.etaSeconds).toBeUndefined();
  });

  it("returns undefined for an endpoint that is not the trainer's", () => {
    expect(parseProgress("process_cpu_seconds_total 1\n", NOW)).toBeUndefined();
  });
});

describe("ProgressScraper", () => {
  const servers: { close(): void }[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.close()));

  async function trainerEndpoint(body: () => string): Promise<number> {
    const server = createServer((_req, res) => res.end(body()));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as AddressInfo).port;
  }

  it("reads a pod's /metrics, reports changes only, and stops when untracked", async () => {
    let epoch = 1;
    const port = await trainerEndpoint(() => `mokd_trainer_epoch{stage="student"} ${epoch}\n`);
    const reported: string[] = [];
    const scraper = new ProgressScraper({
      intervalMs: 60_000,
      onProgress: (k) => reported.push(k),
      refreshMs: 60_000,
    });
    scraper.track("ns/a", { podIP: "127.0.0.1", port });
    await scraper.scrapeAll();
    expect(scraper.latest("ns/a")).toMatchObject({ epoch: 1, stage: "student" });
    await scraper.scrapeAll();
    expect(reported).toEqual(["ns/a"]); // unchanged: no second report
    epoch = 2;
    await scraper.scrapeAll();
    expect(reported).toEqual(["ns/a", "ns/a"]);
    expect(scraper.latest("ns/a")?.epoch).toBe(2);
    scraper.untrack("ns/a");
    expect(scraper.tracked()).toEqual([]);
    expect(scraper.latest("ns/a")).toBeUndefined();
    scraper.stop();
  });

  it("scrapes on its own timer while tracking, and reports unreachable pods as errors", async () => {
    const port = await trainerEndpoint(() => `mokd_trainer_epoch{stage="student"} 4\n`);
    const errors: string[] = [];
    const reported = new Promise<string>((resolve) => {
      const scraper = new ProgressScraper({
        intervalMs: 20,
        timeoutMs: 200,
        onProgress: (k) => {
          scraper.stop();
          resolve(k);
        },
        onError: (k) => errors.push(k),
      });
      scraper.track("ns/dead", { podIP: "127.0.0.1", port: 1 });
      scraper.track("ns/live", { podIP: "127.0.0.1", port });
    });
    expect(await reported).toBe("ns/live");
    expect(errors).toContain("ns/dead");
  });
});
