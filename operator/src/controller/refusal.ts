// A child the apiserver refuses as invalid (400/413/422) is a property of the spec, not a passing failure: retrying
// the same apply can only fail again, and the spec is immutable. Such a refusal before the trainer Job exists ends
// the job Failed with reason InvalidSpec and the apiserver's own message (status/derive.ts), instead of a retry
// loop that leaves the DistillationJob without a status.
import { SpecRefusal } from "../builders/spec-refusal.ts";
import { KubeApiError } from "../lib/kube-http.ts";

/** HTTP statuses of a request the apiserver will refuse again: bad request, too large, invalid. */
const REFUSED = new Set([400, 413, 422]);

/** The message of a refusal, or undefined for errors worth retrying (conflicts, timeouts, 5xx, forbidden). */
export function refusalMessage(error: unknown): string | undefined {
  if (error instanceof SpecRefusal) return error.message;
  if (error instanceof KubeApiError && REFUSED.has(error.status)) return error.message;
  return undefined;
}
