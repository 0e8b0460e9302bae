// The reconciler tests' one in-memory cluster: writes land in the caches the reader serves, as the informers
// would deliver them, and the writer refuses what the apiserver refuses (a changed pod template, a Job the test
// says to refuse, a ConfigMap apply the test makes fail).
import type { V1ConfigMap, V1Job, V1Pod } from "@kubernetes/client-node";
import type { DistillationJobStatus } from "../../../../api/v1alpha1/index.ts";
import type { ClusterWriter } from "../../../../operator/src/controller/kube.ts";
import { sameJson } from "../../../../operator/src/controller/canonical.ts";
import type { JobSpecUpdate } from "../../../../operator/src/controller/job-update.ts";
import { Reconciler, type ClusterReader } from "../../../../operator/src/controller/reconciler.ts";
import { KubeApiError } from "../../../../operator/src/lib/kube-http.ts";

export interface FakeClusterOptions {
  /** The DistillationJob's name (in namespace `ns`). */
  name?: string;
  /** Its status as found at the start (a user's, a previous operator's). */
  status?: DistillationJobStatus;
  /** The reconciler's transient-status hold. */
  transientHoldMs?: number;
  /** Makes every Job create fail with this error (as the apiserver refuses an invalid pod template). */
  refuseJob?: Error;
}

/** A cluster holding one DistillationJob with `spec` (anything: the reconciler must cope with what zod refuses). */
export function fakeCluster(spec: unknown = {}, options: FakeClusterOptions = {}) {
  const { name = "mnist", status, transientHoldMs = 0, refuseJob } = options;
  let rv = 10;
  const state = {
    dj: {
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationJob",
      metadata: { name, namespace: "ns", uid: "u1", generation: 1, resourceVersion: String(rv) },
      spec,
      ...(status ? { status } : {}),
    } as Record<string, unknown> | undefined,
    job: undefined as V1Job | undefined,
    cm: undefined as V1ConfigMap | undefined,
    pods: [] as V1Pod[],
  };
  /** Successful writes by kind, and every write in order (`clear:<fields>` for a status clear). */
  const calls = { configMap: 0, job: 0, status: 0, delete: 0 };
  const writes: string[] = [];
  const patches: JobSpecUpdate[] = [];
  /** Set to make the next child apply fail as the apiserver would refuse it. */
  const failures = { configMap: undefined as Error | undefined };
  const events: string[] = [];
  const reader: ClusterReader = {
    distillationJob: () => state.dj,
    job: () => state.job,
    configMap: () => state.cm,
    pods: () => state.pods,
  };
  const writer: ClusterWriter = {
    applyConfigMap: async (cm) => {
      if (failures.configMap) throw failures.configMap;
      calls.configMap++;
      writes.push("configMap");
      return (state.cm = cm);
    },
    applyJob: async (job) => {
      if (refuseJob) throw refuseJob;
      // As the apiserver: a Job's pod template is immutable (batch/v1 ValidateJobSpecUpdate).
      if (state.job && !sameJson(state.job.spec?.template, job.spec?.template)) {
        throw new KubeApiError(
          422,
          `Job.batch "${job.metadata!.name}" is invalid: spec.template: field is immutable`,
        );
      }
      calls.job++;
      writes.push("job");
      state.job = {
        ...job,
        metadata: { ...job.metadata, creationTimestamp: new Date("2025-01-01T00:00:00Z") },
        status: state.job?.status ?? {},
      };
      return state.job;
    },
    patchJob: async (_ns, _name, spec) => {
      writes.push("patchJob");
      patches.push(spec);
      // A JSON merge patch: null removes the field.
      const merged = Object.entries({ ...state.job!.spec!, ...spec }).filter(([, v]) => v !== null);
      state.job = { ...state.job!, spec: Object.fromEntries(merged) as unknown as V1Job["spec"] };
      return state.job;
    },
    applyStatus: async (_ns, _name, s) => {
      calls.status++;
      writes.push("status");
      rv++;
      state.dj = {
        ...state.dj,
        status: s,
        metadata: { ...(state.dj!.metadata as object), resourceVersion: String(rv) },
      };
      return String(rv);
    },
    clearStatus: async (_ns, _name, fields) => {
      writes.push(`clear:${fields.join(",")}`);
      const kept = Object.entries(state.dj!.status as Record<string, unknown>).filter(
        ([k]) => !fields.includes(k),
      );
      state.dj = { ...state.dj, status: Object.fromEntries(kept) };
    },
    deleteDistillationJob: async () => {
      calls.delete++;
      writes.push("delete");
      state.dj = undefined;
    },
  };
  let now = new Date("2025-01-01T00:00:10Z");
  /** A reconciler of this cluster, as one operator version would run it. */
  const operator = (trainerImage?: string) =>
    new Reconciler({
      reader,
      writer,
      events: { record: (_o, type, reason) => void events.push(`${type}/${reason}`) },
      now: () => now,
      transientHoldMs,
      ...(trainerImage ? { trainerImage } : {}),
    });
  return {
    state,
    calls,
    writes,
    patches,
    failures,
    events,
    reader,
    writer,
    reconciler: operator(),
    operator,
    status: () => state.dj?.status as DistillationJobStatus | undefined,
    setNow: (iso: string) => (now = new Date(iso)),
  };
}
