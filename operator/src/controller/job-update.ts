// What the reconciler may change on a child Job that already exists.
//
// batch/v1 validation (ValidateJobSpecUpdate, k8s 1.36) makes a running Job's pod template, podFailurePolicy,
// completions, selector and successPolicy immutable: re-applying a changed template (a new --trainer-image, a
// builder change in a new operator version) is refused with 422 for as long as the Job exists. So an existing
// Job keeps the template it was created with, and only the fields that follow runPolicy — the one part of a
// DistillationJob's spec that may change after creation — are patched. A changed template applies to the next
// DistillationJob (the Job controller creates every retry of a Job from that Job's own template).
import type { V1Job } from "@kubernetes/client-node";

/** The mutable JobSpec fields the builder sets (null removes one, as in a JSON merge patch). */
export interface JobSpecUpdate {
  suspend?: boolean;
  backoffLimit?: number;
  activeDeadlineSeconds?: number | null;
}

const MUTABLE = ["suspend", "backoffLimit", "activeDeadlineSeconds"] as const;

/** The mutable fields whose value on the cluster (`actual`) differs from `desired`; undefined when none do. */
export function jobSpecUpdate(desired: V1Job, actual: V1Job): JobSpecUpdate | undefined {
  const update: Record<string, unknown> = {};
  for (const field of MUTABLE) {
    const want = desired.spec?.[field];
    if (want !== actual.spec?.[field]) update[field] = want ?? null;
  }
  return Object.keys(update).length > 0 ? (update as JobSpecUpdate) : undefined;
}

/** The mutable fields of a Job, for the informer cache (cache-transforms.ts keeps no more of its spec). */
export function mutableSpecOf(
  job: V1Job,
): Partial<Pick<NonNullable<V1Job["spec"]>, (typeof MUTABLE)[number]>> {
  const spec = job.spec;
  if (!spec) return {};
  return Object.fromEntries(MUTABLE.flatMap((f) => (spec[f] === undefined ? [] : [[f, spec[f]]])));
}
