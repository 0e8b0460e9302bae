// What the DistillationJob and DistillationStudy reconcilers share about the object they reconcile, whatever its
// kind: reading it from the cache and parsing it with the kind's schema (or the schema's message naming each bad
// field), and what a spec the schema refuses becomes.
import type { V1Job } from "@kubernetes/client-node";
import { API_VERSION, type Phase } from "../../../api/v1alpha1/index.ts";
import { isTerminal } from "../status/derive.ts";
import { isControlledBy } from "./ownership.ts";
import type { EventSink } from "./reconciler.ts";

/** The object as the cache holds it, before its spec is parsed. */
export interface RawOwner<S> {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    generation?: number;
    deletionTimestamp?: unknown;
    managedFields?: unknown;
  };
  status?: S;
}

/** The parsed object, or the schema's message for one it refuses; with the raw object either way. */
export type LoadedOwner<T, S> = { owner: T; raw: RawOwner<S> } | { invalid: string; raw: RawOwner<S> };

/**
 * The object the cache holds, parsed by `parse` (the object, or the schema's message). Undefined for one that is
 * gone, and for one being deleted that the schema refuses: there is nothing left to do for it.
 */
export function loadOwner<T, S>(
  raw: unknown,
  parse: (raw: unknown) => T | string,
): LoadedOwner<T, S> | undefined {
  if (!raw) return undefined;
  const cached = raw as RawOwner<S>;
  const owner = parse(raw);
  if (typeof owner !== "string") return { owner, raw: cached };
  return cached.metadata?.deletionTimestamp ? undefined : { invalid: owner, raw: cached };
}

/** How one kind marks a refused spec. */
export interface InvalidSpecHandling<S> {
  kind: string;
  events: EventSink;
  /** The kind's first child Job: once it exists the run has started. */
  firstJob: (namespace: string, name: string) => V1Job | undefined;
  /** The kind's Failed/InvalidSpec status. */
  failedStatus: (previous: S, message: string, now: string, generation?: number) => S;
  applyStatus: (namespace: string, name: string, status: S) => Promise<unknown>;
  log?: (level: "info" | "warn" | "debug", message: string, meta: Record<string, unknown>) => void;
}

/**
 * A spec the CRD let through but the schema refuses (a CRD older than the operator, or validation bypassed).
 * Always a Warning event naming the fields. A run that never started is also marked Failed/InvalidSpec (its spec
 * is immutable, so it cannot be fixed in place: recreate it). One whose first Job already exists keeps its status
 * and its children: an operator upgrade must not fail work in flight. Not retried: nothing changes until the
 * object does.
 */
export async function rejectInvalidSpec<S extends { phase?: string }>(
  raw: RawOwner<S>,
  message: string,
  now: string,
  h: InvalidSpecHandling<S>,
): Promise<void> {
  const { namespace, name, uid, generation } = raw.metadata;
  const ref = { apiVersion: API_VERSION, kind: h.kind, metadata: { name, namespace, uid } };
  h.events.record(ref, "Warning", "InvalidSpec", message);
  const previous = raw.status ?? ({} as S);
  if (isTerminal(previous.phase as Phase | undefined) || isControlledBy(h.firstJob(namespace, name), uid))
    return;
  await h.applyStatus(namespace, name, h.failedStatus(previous, message, now, generation));
  h.log?.("warn", "invalid spec", { kind: h.kind, namespace, name, message });
}
