// The operator's Prometheus metrics (names from api/metrics.ts). jobs-by-phase is computed at scrape time from
// the informer cache, so it is always exact and costs nothing between scrapes.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { OperatorMetric } from "../../api/metrics.ts";

export interface JobPhaseSource {
  /** namespace and phase of every DistillationJob in the cache. */
  phases(): { namespace: string; phase: string }[];
}

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let source: JobPhaseSource | undefined;
  const m = {
    registry,
    reconcileTotal: new Counter({
      name: OperatorMetric.reconcileTotal,
      help: "Reconciles by result.",
      labelNames: ["result"],
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: OperatorMetric.reconcileErrors,
      help: "Reconciles that failed.",
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: OperatorMetric.reconcileDuration,
      help: "Reconcile wall time.",
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: OperatorMetric.queueDepth,
      help: "Keys waiting in the work queue.",
      registers: [registry],
    }),
    queueLatency: new Histogram({
      name: OperatorMetric.queueLatency,
      help: "Time a key waits before a worker takes it.",
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60],
      registers: [registry],
    }),
    jobDuration: new Histogram({
      name: OperatorMetric.jobDuration,
      help: "Start to completion of finished DistillationJobs.",
      labelNames: ["phase"],
      buckets: [10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400],
      registers: [registry],
    }),
    leader: new Gauge({
      name: OperatorMetric.leader,
      help: "1 while this replica holds the lease.",
      registers: [registry],
    }),
    setPhaseSource: (s: JobPhaseSource) => (source = s),
  };
  new Gauge({
    name: OperatorMetric.jobsByPhase,
    help: "DistillationJobs by namespace and phase (from the informer cache at scrape time).",
    labelNames: ["namespace", "phase"],
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, { namespace: string; phase: string; n: number }>();
      for (const { namespace, phase } of source?.phases() ?? []) {
        const key = `${namespace}\0${phase}`;
        const entry = counts.get(key) ?? { namespace, phase, n: 0 };
        entry.n++;
        counts.set(key, entry);
      }
      for (const { namespace, phase, n } of counts.values()) this.set({ namespace, phase }, n);
    },
  });
  return m;
}
export type Metrics = ReturnType<typeof createMetrics>;
