// Wires informers -> work queue -> reconciler, like controller-runtime's manager for one controller: watch the
// DistillationJobs and the children we own (label-selected), map every event to the owner's key.
import type { CoreV1Event, KubernetesObject, V1ConfigMap, V1Job, V1Pod } from "@kubernetes/client-node";
import { GROUP, KIND, PLURAL, STUDY_KIND, STUDY_PLURAL, VERSION } from "../../../api/v1alpha1/index.ts";
import { EventRecorder } from "../lib/events.ts";
import { watchResource, type ResourceWatch } from "../lib/informer.ts";
import { StringPool } from "../lib/intern.ts";
import type { KubeConfigLike } from "../lib/kube-http.ts";
import { watchNamespaces } from "../lib/namespaced-watch.ts";
import { runWorkers, WorkQueue } from "../lib/workqueue.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import { COMPONENT, LABEL_JOB_NAME, MANAGED_SELECTOR, keyOf } from "../names.ts";
import { resourceDefaultsOf, watchedNamespaces, type OperatorConfig } from "../config.ts";
import { ProgressDocumentError, ProgressScraper } from "../progress/scraper.ts";
import { slimConfigMap, slimDistillationJob, slimEvent, slimJob, slimPod } from "./cache-transforms.ts";
import { DeletedPods } from "./deleted-pods.ts";
import { KubeClusterWriter } from "./kube.ts";
import { controllerUid } from "./ownership.ts";
import { Reconciler } from "./reconciler.ts";
import { KubeStudyWriter } from "./study-kube.ts";
import { StudyReconciler } from "./study-reconciler.ts";

type Obj = KubernetesObject & { status?: { phase?: string } };

/**
 * Pods are watched by the label the Job controller itself puts on every pod of a Job (a pod without it is no
 * Job's), not by ours: a pod whose mokd labels someone removed is still its Job's, with its result.
 */
const JOB_POD_SELECTOR = "batch.kubernetes.io/controller-uid";

const collection = (prefix: string, resource: string, namespace?: string) =>
  `${prefix}${namespace ? `/namespaces/${namespace}` : ""}/${resource}`;

export class Manager {
  private readonly queue: WorkQueue;
  private readonly informers: {
    djs: ResourceWatch<Obj>;
    jobs: ResourceWatch<V1Job>;
    configMaps: ResourceWatch<V1ConfigMap>;
    pods: ResourceWatch<V1Pod>;
    events: ResourceWatch<CoreV1Event>;
    /** Only with --study-controller (the default). */
    studies?: ResourceWatch<Obj>;
  };
  /** The DistillationStudy controller's own queue and reconciler (controller-runtime: one queue per controller). */
  private readonly study: { queue: WorkQueue; reconciler: StudyReconciler } | undefined;
  private studyWorkers: Promise<void> | undefined;
  private readonly scraper: ProgressScraper;
  readonly events: EventRecorder;
  private workers: Promise<void> | undefined;
  private readonly reconciler: Reconciler;
  private readonly concurrency: number;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  /** Disrupted trainer pods after their deletion, until a reconcile has counted them (deleted-pods.ts). */
  private readonly deletedPods = new DeletedPods();

