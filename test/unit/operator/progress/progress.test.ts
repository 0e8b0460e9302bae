import { createServer, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  DistillationJobStatus,
  PROGRESS_API_VERSION,
  PROGRESS_KIND,
  TrainerProgress,
  TrainerStatus,
} from "../../../../api/v1alpha1/index.ts";
import {
  progressFromDocument,
  trainerStatusFor,
  trainerStatusFromDocument,
} from "../../../../operator/src/progress/status-from-document.ts";
import { ProgressScraper } from "../../../../operator/src/progress/scraper.ts";
import { ProgressDocument } from "../../../../trainer/src/telemetry/progress-document.ts";

const NOW = "2025-01-01T00:00:00.000Z";

const DOC: TrainerProgress = {
  apiVersion: PROGRESS_API_VERSION,
  kind: PROGRESS_KIND,
  stage: "student",
  stages: ["teacher", "student"],
  epoch: 2,
  totalEpochs: 5,
  step: 412,
  stepsPerEpoch: 200,
  totalSteps: 1000,
  losses: { task: 0.512345, distillation: 1.25 },
  weights: { task: 0.4, distillation: 0.6 },
  trainAccuracy: 0.8,
  validationAccuracy: 0.7812,
  studentAccuracy: 0.7812,
  conflictRate: 0.25,
  samplesPerSecond: 1234.56,
  progressPercentage: 70.6,
  etaSeconds: 87.4,
  updatedAt: "2024-12-31T23:59:58.000Z",
};

describe("progress from the trainer's document", () => {
  it("maps it onto status.progress, rounded, read at the scrape time", () => {
    expect(progressFromDocument(DOC, NOW)).toEqual({
      epoch: 2,
      totalEpochs: 5,
      step: 412,
      stepsPerEpoch: 200,
      totalSteps: 1000,
      stage: "student",
      losses: { task: 0.5123, distillation: 1.25 },
      weights: { task: 0.4, distillation: 0.6 },
      trainAccuracy: 0.8,
      validationAccuracy: 0.7812,
      studentAccuracy: 0.7812,
      conflictRate: 0.25,
      samplesPerSecond: 1234.6,
      etaSeconds: 87,
      lastUpdateTime: NOW,
    });
  });

  it("carries every field of the document but the run-wide ones, which the status schema accepts", () => {
    const lastCheckpoint = {
      stage: "student" as const,
      epoch: 1,
      step: 200,
      time: NOW,
      location: "s3://results/ckpt/latest.json",
    };
    const progress = progressFromDocument({ ...DOC, lastCheckpoint }, NOW);
    const runWide = ["apiVersion", "kind", "stages", "progressPercentage", "updatedAt"];
    expect(Object.keys(progress).sort()).toEqual(
      [...Object.keys(TrainerProgress.shape).filter((k) => !runWide.includes(k)), "lastUpdateTime"].sort(),
    );
    expect(DistillationJobStatus.parse({ progress }).progress).toEqual(progress);
  });

  it("offers Kubeflow Trainer's trainerStatus shape, which the status schema accepts", () => {
    const status = trainerStatusFromDocument(DOC);
    expect(status).toMatchObject({
      progressPercentage: 70, // floored: 100 only when every step is done
      estimatedRemainingSeconds: 87,
      lastUpdatedTime: DOC.updatedAt,
    });
    expect(status.metrics).toEqual(
      expect.arrayContaining([
        { name: "currentEpoch", value: "2" },
        { name: "totalEpochs", value: "5" },
        { name: "currentStep", value: "412" },
        { name: "loss_task", value: "0.5123" },
        { name: "validationAccuracy", value: "0.7812" },
      ]),
    );
    expect(TrainerStatus.parse(status)).toEqual(status);
    expect(() => DistillationJobStatus.parse({ trainerStatus: status })).not.toThrow();
  });

  it("keeps the last trainerStatus unless running, and ends at 100 % with the result at success", () => {
    const latest = trainerStatusFromDocument(DOC);
    expect(trainerStatusFor({ phase: "Running" }, undefined, latest, NOW)).toBe(latest);
    expect(trainerStatusFor({ phase: "Suspended" }, latest, undefined, NOW)).toBe(latest);
    expect(trainerStatusFor({ phase: "Failed" }, latest, undefined, NOW)).toBe(latest);
    expect(trainerStatusFor({ phase: "Pending" }, undefined, undefined, NOW)).toBeUndefined();
    const done = trainerStatusFor(
      {
        phase: "Succeeded",
        completionTime: "2025-01-01T01:00:00Z",
        result: { studentAccuracy: 0.85, teacherAccuracy: 0.84 },
      },
      latest,
      undefined,
      NOW,
    )!;
    expect(done).toMatchObject({
      progressPercentage: 100,
      estimatedRemainingSeconds: 0,
      lastUpdatedTime: "2025-01-01T01:00:00Z",
    });
    expect(done.metrics!.filter((m) => m.name === "studentAccuracy")).toEqual([
      { name: "studentAccuracy", value: "0.85" },
    ]);
    expect(done.metrics).toContainEqual({ name: "teacherAccuracy", value: "0.84" });
  });
});

