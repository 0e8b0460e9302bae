// Live progress: while a trainer pod runs, read its /metrics every `intervalMs` and hand changes to the
// controller. Pull, not push: the trainer needs no API rights and no operator credentials (docs/operator.md).
import type { Progress } from "../../../api/v1alpha1/index.ts";
import { parseProgress } from "./parse.ts";

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
  fetchText?: (url: string, signal: AbortSignal) => Promise<string>;
  now?: () => Date;
  onError?: (key: string, error: unknown) => void;
}

interface Entry {
  target: ScrapeTarget;
  progress?: Progress;
  reportedAt?: number;
}

async function defaultFetch(url: string, signal: AbortSignal): Promise<string> {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response.text();
}

const withoutTime = ({ lastUpdateTime: _, ...rest }: Progress) => JSON.stringify(rest);

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
      fetchText: defaultFetch,
      now: () => new Date(),
      ...options,
    };
  }

  /** Scrape this job's pod from now on (called by the reconciler while the job runs). */
  track(key: string, target: ScrapeTarget): void {
    const entry = this.entries.get(key);
    if (entry && entry.target.podIP === target.podIP && entry.target.port === target.port) return;
    this.entries.set(key, { target, progress: entry?.progress });
    this.schedule();
  }

  untrack(key: string): void {
    this.entries.delete(key);
    if (this.entries.size === 0) this.cancel();
  }

  latest(key: string): Progress | undefined {
    return this.entries.get(key)?.progress;
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

  private async scrapeOne(key: string): Promise<void> {
    const entry = this.entries.get(key);
    if (!entry) return;
    const { podIP, port } = entry.target;
    const host = podIP.includes(":") ? `[${podIP}]` : podIP;
    try {
      const text = await this.options.fetchText(
        `http://${host}:${port}/metrics`,
        AbortSignal.timeout(this.options.timeoutMs),
      );
      const now = this.options.now();
      const progress = parseProgress(text, now.toISOString());
      if (!progress || this.entries.get(key) !== entry) return;
      const changed = !entry.progress || withoutTime(entry.progress) !== withoutTime(progress);
      const due =
        entry.reportedAt === undefined || now.getTime() - entry.reportedAt >= this.options.refreshMs;
      if (changed || due) {
        entry.progress = progress;
        entry.reportedAt = now.getTime();
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
