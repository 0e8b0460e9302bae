// Leader election on a coordination.k8s.io/v1 Lease, after client-go's tools/leaderelection with LeaseLock.
//
// - acquire: every retryPeriod (jittered) read the Lease; take it when it is free (no holder) or when its
//   record has not changed for leaseDuration as measured by OUR clock since we first saw that record (so clock
//   skew between replicas does not matter); write with the read resourceVersion, so of two candidates racing
//   for one Lease the apiserver accepts exactly one (the other gets 409 Conflict).
// - renew: every retryPeriod (first optimistically onto the Lease last seen, as client-go does; each
//   attempt given at most half the renew deadline, so one slow answer leaves time for another try); if no renew
//   succeeded for renewDeadline (< leaseDuration), leadership is lost: the AbortSignal given to
//   onStartedLeading aborts and onStoppedLeading runs. Since renewDeadline < leaseDuration, the old leader has
//   stopped before any other replica may consider the Lease expired.
// - release (client-go's ReleaseOnCancel): stop, and if leading write holderIdentity="" with a 1 s duration so
//   another replica takes over at its next retry instead of waiting out the lease.

import { KubeHttp, isStatus, type KubeConfigLike } from "./kube-http.ts";

/** User agent of the leader election's requests. */
export const LEADER_ELECTION_USER_AGENT = "mokd-operator-leader-election";
import { sleepUnlessAborted } from "./sleep.ts";
import { monotonicNow, wallNow } from "./clock.ts";

export interface LeaderElectorOptions {
  kubeConfig: KubeConfigLike;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewDeadlineSeconds?: number;
  retryPeriodSeconds?: number;
  onStartedLeading: (signal: AbortSignal) => void;
  onStoppedLeading: () => void;
  onNewLeader?: (identity: string) => void;
  /** Errors talking to the apiserver (they are retried; this is for logs). */
  onError?: (error: unknown) => void;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

/** metav1.MicroTime wants exactly six fractional digits. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export class LeaderElector {
  readonly #opts: Required<Omit<LeaderElectorOptions, "onNewLeader" | "onError">> &
    Pick<LeaderElectorOptions, "onNewLeader" | "onError">;
  readonly #http: KubeHttp;
  readonly #path: string;
  /** The last Lease we read or wrote, and when (our clock) its spec last changed. */
  #observed: Lease | undefined;
  #observedSpec = "";
  #observedAt = 0;
  #lastRenew = 0;
  #leading: AbortController | undefined;
  readonly #stop = new AbortController();
  #reportedLeader: string | undefined;