describe("ProgressScraper, reading the trainer's own /progress handler", () => {
  const servers: { close(): void }[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.close()));

  async function serve(handler: RequestListener): Promise<number> {
    const server = createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as AddressInfo).port;
  }

  /** The trainer's document behind a server that routes /progress to it, as the trainer's metrics port does. */
  async function trainer() {
    const doc = new ProgressDocument({ student: { epochs: 3, stepsPerEpoch: 4 } });
    const port = await serve((req, res) =>
      req.url === "/progress" ? doc.handler(req, res) : void res.writeHead(404).end(),
    );
    return { doc, port };
  }
  const studentStep = (step: number, epoch = 1) => ({
    type: "step" as const,
    stage: "student" as const,
    epoch,
    step,
    losses: { task: 0.5 },
    weights: { task: 1 },
    seconds: 0.01,
  });

  it("reads /progress, validates it, reports changes only, and stops when untracked", async () => {
    const { doc, port } = await trainer();
    doc.startStage("student", 3, 4);
    doc.step(studentStep(4, 2)); // resumed: global step 5
    const reported: string[] = [];
    const scraper = new ProgressScraper({
      intervalMs: 60_000,
      onProgress: (k) => reported.push(k),
      refreshMs: 60_000,
    });
    scraper.track("ns/a", { podIP: "127.0.0.1", port });
    await scraper.scrapeAll();
    expect(scraper.latest("ns/a")).toMatchObject({ epoch: 2, step: 5, stepsPerEpoch: 4, stage: "student" });
    expect(scraper.trainerStatus("ns/a")).toMatchObject({ progressPercentage: 41 });
    await scraper.scrapeAll();
    expect(reported).toEqual(["ns/a"]); // unchanged: no second report
    doc.step(studentStep(5, 2));
    await scraper.scrapeAll();
    expect(reported).toEqual(["ns/a", "ns/a"]);
    expect(scraper.latest("ns/a")?.step).toBe(6);
    scraper.untrack("ns/a");
    expect(scraper.tracked()).toEqual([]);
    expect(scraper.latest("ns/a")).toBeUndefined();
    scraper.stop();
  });

  it("refuses a document the api schema refuses, naming the fields, and keeps no progress from it", async () => {
    const port = await serve((_req, res) =>
      res
        .writeHead(200, { "Content-Type": "application/json" })
        .end(JSON.stringify({ ...DOC, step: -1, progressPercentage: 140 })),
    );
    const errors: unknown[] = [];
    const scraper = new ProgressScraper({
      intervalMs: 60_000,
      onProgress: () => {},
      onError: (_k, e) => errors.push(e),
    });
    scraper.track("ns/bad", { podIP: "127.0.0.1", port });
    await scraper.scrapeAll();
    expect(scraper.latest("ns/bad")).toBeUndefined();
    expect(String(errors[0])).toMatch(/invalid progress document: .*step.*progressPercentage/);
    scraper.stop();
  });

  it("scrapes on its own timer while tracking, and reports unreachable pods as errors", async () => {
    const { doc, port } = await trainer();
    doc.startStage("student", 3, 4);
    doc.step(studentStep(0));
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
