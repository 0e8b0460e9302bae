// The inputs of a spec that live in object storage or behind a URL (data.path, teacher.model, student.model):
// fetched into the cache directory, and the spec they are replaced in with local paths. `trainer fetch` (the
// pod's init container) and the trainer itself call the same function with the same cache directory, so the
// trainer finds what the init container downloaded; a local `trainer run` fetches into ~/.cache/mokd-storage.
import { homedir } from "node:os";
import { join } from "node:path";
import { isRemoteUri, type TrainerSpec } from "../../../api/v1alpha1/index.ts";
import type { StorageContext } from "./client.ts";
import { fetchArtifact } from "./fetch.ts";

export const CACHE_DIR_ENV = "MOKD_CACHE_DIR";

export const cacheRoot = (env: Record<string, string | undefined> = process.env) =>
  env[CACHE_DIR_ENV] || join(homedir(), ".cache", "mokd-storage");

export interface RemoteInput {
  field: "data.path" | "teacher.model" | "student.model";
  uri: string;
  sha256?: string;
}

export type InputField = RemoteInput["field"];

/** The remote inputs of `spec` (only those of `fields` when given: a study stage fetches what it reads). */
export function remoteInputs(spec: TrainerSpec, fields?: readonly InputField[]): RemoteInput[] {
  const candidates: RemoteInput[] = [
    { field: "data.path", uri: spec.data.path, ...(spec.data.sha256 ? { sha256: spec.data.sha256 } : {}) },
    ...(spec.teacher.model
      ? [
          {
            field: "teacher.model" as const,
            uri: spec.teacher.model,
            ...(spec.teacher.sha256 ? { sha256: spec.teacher.sha256 } : {}),
          },
        ]
      : []),
    ...(spec.student.model
      ? [
          {
            field: "student.model" as const,
            uri: spec.student.model,
            ...(spec.student.sha256 ? { sha256: spec.student.sha256 } : {}),
          },
        ]
      : []),
  ];
  return candidates.filter((c) => isRemoteUri(c.uri) && (!fields || fields.includes(c.field)));
}

/** Whether the run touches object storage or URLs at all (inputs, outputs or checkpoints). */
export function usesRemoteStorage(spec: TrainerSpec): boolean {
  return (
    remoteInputs(spec).length > 0 ||
    spec.output.uri !== undefined ||
    spec.output.checkpoints.uri !== undefined
  );
}

/** Fetches every remote input; returns the spec with their local paths. */
export async function resolveInputs(
  spec: TrainerSpec,
  ctx: StorageContext,
  root: string,
  fields?: readonly InputField[],
): Promise<TrainerSpec> {
  const local = structuredClone(spec);
  for (const input of remoteInputs(spec, fields)) {
    const { path } = await fetchArtifact(
      ctx,
      { uri: input.uri, ...(input.sha256 ? { sha256: input.sha256 } : {}) },
      root,
    );
    if (input.field === "data.path") local.data.path = path;
    else if (input.field === "teacher.model") local.teacher.model = path;
    else local.student.model = path;
  }
  return local;
}
