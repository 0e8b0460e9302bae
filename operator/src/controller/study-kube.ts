// The DistillationStudy's own writes (its status, its deletion after ttlSecondsAfterFinished), beside kube.ts's
// for DistillationJobs; its children go through the same ClusterWriter (applyConfigMap, applyJob, patchJob).
import {
  API_VERSION,
  GROUP,
  STUDY_KIND,
  STUDY_PLURAL,
  VERSION,
  type DistillationStudyStatus,
} from "../../../api/v1alpha1/index.ts";
import { KubeHttp, type KubeConfigLike } from "../lib/kube-http.ts";
import { FIELD_MANAGER } from "../names.ts";

export interface StudyWriter {
  /** Applies the whole status; returns the new resourceVersion. */
  applyStatus(namespace: string, name: string, status: DistillationStudyStatus): Promise<string | undefined>;
  /** Deletes the study (TTL); its Jobs and ConfigMap follow through the garbage collector. */
  deleteStudy(namespace: string, name: string, uid: string): Promise<void>;
}

export const studyPath = (namespace: string, name: string) =>
  `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${STUDY_PLURAL}/${name}`;

export class KubeStudyWriter implements StudyWriter {
  private readonly http: KubeHttp;

  constructor(kubeConfig: KubeConfigLike) {
    this.http = KubeHttp.for(kubeConfig);
  }

  async applyStatus(
    namespace: string,
    name: string,
    status: DistillationStudyStatus,
  ): Promise<string | undefined> {
    const body = { apiVersion: API_VERSION, kind: STUDY_KIND, metadata: { name, namespace }, status };
    const updated = await this.http.apply<{ metadata?: { resourceVersion?: string } }>(
      `${studyPath(namespace, name)}/status`,
      body,
      FIELD_MANAGER,
    );
    return updated.metadata?.resourceVersion;
  }

  deleteStudy(namespace: string, name: string, uid: string): Promise<void> {
    return this.http.delete(studyPath(namespace, name), { uid, propagationPolicy: "Background" });
  }
}
