// Live progress: while a trainer pod runs, read its progress document (GET /progress on the metrics port, the
// api's TrainerProgress) every `intervalMs`, validate it with that schema and hand changes to the controller.
// While its `fetch` init container runs, the same address serves the api's FetchProgress (bytes per input).
// Pull, not push: the trainer needs no API rights and no operator credentials (docs/operator.md).
import {
  FETCH_PROGRESS_KIND,
  FetchProgress,
  PROGRESS_PATH,
  TrainerProgress,
  type Progress,
  type TrainerStatus,
} from "../../../api/v1alpha1/index.ts";
import { wallNow } from "../lib/clock.ts";
import { progressFromDocument, trainerStatusFromDocument } from "./status-from-document.ts";

export interface ScrapeTarget {
  podIP: string;
  port: number;
}

export interface ScraperOptions {
  intervalMs: number;
  /** Called when a job's progress changed (or was refreshed): the controller enqueues the key. */
  onProgress: (key: string) => void;
  timeoutMs?: number;
  /** How many scrapes run at once. */
  concurrency?: number;
  /** Re-report unchanged progress this often, so lastUpdateTime shows the trainer is still being read. */
  refreshMs?: number;
  fetchJson?: (url: string, signal: AbortSignal) => Promise<unknown>;
  now?: () => Date;
  /** A failed read, or a document the schema refuses (the message names the fields). */
  onError?: (key: string, error: unknown) => void;
}

/** What one read of a trainer gave, in the two shapes the status carries. */
export interface Reading {
  progress: Progress;
  trainerStatus: TrainerStatus;
}

interface Entry {
  target: ScrapeTarget;
  reading?: Reading;
  /** The initializer's document of this pod (never carried over to another pod). */
  fetching?: FetchProgress;
  reportedAt?: number;
}

async function defaultFetch(url: string, signal: AbortSignal): Promise<unknown> {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response.json();
}

/** A reading without its timestamps: what "changed" means. */
const content = ({ progress, trainerStatus }: Reading) => {
  const { lastUpdateTime: _read, ...figures } = progress;
  const { lastUpdatedTime: _updated, ...status } = trainerStatus;
  return JSON.stringify([figures, status]);
};

export class ProgressDocumentError extends Error {}

export class ProgressScraper {
  private readonly entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;
  private readonly options: Required<Omit<ScraperOptions, "onError">> & Pick<ScraperOptions, "onError">;
  private stopped = false;

  constructor(options: ScraperOptions) {
    this.options = {
      timeoutMs: 2000,
      concurrency: 16,
      refreshMs: 25_000,
      fetchJson: defaultFetch,
      now: wallNow,
      ...options,
    };
  }

  /** Scrape this job's pod from now on (called by the reconciler while the job runs). */
  track(key: string, target: ScrapeTarget): void {
    const entry = this.entries.get(key);
    if (entry && entry.target.podIP === target.podIP && entry.target.port === target.port) return;
    this.entries.set(key, { target, ...(entry?.reading ? { reading: entry.reading } : {}) });
    this.schedule();
  }

  untrack(key: string): void {
    this.entries.delete(key);
    if (this.entries.size === 0) this.cancel();
  }

  /** status.progress of the latest valid document. */
  latest(key: string): Progress | undefined {
    return this.entries.get(key)?.reading?.progress;
  }

  /** status.trainerStatus (Kubeflow Trainer's shape) of the latest valid document. */
  trainerStatus(key: string): TrainerStatus | undefined {
    return this.entries.get(key)?.reading?.trainerStatus;
  }

  /** The `fetch` initializer's latest valid document, while the pod initializes. */
  latestFetch(key: string): FetchProgress | undefined {
    return this.entries.get(key)?.fetching;
  }

  tracked(): string[] {
    return [...this.entries.keys()];
  }

  stop(): void {
    this.stopped = true;
    this.cancel();
  }

  /** One round over every tracked pod (exposed for tests). */
  async scrapeAll(): Promise<void> {
    const keys = [...this.entries.keys()];
    const workers = Array.from({ length: Math.min(this.options.concurrency, keys.length) }, async () => {
      for (let key = keys.shift(); key !== undefined; key = keys.shift()) await this.scrapeOne(key);
    });
    await Promise.all(workers);
  }

  private async read(target: ScrapeTarget): Promise<Reading | FetchProgress> {
    const host = target.podIP.includes(":") ? `[${target.podIP}]` : target.podIP;
    const body = await this.options.fetchJson(
      `http://${host}:${target.port}${PROGRESS_PATH}`,
      AbortSignal.timeout(this.options.timeoutMs),
    );
    const isFetch = (body as { kind?: unknown } | null)?.kind === FETCH_PROGRESS_KIND;
    const parsed = (isFetch ? FetchProgress : TrainerProgress).safeParse(body);
    if (!parsed.success) {
      const fields = parsed.error.issues.map((i) => `${i.path.join(".") || "(document)"}: ${i.message}`);
      throw new ProgressDocumentError(`invalid progress document: ${fields.join("; ")}`);
    }
    if (parsed.data.kind === FETCH_PROGRESS_KIND) return parsed.data;
    return {
      progress: progressFromDocument(parsed.data, this.options.now().toISOString()),
      trainerStatus: trainerStatusFromDocument(parsed.data),
    };
  }

  /** An initializer's document: reported when its figures changed (its timestamp alone is no change). */
  private keepFetch(key: string, entry: Entry, document: FetchProgress): void {
    const figures = (d: FetchProgress | undefined) => JSON.stringify(d?.artifacts);
    if (figures(entry.fetching) === figures(document)) return;
    entry.fetching = document;
    this.options.onProgress(key);
  }

  private async scrapeOne(key: string): Promise<void> {
    const entry = this.entries.get(key);
    if (!entry) return;
    try {
      const reading = await this.read(entry.target);
      if (this.entries.get(key) !== entry) return;
      if ("artifacts" in reading) return this.keepFetch(key, entry, reading);
      const now = this.options.now().getTime();
      const changed = !entry.reading || content(entry.reading) !== content(reading);
      const due = entry.reportedAt === undefined || now - entry.reportedAt >= this.options.refreshMs;
      if (changed || due) {
        entry.reading = reading;
        entry.reportedAt = now;
        this.options.onProgress(key);
      }
    } catch (error) {
      this.options.onError?.(key, error);
    }
  }

  /** A timer only while something runs: an idle operator makes no requests. */
  private schedule(): void {
    if (this.timer || this.stopped || this.entries.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.scrapeAll().finally(() => this.schedule());
    }, this.options.intervalMs);
    this.timer.unref();
  }

  private cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
