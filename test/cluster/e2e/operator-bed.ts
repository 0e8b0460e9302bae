// One real-node test file's bed, set up and torn down alike by every file that runs the operator's image on the
// real node: the node held (shared), the operator and trainer-cpu images built from their Dockerfiles and
// imported, a namespace whose pods land on the node, a bucket on the bed's S3-compatible server with its
// credentials Secret, and the operator installed by the chart. Fields fill in as setUp goes, so tearDown undoes
// what a setUp that failed half-way did.
import { deleteNamespace, kubectl } from "../../bed/env.ts";
import {
  buildImages,
  helm,
  holdRealNode,
  importImages,
  installOperator,
  realNode,
  realNodeNamespace,
  RELEASE,
  type BuiltImage,
} from "./real-node.ts";
import { clusterS3, S3_SECRET, type ClusterS3 } from "./s3.ts";

export interface RealNodeOperatorOptions {
  /** Prefix of the test namespace's name. */
  prefix: string;
  labels: Record<string, string>;
  bucket: string;
  /** What the file needs before the operator starts (Kueue and its queues, data in the bucket). */
  prepare?: (namespace: string, s3: ClusterS3) => Promise<void>;
}

export class RealNodeOperator {
  namespace = "";
  trainer: BuiltImage | undefined;
  s3: ClusterS3 | undefined;
  private release: (() => void) | undefined;

  async setUp(o: RealNodeOperatorOptions): Promise<void> {
    const node = realNode()!;
    // Shared: a node-loss test stops the node's kubelet only while no other file uses the node.
    this.release = await holdRealNode("shared");
    const images = await buildImages(["operator", "trainer-cpu"]);
    this.trainer = images["trainer-cpu"]!;
    await importImages(node, [images.operator!, this.trainer]);
    this.namespace = await realNodeNamespace(o.prefix, o.labels);
    this.s3 = await clusterS3(node, o.bucket);
    await o.prepare?.(this.namespace, this.s3);
    await this.s3.createSecret(this.namespace, S3_SECRET);
    await installOperator(this.namespace, images.operator!);
  }

  /** The operator uninstalled, `kinds` and the namespace deleted, then `more`, the S3 server, the node released. */
  async tearDown(kinds: string, more?: () => Promise<void>): Promise<void> {
    if (this.namespace) {
      await helm(["uninstall", RELEASE, "-n", this.namespace, "--wait=false"]);
      await kubectl(["delete", kinds, "--all", "-n", this.namespace, "--wait=false"]);
      await deleteNamespace(this.namespace);
    }
    await more?.();
    await this.s3?.stop();
    this.release?.();
  }
}
