// A real Prometheus (Debian's package, extracted by ensure-prometheus.sh) for tests: started on a free loopback
// port with a generated config, queried over its HTTP API, stopped with its process group.
import { execFileSync, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { stopGroups, tail } from "../../bed/processes.ts";
import { waitFor } from "../../bed/env.ts";

const HERE = dirname(fileURLToPath(import.meta.url));

/** Directory with the prometheus and promtool binaries (extracted once, then cached). */
export function prometheusBinDir(): string {
  return execFileSync("bash", [join(HERE, "ensure-prometheus.sh")], { encoding: "utf8" }).trim();
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface ScrapeTarget {
  job: string;
  /** host:port */
  address: string;
}

export interface PromResult {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

export interface RuleState {
  name: string;
  health: string;
  lastError?: string;
  query: string;
}

export class Prometheus {
  readonly url: string;
  private readonly pid: number;
  private readonly dir: string;
  private readonly logFile: string;

  private constructor(url: string, pid: number, dir: string, logFile: string) {
    this.url = url;
    this.pid = pid;
    this.dir = dir;
    this.logFile = logFile;
  }

  static start(targets: ScrapeTarget[], ruleFiles: string[] = [], intervalSeconds = 1): Promise<Prometheus> {
    const scrapeConfigs = targets.map((t) => ({
      job_name: t.job,
      static_configs: [{ targets: [t.address] }],
    }));
    return Prometheus.startWith(scrapeConfigs, ruleFiles, intervalSeconds);
  }

  /**
   * With scrape configs as written in prometheus.yml. `bin`: a directory with another prometheus binary (Debian's
   * has no kubernetes_sd_configs; the bed builds one that has, see test/bed/build-binaries.sh).
   */
  static async startWith(
    scrapeConfigs: object[],
    ruleFiles: string[] = [],
    intervalSeconds = 1,
    bin = prometheusBinDir(),
  ): Promise<Prometheus> {
    const dir = mkdtempSync(join(tmpdir(), "mokd-prometheus-"));
    const port = await freePort();
    const config = {
      global: {
        scrape_interval: `${intervalSeconds}s`,
        evaluation_interval: `${intervalSeconds}s`,
        scrape_timeout: `${intervalSeconds}s`,
      },
      rule_files: ruleFiles,
      scrape_configs: scrapeConfigs,
    };
    writeFileSync(join(dir, "prometheus.yml"), stringify(config));
    const logFile = join(dir, "prometheus.log");
    const fd = openSync(logFile, "a");
    const child = spawn(
      join(bin, "prometheus"),
      [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      { detached: true, stdio: ["ignore", fd, fd] },
    );
    closeSync(fd);
    child.unref();
    const prom = new Prometheus(`http://127.0.0.1:${port}`, child.pid!, dir, logFile);
    await waitFor(
      `Prometheus ready (${logFile})`,
      async () => (await fetch(`${prom.url}/-/ready`)).ok,
      30_000,
    ).catch(async (err: Error) => {
      const log = prom.log();
      await prom.stop();
      throw new Error(`${err.message}\n${log}`);
    });
    return prom;
  }

  /** An instant query; throws with Prometheus' error (e.g. a parse error) when it is not a success. */
  async query(expr: string, time?: number): Promise<PromResult[]> {
    const params = new URLSearchParams({ query: expr });
    if (time !== undefined) params.set("time", String(time));
    const res = await fetch(`${this.url}/api/v1/query?${params}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: PromResult[] } };
    if (body.status !== "success") throw new Error(`Prometheus refused ${expr}: ${body.error}`);
    return body.data!.result;
  }

  async queryRange(expr: string, start: number, end: number, step = 1): Promise<PromResult[]> {
    const params = new URLSearchParams({
      query: expr,
      start: String(start),
      end: String(end),
      step: String(step),
    });
    const res = await fetch(`${this.url}/api/v1/query_range?${params}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: PromResult[] } };
    if (body.status !== "success") throw new Error(`Prometheus refused ${expr}: ${body.error}`);
    return body.data!.result;
  }

  /** The last time (unix seconds) a job's target was scraped successfully, within the last `lookback` seconds. */
  /** The last time `job` (narrowed by `labels`, e.g. one pod) was scraped successfully in the lookback. */
  async lastUpTime(
    job: string,
    lookback = 600,
    labels: Record<string, string> = {},
  ): Promise<number | undefined> {
    const now = Date.now() / 1000;
    const extra = Object.entries(labels).map(([k, v]) => `, ${k}="${v}"`);
    const [series] = await this.queryRange(`up{job="${job}"${extra.join("")}} == 1`, now - lookback, now);
    return series?.values?.at(-1)?.[0];
  }

  async rules(): Promise<RuleState[]> {
    const res = await fetch(`${this.url}/api/v1/rules`);
    const body = (await res.json()) as { data: { groups: { rules: RuleState[] }[] } };
    return body.data.groups.flatMap((g) => g.rules);
  }

  log(): string {
    return tail(this.logFile);
  }

  async stop(): Promise<void> {
    await stopGroups([this.pid]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
