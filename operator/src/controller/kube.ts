// The controller's writes, behind an interface so the reconciler is unit-tested without a cluster.
// Children and status go through server-side apply under our field manager, with force: we own these fields.
import {
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1ConfigMap,
  type V1Job,
} from "@kubernetes/client-node";
import {
  GROUP,
  PLURAL,
  VERSION,
  API_VERSION,
  KIND,
  type DistillationJobStatus,
} from "../../../api/v1alpha1/index.ts";
import { FIELD_MANAGER } from "../names.ts";

export interface ClusterWriter {
  applyConfigMap(configMap: V1ConfigMap): Promise<V1ConfigMap>;
  applyJob(job: V1Job): Promise<V1Job>;
  /** Applies the whole status; returns the new resourceVersion. */
  applyStatus(namespace: string, name: string, status: DistillationJobStatus): Promise<string | undefined>;
  /** Deletes the DistillationJob (TTL); its children follow through the garbage collector. */
  deleteDistillationJob(namespace: string, name: string, uid: string): Promise<void>;
}

/** client-node picks json-patch for PATCH; apply needs its own content type (the JSON body is valid YAML). */
const APPLY = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);

export function isNotFound(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: number }).code === 404;
}

export class KubeClusterWriter implements ClusterWriter {
  private readonly core: CoreV1Api;
  private readonly batch: BatchV1Api;
  private readonly custom: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.batch = kubeConfig.makeApiClient(BatchV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  applyConfigMap(body: V1ConfigMap): Promise<V1ConfigMap> {
    const { name, namespace } = body.metadata as { name: string; namespace: string };
    return this.core.patchNamespacedConfigMap(
      { name, namespace, body, fieldManager: FIELD_MANAGER, force: true },
      APPLY,
    );
  }

  applyJob(body: V1Job): Promise<V1Job> {
    const { name, namespace } = body.metadata as { name: string; namespace: string };
    return this.batch.patchNamespacedJob(
      { name, namespace, body, fieldManager: FIELD_MANAGER, force: true },
      APPLY,
    );
  }

  async applyStatus(
    namespace: string,
    name: string,
    status: DistillationJobStatus,
  ): Promise<string | undefined> {
    const body = { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace }, status };
    const request = { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body };
    const updated = (await this.custom.patchNamespacedCustomObjectStatus(
      { ...request, fieldManager: FIELD_MANAGER, force: true },
      APPLY,
    )) as { metadata?: { resourceVersion?: string } };
    return updated.metadata?.resourceVersion;
  }

  async deleteDistillationJob(namespace: string, name: string, uid: string): Promise<void> {
    try {
      await this.custom.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace,
        name,
        propagationPolicy: "Background",
        body: { preconditions: { uid } },
      });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
}
