// metav1.Condition semantics: one condition per type; lastTransitionTime moves only when status flips.
import type { Condition } from "../../../api/v1alpha1/index.ts";

export const ConditionType = {
  Created: "Created",
  Running: "Running",
  Suspended: "Suspended",
  Succeeded: "Succeeded",
  Failed: "Failed",
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export type ConditionUpdate = Omit<Condition, "lastTransitionTime" | "observedGeneration">;

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "True";
}

/** Returns a new list with `update` set; the transition time of an unchanged status is kept. */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: string,
  observedGeneration?: number,
): Condition[] {
  const list = [...(conditions ?? [])];
  const existing = list.findIndex((c) => c.type === update.type);
  const previous = existing >= 0 ? list[existing] : undefined;
  const next: Condition = {
    ...update,
    lastTransitionTime: previous && previous.status === update.status ? previous.lastTransitionTime : now,
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
  };
  if (existing >= 0) list[existing] = next;
  else list.push(next);
  return list;
}
