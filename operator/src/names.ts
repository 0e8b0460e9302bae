// Names shared by the builders, the controller and the RBAC rules: labels, field manager, child names.
import { createHash } from "node:crypto";

/** Server-side apply field manager of everything the operator writes. */
export const FIELD_MANAGER = "mokd-operator";
export const COMPONENT = "mokd-operator";

export const LABEL_JOB_NAME = "mokd.io/job-name";
export const LABEL_APP_NAME = "app.kubernetes.io/name";
export const LABEL_INSTANCE = "app.kubernetes.io/instance";
export const LABEL_COMPONENT = "app.kubernetes.io/component";
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
export const LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name";

/** Selects every object the operator creates (children and the pods of the child Jobs). */
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${COMPONENT}`;

export const TRAINER_CONTAINER = "trainer";
export const CONFIG_MOUNT_DIR = "/etc/mokd";
export const CONFIG_FILE = "job.json";

/** Kubernetes label values (and so Job names, whose pods carry them) are limited to 63 characters. */
const MAX_LABEL_VALUE = 63;

/** Shortens a name to `limit` characters deterministically: same input, same output, no collisions in practice. */
export function boundedName(name: string, limit = MAX_LABEL_VALUE): string {
  if (name.length <= limit) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 8);
  return `${name.slice(0, limit - hash.length - 1).replace(/[-.]+$/, "")}-${hash}`;
}

/** Hex digits of the hash in a shortened Job name: 64 bits. */
const JOB_NAME_HASH = 16;

/**
 * The child Job: named after the DistillationJob so a re-apply can never create a second one. Injective: a name
 * of at most 62 characters is kept; any longer one becomes exactly 63 characters (a 46-character prefix, "-",
 * 16 hex digits of the SHA-256 of the whole name). The two ranges are disjoint by length, so no DistillationJob
 * can be named like another's shortened child; two shortened names meet only if 64 bits of SHA-256 do.
 */
export function jobNameFor(djName: string): string {
  if (djName.length < MAX_LABEL_VALUE) return djName;
  const hash = createHash("sha256").update(djName).digest("hex").slice(0, JOB_NAME_HASH);
  // A prefix ending in "-" or "." would make an invalid name: those characters become "x" (same length).
  const prefix = djName
    .slice(0, MAX_LABEL_VALUE - JOB_NAME_HASH - 1)
    .replace(/[-.]+$/, (tail) => "x".repeat(tail.length));
  return `${prefix}-${hash}`;
}

/**
 * The name operator versions before the injective scheme gave the Job of a DistillationJob of 63 or more
 * characters (boundedName): a Job of that name that this DistillationJob controls is still its Job.
 */
export const legacyJobNameFor = (djName: string): string | undefined =>
  djName.length >= MAX_LABEL_VALUE ? boundedName(djName) : undefined;

/**
 * The trainer config. Injective too: a kept name ends in "-config", a shortened one (over 253 characters) in
 * 8 hex digits, which never spell "-config".
 */
export const configMapNameFor = (djName: string) => boundedName(`${djName}-config`, 253);

/** Key of a namespaced object in the work queue and caches. */
export const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;
export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf("/");
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

// ---- DistillationStudy children ----

export const LABEL_STUDY_NAME = "mokd.io/study-name";
/** teacher | variants | report: which stage of the study a Job (and its pods) runs. */
export const LABEL_STUDY_STAGE = "mokd.io/study-stage";

/**
 * Room for "-<index>" (up to 3 digits: at most MAX_STUDY_RUNS runs) after a Job name: the Job controller names an
 * Indexed Job's pod hostnames `<job>-<index>`, and a hostname is a DNS label of at most 63 characters.
 */
const INDEXED_JOB_NAME_LIMIT = MAX_LABEL_VALUE - 4;

/** A study's child Job: `<study>-<stage>`, shortened deterministically (boundedName) when too long. */
export const studyJobNameFor = (study: string, stage: "teacher" | "variants" | "report") =>
  boundedName(`${study}-${stage}`, INDEXED_JOB_NAME_LIMIT);

/** The study's ConfigMap (the study spec the trainer's `study` commands read). */
export const studyConfigMapNameFor = (study: string) => boundedName(`${study}-study`, 253);
