// While the `fetch` initializer downloads, the job's Initializing condition carries its bytes: the trainer's
// FetchProgressDocument served over HTTP (trainer/src/storage/fetch-progress.ts), read by the operator's real
// scraper at the pod's address (FetchProgress from api/v1alpha1/progress.ts), turned into the message.
import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  FETCH_PROGRESS_KIND,
  PROGRESS_API_VERSION,
  type FetchProgress,
} from "../../../../api/v1alpha1/index.ts";
import { ProgressScraper } from "../../../../operator/src/progress/scraper.ts";
import { findCondition } from "../../../../operator/src/status/conditions.ts";
import { deriveStatus } from "../../../../operator/src/status/derive.ts";
import { fetchSummary, formatBytes } from "../../../../operator/src/status/storage.ts";
import {
  closeFetchProgress,
  FetchProgressDocument,
  serveFetchProgress,
} from "../../../../trainer/src/storage/fetch-progress.ts";
import { containerStatus, distillationJob, job, pod } from "../../../fixtures/kube-objects.ts";

const GiB = 2 ** 30;
const NOW = "2025-01-01T00:05:00.000Z";
const remote = distillationJob({
  data: { path: "s3://datasets/imagenet/" },
  teacher: { model: "s3://models/teacher.onnx" },
  student: { model: "s3://models/student/model.json" },
});
const initializingPod = pod("mnist-abc", {
  phase: "Pending",
  podIP: "127.0.0.1",
  initContainerStatuses: [
    containerStatus({ running: { startedAt: new Date("2025-01-01T00:01:00Z") } }, "fetch"),
  ],
});

function document(artifacts: Partial<FetchProgress["artifacts"][number]>[]): FetchProgress {
  return {
    apiVersion: PROGRESS_API_VERSION,
    kind: FETCH_PROGRESS_KIND,
    updatedAt: NOW,
    artifacts: artifacts.map((a, i) => ({
      field: "data.path",
      uri: `s3://b/${i}`,
      state: "pending",
      bytesDone: 0,
      bytesDownloaded: 0,
      cachedFiles: 0,
      ...a,
    })),
  };
}

describe("the Initializing message", () => {
  it.each([
    [0, "0 B"],
    [1536, "1.5 KiB"],
    [1.2 * GiB, "1.2 GiB"],
    [20 * GiB, "20 GiB"],
  ])("formats %d bytes as %s", (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });

  it("names the artifact under way, its bytes of its total, and its place among the artifacts", () => {
    const doc = document([
      { state: "cached", bytesDone: GiB, bytesTotal: GiB, cachedFiles: 2 },
      { uri: "s3://bucket/key", state: "fetching", bytesDone: 1.2 * GiB, bytesTotal: 20 * GiB },
      {},
    ]);
    expect(fetchSummary(doc)).toBe(
      "fetching s3://bucket/key: 1.2 GiB of 20 GiB (2 of 3 artifacts, 1 found in the cache)",
    );
    expect(fetchSummary(document([{ uri: "https://h/f", state: "fetching", bytesDone: 2048 }]))).toBe(
      "fetching https://h/f: 2.0 KiB so far (1 of 1 artifacts)",
    );
    expect(fetchSummary(document([{}]))).toBeUndefined(); // nothing started: the log's pointer instead
  });

  it("falls back to where the log is before the first document", () => {
    const s = deriveStatus(remote, { job: job({ active: 1 }), pods: [initializingPod] }, NOW);
    expect(findCondition(s.conditions, "Initializing")?.message).toContain("kubectl logs mnist-abc -c fetch");
  });
});

describe("the initializer's document, read by the operator's scraper", () => {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });

  it("puts the served bytes into the Initializing condition, and reports a change only", async () => {
    const served = new FetchProgressDocument([
      { field: "data.path", uri: "s3://datasets/imagenet/" },
      { field: "teacher.model", uri: "s3://models/teacher.onnx" },
      { field: "student.model", uri: "s3://models/student/model.json" },
    ]);
    served.watch(0).finished({ path: "/c/x", files: 4, bytes: 3 * GiB, cached: 4, downloaded: 0 });
    served.watch(1).listed(1, 20 * GiB);
    served.watch(1).progressed(Math.round(1.2 * GiB), Math.round(1.2 * GiB), 0);
    const port = await freePort();
    const server = await serveFetchProgress(served, port, () => {});
    const reported: string[] = [];
    const errors: unknown[] = [];
    const scraper = new ProgressScraper({
      intervalMs: 60_000,
      refreshMs: 60_000,
      onProgress: (k) => reported.push(k),
      onError: (_, e) => errors.push(e),
    });
    stop = async () => {
      scraper.stop();
      await closeFetchProgress(server);
    };
    scraper.track("ns/a", { podIP: "127.0.0.1", port });
    await scraper.scrapeAll();
    await scraper.scrapeAll();
    expect(errors).toEqual([]);
    expect(reported).toEqual(["ns/a"]); // the same figures twice: one report
    expect(scraper.latest("ns/a")).toBeUndefined(); // no training progress from an initializer

    const fetching = scraper.latestFetch("ns/a");
    const s = deriveStatus(remote, { job: job({ active: 1 }), pods: [initializingPod], fetching }, NOW);
    expect(s.phase).toBe("Pending");
    expect(findCondition(s.conditions, "Initializing")).toMatchObject({
      status: "True",
      reason: "Initializing",
      message:
        "fetching s3://models/teacher.onnx: 1.2 GiB of 20 GiB (2 of 3 artifacts, 1 found in the cache)",
    });

    served.watch(1).progressed(2 * GiB, 2 * GiB, 0);
    await scraper.scrapeAll();
    expect(reported).toEqual(["ns/a", "ns/a"]);
    expect(scraper.latestFetch("ns/a")?.artifacts[1]?.bytesDone).toBe(2 * GiB);
  });

  it("refuses a document the schema refuses, and keeps no fetch progress across pods", async () => {
    const errors: string[] = [];
    const bad = { ...document([{ bytesDone: -1 }]) };
    const good = document([{ state: "fetching", bytesDone: 5 }]);
    let body: unknown = bad;
    const scraper = new ProgressScraper({
      intervalMs: 60_000,
      onProgress: () => {},
      onError: (_, e) => errors.push(String(e)),
      fetchJson: () => Promise.resolve(body),
    });
    stop = () => Promise.resolve(scraper.stop());
    scraper.track("ns/a", { podIP: "10.0.0.1", port: 9400 });
    await scraper.scrapeAll();
    expect(errors[0]).toMatch(/invalid progress document: artifacts\.0\.bytesDone/);
    body = good;
    await scraper.scrapeAll();
    expect(scraper.latestFetch("ns/a")?.artifacts[0]?.bytesDone).toBe(5);
    scraper.track("ns/a", { podIP: "10.0.0.2", port: 9400 }); // the retry's pod
    expect(scraper.latestFetch("ns/a")).toBeUndefined();
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "0.0.0.0", done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}
