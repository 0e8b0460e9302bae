// Ownership before trust (controller-runtime's IsControlledBy): a child counts as this DistillationJob's only if
// its controller owner reference carries this DistillationJob's UID. Names and labels are anyone's to copy.
import type { V1ObjectMeta } from "@kubernetes/client-node";

type WithMeta = { kind?: string; metadata?: V1ObjectMeta };

/** The controller owner reference's UID, if any. */
export const controllerUid = (obj: WithMeta | undefined) =>
  obj?.metadata?.ownerReferences?.find((r) => r.controller)?.uid;

export const isControlledBy = (obj: WithMeta | undefined, uid: string) =>
  obj !== undefined && controllerUid(obj) === uid;

/** A child's name is taken by an object this DistillationJob does not control: nothing is adopted or changed. */
export class NameConflictError extends Error {
  constructor(kind: string, name: string, namespace: string, obj: WithMeta | undefined) {
    const owner = obj?.metadata?.ownerReferences?.find((r) => r.controller);
    const whose = owner
      ? `controlled by ${owner.kind} ${owner.name}`
      : "not controlled by this DistillationJob";
    super(
      `a ${kind} named ${name} already exists in namespace ${namespace} and is ${whose}: ` +
        "it is left untouched; delete or rename it, or give this DistillationJob another name",
    );
    this.name = "NameConflictError";
  }
}