  constructor(kubeConfig: KubeConfigLike, config: OperatorConfig, log: Logger, metrics: Metrics) {
    this.queue = new WorkQueue({
      hooks: {
        onDepth: (d) => metrics.queueDepth.set(d),
        onQueueLatency: (_k, s) => metrics.queueLatency.observe(s),
      },
    });
    const namespaces = watchedNamespaces(config);
    // One copy of each repeated string across every cache (lib/intern.ts): most of the operator's memory at scale.
    const strings = new StringPool();
    const interned =
      <T>(slim: (obj: T) => T) =>
      (obj: T): T =>
        strings.internDeep(slim(obj));
    const onError = (what: string) => (error: unknown) =>
      log.warn(`${what} watch error, restarting`, { error: String(error) });
    const enqueueOwner = (obj: KubernetesObject) => {
      const studyKey = this.studyOwnerKey(obj);
      if (studyKey) return this.study?.queue.add(studyKey);
      const key = this.ownerKey(obj);
      if (key) this.queue.add(key);
    };
    /** Children we label as managed: any change enqueues their owning DistillationJob. */
    const watchOwned = <T extends KubernetesObject>(
      apiPrefix: string,
      plural: string,
      kind: string,
      transform: (obj: T) => T,
      indexBy?: (obj: T) => string | undefined,
      labelSelector = MANAGED_SELECTOR,
      onDeleted?: (obj: T) => void,
    ) =>
      watchNamespaces(namespaces, (ns) =>
        watchResource<T>({
          kubeConfig,
          path: collection(apiPrefix, plural, ns),
          labelSelector,
          onEvent: (t, o) => {
            if (t === "DELETED") onDeleted?.(o);
            enqueueOwner(o);
          },
          onError: onError(kind),
          transform,
          ...(indexBy ? { indexBy } : {}),
        }),
      );
    this.informers = {
      djs: watchNamespaces(namespaces, (ns) =>
        watchResource<Obj>({
          kubeConfig,
          path: collection(`/apis/${GROUP}/${VERSION}`, PLURAL, ns),
          // Low priority: a new job's children (bulk work) and our own status writes echoing back wait behind the
          // children's changes, whose statuses someone is waiting on (lib/workqueue.ts, priorities).
          onEvent: (_t, obj) => this.queue.add(keyOf(obj.metadata!.namespace!, obj.metadata!.name!), "low"),
          onError: onError("DistillationJob"),
          // Who else wrote the status is in managedFields: slimDistillationJob keeps just that of them.
          stripManagedFields: false,
          transform: interned(slimDistillationJob),
        }),
      ),
      jobs: watchOwned<V1Job>("/apis/batch/v1", "jobs", "Job", interned(slimJob)),
      configMaps: watchOwned<V1ConfigMap>("/api/v1", "configmaps", "ConfigMap", interned(slimConfigMap)),
      // Indexed by the UID of the Job that controls them: the pods of one child Job, without scanning every
      // cached pod on each reconcile, and only those that Job owns.
      pods: watchOwned<V1Pod>(
        "/api/v1",
        "pods",
        "Pod",
        interned(slimPod),
        controllerUid,
        JOB_POD_SELECTOR,
        (pod) => this.ownJob(pod) && this.deletedPods.remember(pod),
      ),
      // The Job controller's FailedCreate events (a ResourceQuota or a missing PriorityClass refusing the pod):
      // the only place those show. Field-selected server-side; indexed by the Job they are about.
      events: watchNamespaces(namespaces, (ns) =>
        watchResource<CoreV1Event>({
          kubeConfig,
          path: collection("/api/v1", "events", ns),
          fieldSelector: "involvedObject.kind=Job,reason=FailedCreate",
          onEvent: (_t, e) => {
            const { namespace, name } = e.involvedObject ?? {};
            const job = namespace && name ? this.informers.jobs.get(namespace, name) : undefined;
            if (job) enqueueOwner(job);
          },
          onError: onError("Event"),
          transform: slimEvent,
          indexBy: (e) => keyOf(e.involvedObject.namespace ?? "", e.involvedObject.name ?? ""),
        }),
      ),
    };
    metrics.setPhaseSource({
      phases: () =>
        this.informers.djs
          .list()
          .map((o) => ({ namespace: o.metadata?.namespace ?? "", phase: o.status?.phase ?? "Pending" })),
    });
    this.events = new EventRecorder({
      kubeConfig,
      component: COMPONENT,
      onError: (e) => log.warn("event not recorded", { error: String(e) }),
    });
    if (config.studyController) {
      const studyQueue = new WorkQueue({});
      this.informers.studies = watchNamespaces(namespaces, (ns) =>
        watchResource<Obj>({
          kubeConfig,
          path: collection(`/apis/${GROUP}/${VERSION}`, STUDY_PLURAL, ns),
          onEvent: (_t, obj) => studyQueue.add(keyOf(obj.metadata!.namespace!, obj.metadata!.name!)),
          onError: onError("DistillationStudy"),
          transform: interned(slimDistillationJob),
        }),
      );
      const studies = this.informers.studies;
      this.study = {
        queue: studyQueue,
        reconciler: new StudyReconciler({
          reader: {
            study: (n, name) => studies.get(n, name),
            job: (n, name) => this.informers.jobs.get(n, name),
            configMap: (n, name) => this.informers.configMaps.get(n, name),
            pods: (_n, job) => (job.metadata?.uid ? this.informers.pods.byIndex(job.metadata.uid) : []),
            jobEvents: (n, jobName) => this.informers.events.byIndex(keyOf(n, jobName)),
          },
          writer: new KubeClusterWriter(kubeConfig),
          studyWriter: new KubeStudyWriter(kubeConfig),
          events: this.events,
          trainerImage: config.trainerImage,
          trainerImagePullSecrets: config.trainerImagePullSecrets,
          nodeLossTolerationSeconds: config.nodeLossTolerationSeconds,
          resourceDefaults: resourceDefaultsOf(config),
          log: (level, message, meta) => log.log(level, message, meta),
        }),
      };
    }
    this.scraper = new ProgressScraper({
      intervalMs: config.progressInterval * 1000,
      onProgress: (key) => this.queue.add(key),
      // A document the api schema refuses is a trainer/operator contract breach: worth a warning.
      onError: (key, error) =>
        error instanceof ProgressDocumentError
          ? log.warn("trainer progress refused", { key, error: error.message })
          : log.debug("progress read failed", { key, error: String(error) }),
    });
    this.reconciler = new Reconciler({
      reader: {
        distillationJob: (n, name) => this.informers.djs.get(n, name),
        job: (n, name) => this.informers.jobs.get(n, name),
        configMap: (n, name) => this.informers.configMaps.get(n, name),
        pods: (_n, job) => (job.metadata?.uid ? this.informers.pods.byIndex(job.metadata.uid) : []),
        jobEvents: (n, jobName) => this.informers.events.byIndex(keyOf(n, jobName)),
        deletedPods: (_n, job) => (job.metadata?.uid ? this.deletedPods.of(job.metadata.uid) : []),
      },
      writer: new KubeClusterWriter(kubeConfig),
      events: this.events,
      scraper: this.scraper,
      trainerImage: config.trainerImage,
      trainerImagePullSecrets: config.trainerImagePullSecrets,
      nodeLossTolerationSeconds: config.nodeLossTolerationSeconds,
      resourceDefaults: resourceDefaultsOf(config),
      onFinished: (phase, seconds) => metrics.jobDuration.observe({ phase }, seconds),
      log: (level, message, meta) => log.log(level, message, meta),
    });
    this.concurrency = config.concurrency;
    this.log = log;
    this.metrics = metrics;
  }

