// Status convergence per DistillationJob for the scale bench: how long after each change of its children (Job
// created, pod created, pod unschedulable, pod running, Job finished) the DistillationJob's status first showed
// that change or a later one. Pure: fed with timestamped observations from the bench's own watches.
import type { DistillationJobStatus } from "../../api/v1alpha1/index.ts";

/** How far along a job is, as its children show it and as its status says; higher is later. */
export const Stage = {
  JobCreated: 1,
  PodCreated: 2,
  PodUnschedulable: 2.5,
  PodRunning: 3,
  JobFinished: 4,
} as const;

/** The stage a DistillationJob status reflects (0: none of the children yet). */
export function statusStage(status: DistillationJobStatus | undefined): number {
  if (!status) return 0;
  if (status.phase === "Succeeded" || status.phase === "Failed") return Stage.JobFinished;
  if (status.phase === "Running") return Stage.PodRunning;
  const running = status.conditions?.find((c) => c.type === "Running");
  const created = status.conditions?.find((c) => c.type === "Created")?.status === "True";
  switch (running?.reason) {
    case "TrainerFinished":
      return Stage.PodRunning;
    case "Unschedulable":
      return Stage.PodUnschedulable;
    case undefined:
    case "Creating":
    case "JobCreated":
      return created ? Stage.JobCreated : 0;
    default:
      // PodPending, a stuck waiting reason, a quota...: the pod exists.
      return Stage.PodCreated;
  }
}

interface Observation {
  at: number;
  stage: number;
}

export interface ConvergenceSummary {
  jobs: number;
  /** Per job: the longest lag of any of its child changes, seconds (only jobs whose every change was shown). */
  p50: number;
  p95: number;
  max: number;
  /** Jobs with a lag above the bound (changes never shown count as above). */
  overBound: number;
  /** Jobs with a child change their status never showed by the end. */
  neverShown: number;
}

export class ConvergenceTracker {
  readonly #children = new Map<string, Observation[]>();
  readonly #statuses = new Map<string, Observation[]>();

  /** A child change of job `name` at `at` (ms), reaching `stage`; repeated stages are kept once (the first). */
  child(name: string, stage: number, at: number): void {
    const list = this.#children.get(name) ?? [];
    if (!list.some((o) => o.stage === stage)) list.push({ at, stage });
    this.#children.set(name, list);
  }

  /** The job's status as seen at `at` (ms). */
  status(name: string, status: DistillationJobStatus | undefined, at: number): void {
    const stage = statusStage(status);
    const list = this.#statuses.get(name) ?? [];
    if (list.length === 0 || list[list.length - 1]!.stage !== stage) list.push({ at, stage });
    this.#statuses.set(name, list);
  }

  /** Per job, the longest lag (ms) of its child changes; Infinity when one was never shown. */
  lags(): Map<string, number> {
    const lags = new Map<string, number>();
    for (const [name, changes] of this.#children) {
      const statuses = this.#statuses.get(name) ?? [];
      let worst = 0;
      for (const change of changes) {
        const shown = statuses.find((s) => s.stage >= change.stage);
        worst = Math.max(worst, shown ? Math.max(0, shown.at - change.at) : Infinity);
      }
      lags.set(name, worst);
    }
    return lags;
  }

  /** True once every child change of every job is shown by its status. */
  converged(): boolean {
    for (const lag of this.lags().values()) if (lag === Infinity) return false;
    return true;
  }

  /**
   * The `n` jobs with the longest lags, each with its child changes and status stages (ms since `origin`), so a
   * run that misses the bound shows where the time went.
   */
  worst(n: number, origin: number): string[] {
    const rel = (list: Observation[]) => list.map((o) => `${o.stage}@${((o.at - origin) / 1000).toFixed(1)}`);
    return [...this.lags()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(
        ([name, lag]) =>
          `${name}: lag ${(lag / 1000).toFixed(1)} s; children ${rel(this.#children.get(name) ?? []).join(" ")}; ` +
          `status ${rel(this.#statuses.get(name) ?? []).join(" ")}`,
      );
  }

  summary(boundMs: number): ConvergenceSummary {
    const all = [...this.lags().values()];
    const shown = all.filter((l) => l !== Infinity).sort((a, b) => a - b);
    const at = (q: number) =>
      shown.length ? shown[Math.min(shown.length - 1, Math.floor(q * shown.length))]! : NaN;
    return {
      jobs: all.length,
      p50: at(0.5) / 1000,
      p95: at(0.95) / 1000,
      max: (shown.length ? shown[shown.length - 1]! : NaN) / 1000,
      overBound: all.filter((l) => l > boundMs).length,
      neverShown: all.length - shown.length,
    };
  }
}
