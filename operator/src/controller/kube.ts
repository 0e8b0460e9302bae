// The controller's writes, behind an interface so the reconciler is unit-tested without a cluster.
// Children and status go through server-side apply under our field manager, with force: we own these fields.
// All through the lib's KubeHttp (one keep-alive pool): client-node 2.0.1's generated clients open a new
// connection per request and importing them costs ~80 MiB of RSS (docs/benchmarks.md "Operator scale").
import type { V1ConfigMap, V1Job, V1ObjectMeta } from "@kubernetes/client-node";
import {
  GROUP,
  PLURAL,
  VERSION,
  API_VERSION,
  KIND,
  type DistillationJobStatus,
} from "../../../api/v1alpha1/index.ts";
import { KubeHttp, isStatus, type KubeConfigLike } from "../lib/kube-http.ts";
import { FIELD_MANAGER } from "../names.ts";
import type { JobSpecUpdate } from "./job-update.ts";
import { controllerUid, isControlledBy, NameConflictError } from "./ownership.ts";

export interface ClusterWriter {
  /**
   * Creates the ConfigMap, or applies it over one the same owner controls; throws NameConflictError (and
   * changes nothing) when the name is taken by an object the desired owner reference does not control.
   */
  applyConfigMap(configMap: V1ConfigMap): Promise<V1ConfigMap>;
  /** Creates the Job (as applyConfigMap, NameConflictError for a foreign one); only for a Job not cached yet. */
  applyJob(job: V1Job): Promise<V1Job>;
  /** Changes only mutable fields of an existing Job (its pod template is immutable: job-update.ts). */
  patchJob(namespace: string, name: string, spec: JobSpecUpdate): Promise<V1Job>;
  /** Applies the whole status; returns the new resourceVersion. */
  applyStatus(namespace: string, name: string, status: DistillationJobStatus): Promise<string | undefined>;
  /**
   * Removes status fields someone else wrote (a merge patch: server-side apply leaves fields of other field
   * managers in place, so a user-written result would outlive the operator's corrected status).
   */
  clearStatus?(namespace: string, name: string, fields: string[]): Promise<void>;
  /** Deletes the DistillationJob (TTL); its children follow through the garbage collector. */
  deleteDistillationJob(namespace: string, name: string, uid: string): Promise<void>;
}

export function isNotFound(error: unknown): boolean {
  return isStatus(error, 404);
}

const djPath = (namespace: string, name: string) =>
  `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}/${name}`;

function nameOf(obj: { metadata?: { name?: string; namespace?: string } }): {
  name: string;
  namespace: string;
} {
  const { name, namespace } = obj.metadata ?? {};
  if (!name || !namespace) throw new Error("a child needs metadata.name and metadata.namespace");
  return { name, namespace };
}

export class KubeClusterWriter implements ClusterWriter {
  private readonly http: KubeHttp;

  constructor(kubeConfig: KubeConfigLike) {
    this.http = KubeHttp.for(kubeConfig);
  }

  applyConfigMap(body: V1ConfigMap): Promise<V1ConfigMap> {
    const { namespace } = nameOf(body);
    return this.createOrApplyOwned("ConfigMap", `/api/v1/namespaces/${namespace}/configmaps`, body);
  }

  applyJob(body: V1Job): Promise<V1Job> {
    const { namespace } = nameOf(body);
    return this.createOrApplyOwned("Job", `/apis/batch/v1/namespaces/${namespace}/jobs`, body);
  }

  /**
   * Create first: a server-side apply onto an existing object would take over someone else's object of the same
   * name (adding our owner reference: adoption, and later garbage collection of the user's data). Only an
   * object our owner reference already controls (one the cache has not shown us yet) is applied over.
   */
  private async createOrApplyOwned<T extends { metadata?: V1ObjectMeta }>(
    kind: string,
    collection: string,
    body: T,
  ): Promise<T> {
    const { name, namespace } = nameOf(body);
    try {
      return await this.http.request<T>(collection, {
        method: "POST",
        body,
        query: { fieldManager: FIELD_MANAGER },
      });
    } catch (error) {
      if (!isStatus(error, 409)) throw error;
    }
    const existing = await this.http.request<T>(`${collection}/${name}`);
    const owner = controllerUid(body);
    if (!owner || !isControlledBy(existing, owner))
      throw new NameConflictError(kind, name, namespace, existing);
    return this.http.apply<T>(`${collection}/${name}`, body, FIELD_MANAGER);
  }

  /**
   * A JSON merge patch, not an apply: an apply that leaves the template out would ask the apiserver to drop the
   * template fields we own, which is itself a (refused) template change.
   */
  patchJob(namespace: string, name: string, spec: JobSpecUpdate): Promise<V1Job> {
    return this.http.request(`/apis/batch/v1/namespaces/${namespace}/jobs/${name}`, {
      method: "PATCH",
      body: { spec },
      contentType: "application/merge-patch+json",
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  async applyStatus(
    namespace: string,
    name: string,
    status: DistillationJobStatus,
  ): Promise<string | undefined> {
    const body = { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace }, status };
    const updated = await this.http.apply<{ metadata?: { resourceVersion?: string } }>(
      `${djPath(namespace, name)}/status`,
      body,
      FIELD_MANAGER,
    );
    return updated.metadata?.resourceVersion;
  }

  async clearStatus(namespace: string, name: string, fields: string[]): Promise<void> {
    await this.http.request(`${djPath(namespace, name)}/status`, {
      method: "PATCH",
      body: { status: Object.fromEntries(fields.map((f) => [f, null])) },
      contentType: "application/merge-patch+json",
      query: { fieldManager: FIELD_MANAGER },
    });
  }

  deleteDistillationJob(namespace: string, name: string, uid: string): Promise<void> {
    return this.http.delete(djPath(namespace, name), { uid, propagationPolicy: "Background" });
  }
}