  constructor(opts: LeaderElectorOptions) {
    this.#opts = { leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2, ...opts };
    const { leaseDurationSeconds, renewDeadlineSeconds, retryPeriodSeconds } = this.#opts;
    if (!(leaseDurationSeconds > renewDeadlineSeconds && renewDeadlineSeconds > retryPeriodSeconds)) {
      throw new Error("leader election needs leaseDuration > renewDeadline > retryPeriod");
    }
    // Its own client (connection pool, no client-side rate limit, its own user agent for APF flow schemas): a
    // renewal must never queue behind the controller's own request burst, or the leader loses its Lease to
    // itself (seen at 5,000 jobs: renewals timed out behind the reconcilers' writes and the leader exited).
    this.#http = new KubeHttp(opts.kubeConfig, LEADER_ELECTION_USER_AGENT, { qps: 0, burst: 1 });
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${opts.namespace}/leases/${opts.name}`;
  }

  isLeader(): boolean {
    return this.#leading !== undefined && !this.#leading.signal.aborted;
  }

  /** Acquires the Lease (waiting as long as needed), then renews it; resolves when leadership ends or on release(). */
  async run(): Promise<void> {
    const stop = this.#stop.signal;
    while (!stop.aborted && !(await this.#tryAcquireOrRenew())) await this.#sleep(jitter(this.#retryMs()));
    if (stop.aborted) return;
    this.#lastRenew = monotonicNow();
    this.#leading = new AbortController();
    this.#opts.onStartedLeading(this.#leading.signal);
    const deadlineMs = this.#opts.renewDeadlineSeconds * 1000;
    while (!stop.aborted) {
      // Wake no later than the renew deadline, so leadership ends on time even when every attempt fails.
      await this.#sleep(Math.min(this.#retryMs(), this.#lastRenew + deadlineMs - monotonicNow()));
      if (stop.aborted || monotonicNow() - this.#lastRenew >= deadlineMs) break;
      if (await this.#tryAcquireOrRenew()) this.#lastRenew = monotonicNow();
      else if (monotonicNow() - this.#lastRenew >= deadlineMs || this.#heldByOther()) break;
    }
    this.#stopLeading();
  }

  /** Stops run(); when leading, hands the Lease back so another replica can take over at once. */
  async release(): Promise<void> {
    this.#stop.abort();
    const wasLeading = this.isLeader();
    this.#stopLeading();
    const lease = this.#observed;
    if (!wasLeading || !lease || lease.spec?.holderIdentity !== this.#opts.identity)
      return this.#http.close();
    const now = microTime(wallNow());
    const released: Lease = {
      ...lease,
      spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: now, acquireTime: now },
    };
    try {
      await this.#http.request<Lease>(this.#path, { method: "PUT", body: released, timeoutMs: 5000 });
    } catch (error) {
      this.#opts.onError?.(error); // the Lease expires on its own
    }
    this.#http.close();
  }

  #stopLeading(): void {
    if (!this.#leading || this.#leading.signal.aborted) return;
    this.#leading.abort(new Error("leadership lost"));
    this.#opts.onStoppedLeading();
  }

  #retryMs(): number {
    return this.#opts.retryPeriodSeconds * 1000;
  }

  #heldByOther(): boolean {
    const holder = this.#observed?.spec?.holderIdentity;
    return !!holder && holder !== this.#opts.identity && !this.#expired();
  }

  #expired(): boolean {
    const duration = this.#observed?.spec?.leaseDurationSeconds ?? this.#opts.leaseDurationSeconds;
    return monotonicNow() >= this.#observedAt + duration * 1000;
  }

  /**
   * When one attempt (a PUT, or a GET and a PUT) must end: never past the renew deadline (past it we no longer
   * claim to lead), and at most half of it after the attempt starts, so that an attempt the apiserver is slow to
   * answer is given up and another made within the deadline instead of one using all of it (at 5,000 jobs on 2
   * loaded cores single Lease PUTs took 5-10 s to execute in the apiserver while most took under 2 s; one such
   * PUT and the GET after it used to cost the Lease).
   */
  #attemptEnd(): number {
    const deadlineMs = this.#opts.renewDeadlineSeconds * 1000;
    const now = monotonicNow();
    const left = this.isLeader() ? this.#lastRenew + deadlineMs - now : deadlineMs;
    return now + Math.min(left, deadlineMs / 2);
  }

  /** One attempt; true when we hold the Lease afterwards. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    const end = this.#attemptEnd();
    const timeoutMs = () => Math.max(1, end - monotonicNow());
    // client-go's fast path: the leader writes onto the Lease it last saw (one request, no read first); on a
    // conflict or error, the read-then-write below. Under a loaded apiserver this halves a renewal's time.
    const own = this.#observed;
    if (this.isLeader() && own?.spec?.holderIdentity === this.#opts.identity) {
      try {
        return await this.#write(this.#newSpec(own.spec), own, timeoutMs());
      } catch (error) {
        if (!isStatus(error, 409)) this.#opts.onError?.(error);
      }
    }
    if (monotonicNow() >= end) return false; // the next attempt comes after retryPeriod
    try {
      const current = await this.#read(timeoutMs());
      if (!current) return await this.#write(this.#newSpec(undefined), undefined, timeoutMs());
      if (this.#heldByOther()) return false;
      return await this.#write(this.#newSpec(current.spec), current, timeoutMs());
    } catch (error) {
      if (!isStatus(error, 409)) this.#opts.onError?.(error);
      return false;
    }
  }

  #newSpec(old: LeaseSpec | undefined): LeaseSpec {
    const now = microTime(wallNow());
    const renewing = old?.holderIdentity === this.#opts.identity && this.isLeader();
    return {
      holderIdentity: this.#opts.identity,
      leaseDurationSeconds: this.#opts.leaseDurationSeconds,
      acquireTime: renewing ? (old?.acquireTime ?? now) : now,
      renewTime: now,
      leaseTransitions: (old?.leaseTransitions ?? 0) + (renewing || !old?.holderIdentity ? 0 : 1),
    };
  }

  async #read(timeoutMs: number): Promise<Lease | undefined> {
    try {
      const lease = await this.#http.request<Lease>(this.#path, { timeoutMs });
      this.#observe(lease);
      return lease;
    } catch (error) {
      if (isStatus(error, 404)) return undefined;
      throw error;
    }
  }

  async #write(spec: LeaseSpec, current: Lease | undefined, timeoutMs: number): Promise<boolean> {
    const { namespace, name } = this.#opts;
    const body: Lease = current
      ? { ...current, spec }
      : { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name, namespace }, spec };
    const collection = `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`;
    const written = current
      ? await this.#http.request<Lease>(this.#path, { method: "PUT", body, timeoutMs })
      : await this.#http.request<Lease>(collection, { method: "POST", body, timeoutMs });
    this.#observe(written);
    return true;
  }

  #observe(lease: Lease): void {
    const spec = JSON.stringify(lease.spec ?? {});
    if (spec !== this.#observedSpec) {
      this.#observedSpec = spec;
      this.#observedAt = monotonicNow();
    }
    this.#observed = lease;
    const holder = lease.spec?.holderIdentity ?? "";
    if (holder && holder !== this.#reportedLeader) {
      this.#reportedLeader = holder;
      this.#opts.onNewLeader?.(holder);
    }
  }

  #sleep(ms: number): Promise<void> {
    return sleepUnlessAborted(ms, this.#stop.signal);
  }
}

function jitter(ms: number): number {
  return ms * (1 + Math.random() * 1.2); // client-go's JitterFactor 1.2
}
