// The DistillationJob as the controller, the builders and status derivation see it. Its own module, so that
// status/ and builders/ both depend on it instead of on each other.
import type { DistillationJob } from "../../api/v1alpha1/index.ts";

/** A DistillationJob as the controller sees it: parsed and defaulted, with the identity children need. */
export interface OwnerJob extends DistillationJob {
  metadata: DistillationJob["metadata"] & { name: string; namespace: string; uid: string };
}
