// The previous status is an input like any other: anyone with `update` on distillationjobs/status can write it.
// Before anything is derived from it, it is checked: times must parse and not lie in the future, only the
// operator's own condition types are kept, and every field another field manager wrote is dropped (and then
// removed from the object), so no user-written phase, result, progress, trainerStatus or time survives.
import { Disruption, type DistillationJobStatus } from "../../../api/v1alpha1/index.ts";
import { ConditionType } from "./conditions.ts";

/** RFC 3339 as the apiserver writes metav1.Time (seconds, optional fraction, Z or offset). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
/** Clock skew tolerated between the apiserver, the kubelet and the operator. */
const MAX_SKEW_MS = 5 * 60 * 1000;

/** `value` when it is an RFC 3339 time not after `now` (plus skew); undefined for garbage or the future. */
export function checkedTime(value: unknown, now: string): string | undefined {
  if (typeof value !== "string" || !RFC3339.test(value)) return undefined;
  const ms = Date.parse(value);
  if (!Number.isFinite(ms) || ms > Date.parse(now) + MAX_SKEW_MS) return undefined;
  return value;
}

/** The counted disruption if it has the schema's shape (its time checked like any other); else none. */
function checkedDisruption(value: unknown, now: string): Disruption | undefined {
  const parsed = Disruption.safeParse(value);
  if (!parsed.success) return undefined;
  const { time, ...rest } = parsed.data;
  const checked = checkedTime(time, now);
  return { ...rest, ...(checked ? { time: checked } : {}) };
}

const OWN_CONDITIONS: ReadonlySet<string> = new Set(Object.values(ConditionType));

/** The status with unchecked times replaced (conditions: by `now`) or dropped, and foreign condition types gone. */
export function checkedStatus(status: DistillationJobStatus, now: string): DistillationJobStatus {
  const { startTime, completionTime, attempts, conditions, lastDisruption, ...rest } = status;
  const start = checkedTime(startTime, now);
  const done = checkedTime(completionTime, now);
  const disruption = checkedDisruption(lastDisruption, now);
  const checked: DistillationJobStatus = {
    ...rest,
    ...(start ? { startTime: start } : {}),
    ...(done ? { completionTime: done } : {}),
    ...(Number.isInteger(attempts) && attempts! >= 0 ? { attempts } : {}),
    ...(disruption ? { lastDisruption: disruption } : {}),
  };
  const own = conditions
    ?.filter((c) => OWN_CONDITIONS.has(c.type))
    .map((c) => ({ ...c, lastTransitionTime: checkedTime(c.lastTransitionTime, now) ?? now }));
  return own?.length ? { ...checked, conditions: own } : checked;
}

interface ManagedFieldsEntry {
  manager?: string;
  subresource?: string;
  fieldsV1?: unknown;
}

/** Top-level status fields that a field manager other than `ours` owns (from metadata.managedFields). */
export function foreignStatusFields(
  metadata: { managedFields?: unknown } | undefined,
  ours: string,
): string[] {
  const entries = Array.isArray(metadata?.managedFields)
    ? (metadata.managedFields as ManagedFieldsEntry[])
    : [];
  const fields = new Set<string>();
  for (const entry of entries) {
    if (entry.manager === ours) continue;
    const status = (entry.fieldsV1 as Record<string, unknown> | undefined)?.["f:status"];
    if (!status || typeof status !== "object") continue;
    for (const key of Object.keys(status)) if (key.startsWith("f:")) fields.add(key.slice(2));
  }
  return [...fields].sort();
}

/** The status without the given top-level fields. */
export function withoutFields(
  status: DistillationJobStatus,
  fields: readonly string[],
): DistillationJobStatus {
  return Object.fromEntries(
    Object.entries(status).filter(([key]) => !fields.includes(key)),
  ) as DistillationJobStatus;
}