  /** Children point at their DistillationJob through the controller owner reference; pods through their Job. */
  private ownerKey(obj: KubernetesObject): string | undefined {
    const namespace = obj.metadata?.namespace;
    if (!namespace) return undefined;
    const owner = obj.metadata?.ownerReferences?.find((r) => r.controller);
    if (owner?.kind === KIND) return keyOf(namespace, owner.name);
    if (owner?.kind === "Job") {
      const job = this.informers.jobs.get(namespace, owner.name);
      const djOwner = job?.metadata?.ownerReferences?.find((r) => r.controller && r.kind === KIND);
      if (djOwner) return keyOf(namespace, djOwner.name);
    }
    const label = obj.metadata?.labels?.[LABEL_JOB_NAME];
    return label ? keyOf(namespace, label) : undefined;
  }

  /** A pod of a Job that a DistillationJob controls (the pod watch sees every Job's pods in its namespaces). */
  private ownJob(pod: V1Pod): boolean {
    const owner = pod.metadata?.ownerReferences?.find((r) => r.controller && r.kind === "Job");
    const job =
      owner && pod.metadata?.namespace
        ? this.informers.jobs.get(pod.metadata.namespace, owner.name)
        : undefined;
    const djOwner = job?.metadata?.ownerReferences?.find((r) => r.controller && r.kind === KIND);
    return job !== undefined && job.metadata?.uid === owner?.uid && djOwner !== undefined;
  }

