// A manifest file as a user hands it to `trainer validate` or `trainer run`: checked whole and strictly, as
// `kubectl apply` and the apiserver would (api/v1alpha1/manifest.ts), every document and List item. `train` (the
// pod's entrypoint) reads the operator's mounted spec leniently instead (config.ts).
import { readFileSync } from "node:fs";
import { checkManifestFile, ConfigError, type CheckedManifest } from "../../api/v1alpha1/index.ts";
import { parseConfig, type TrainerConfig } from "./config.ts";
import { studyFromManifest, type StudyConfig } from "./study/config.ts";

type Env = Record<string, string | undefined>;

/** Every object of the file, checked; an unreadable file, bad YAML or an empty file is a ConfigError. */
export function checkFile(path: string): CheckedManifest[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError([{ field: "", message: `cannot read ${path}: ${(error as Error).message}` }], path);
  }
  return checkManifestFile(text, path);
}

/** One ConfigError naming every bad field of every object (with its document when the file has several). */
export function errorsOf(path: string, checked: CheckedManifest[]): ConfigError | undefined {
  const bad = checked.filter((c) => c.errors.length > 0);
  if (bad.length === 0) return undefined;
  const several = checked.length > 1;
  return new ConfigError(
    bad.flatMap((c) => c.errors.map((e) => (several ? { ...e, message: `${e.message} [${c.where}]` } : e))),
    path,
  );
}

/**
 * The job `trainer run` runs: the file's only DistillationJob, or the one named `name`. Any invalid object in the
 * file refuses the whole file, as `kubectl apply` of it would partly fail.
 */
export function loadJobManifest(
  path: string,
  name: string | undefined,
  env: Env = process.env,
): TrainerConfig {
  const chosen = loadManifest(path, name, env);
  if (chosen.kind === "study")
    throw new ConfigError(
      [{ field: "kind", message: "a DistillationStudy: run it with `trainer run` (it runs every stage)" }],
      path,
    );
  return chosen.config;
}

/** What `trainer run` runs: the file's only object (or the one named `name`), a job or a study. */
export function loadManifest(
  path: string,
  name: string | undefined,
  env: Env = process.env,
): { kind: "job"; config: TrainerConfig } | { kind: "study"; config: StudyConfig } {
  const checked = checkFile(path);
  const error = errorsOf(path, checked);
  if (error) throw error;
  const names = checked.map((c) => c.name ?? "");
  const chosen = name === undefined ? checked : checked.filter((c) => c.name === name);
  if (chosen.length !== 1) {
    const message =
      name === undefined
        ? `the file holds ${checked.length} objects (${names.join(", ")}): choose one with --job NAME`
        : `no DistillationJob or DistillationStudy named ${name} in the file (it holds ${names.join(", ")})`;
    throw new ConfigError([{ field: "--job", message }], path);
  }
  const { study, value } = chosen[0]!;
  if (study) return { kind: "study", config: studyFromManifest(study, path, env) };
  return { kind: "job", config: parseConfig(value, path, env) };
}