  /** Children of a DistillationStudy: its Jobs and ConfigMap by their owner reference, pods through their Job. */
  private studyOwnerKey(obj: KubernetesObject): string | undefined {
    const namespace = obj.metadata?.namespace;
    if (!namespace) return undefined;
    const owner = obj.metadata?.ownerReferences?.find((r) => r.controller);
    if (owner?.kind === STUDY_KIND) return keyOf(namespace, owner.name);
    if (owner?.kind !== "Job") return undefined;
    const job = this.informers.jobs.get(namespace, owner.name);
    const studyOwner = job?.metadata?.ownerReferences?.find((r) => r.controller && r.kind === STUDY_KIND);
    return studyOwner ? keyOf(namespace, studyOwner.name) : undefined;
  }

  synced(): boolean {
    return Object.values(this.informers).every((i) => !i || i.hasSynced());
  }

  /** Informers that have been failing to list or watch for at least `ms`, with their last error. */
  failingInformers(ms: number): { resource: string; seconds: number; error: string }[] {
    return Object.entries(this.informers).flatMap(([resource, informer]) => {
      if (!informer) return [];
      const failing = informer.failingForMs();
      if (failing === 0 || failing < ms) return [];
      return [{ resource, seconds: Math.round(failing / 1000), error: String(informer.lastError()) }];
    });
  }

  /**
   * Starts the watches; workers begin once every cache they read is filled, so no reconcile sees a half-listed
   * world. The DistillationJob workers do not wait for the study informer: a cluster without the study CRD
   * (older chart, --study-controller left on) still runs its jobs; the failing informer shows in /readyz.
   */
  async start(): Promise<void> {
    const { djs, jobs, configMaps, pods, events, studies } = this.informers;
    await Promise.all([jobs.start(), configMaps.start(), pods.start(), events.start()]);
    const studiesSynced = studies?.start();
    await djs.start();
    this.log.info("caches synced, starting workers", { concurrency: this.concurrency });
    this.workers = runWorkers(this.queue, this.concurrency, (key) => this.reconcile(key), {
      onWorkDuration: (_key, seconds, outcome) => {
        this.metrics.reconcileDuration.observe(seconds);
        this.metrics.reconcileTotal.inc({ result: outcome });
      },
      onError: (key, error) => {
        this.metrics.reconcileErrors.inc();
        const [namespace, name] = key.split("/");
        this.log.warn("reconcile failed, retrying with backoff", { namespace, name, error: String(error) });
      },
    });
    if (!this.study || !studiesSynced) return;
    await studiesSynced;
    const { queue, reconciler } = this.study;
    this.log.info("study cache synced, starting study workers", { concurrency: this.concurrency });
    this.studyWorkers = runWorkers(queue, this.concurrency, (key) => reconciler.reconcile(key), {
      onError: (key, error) => {
        this.metrics.reconcileErrors.inc();
        const [namespace, name] = key.split("/");
        this.log.warn("study reconcile failed, retrying with backoff", {
          namespace,
          name,
          error: String(error),
        });
      },
    });
  }

  private async reconcile(key: string) {
    const [namespace, name] = key.split("/");
    this.log.debug("reconcile", { namespace, name });
    return this.reconciler.reconcile(key);
  }

  /** Graceful stop: no new events, finish in-flight reconciles, flush events. */
  async stop(): Promise<void> {
    Object.values(this.informers).forEach((i) => i?.stop());
    this.scraper.stop();
    await Promise.all([this.queue.shutDownWithDrain(), this.study?.queue.shutDownWithDrain()]);
    await Promise.all([this.workers, this.studyWorkers]);
    await this.events.flush();
  }
}
