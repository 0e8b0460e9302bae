// Where a job's artifacts live: a local path (in the pod, a mounted volume), an S3 object or prefix
// (`s3://bucket/key`), or an http(s) URL. The URI grammar and the S3 settings are stated here once: the trainer
// resolves URIs with them (trainer/src/storage), the operator decides from them whether the pod needs the
// `fetch` init container and credentials (operator/src/builders).
import { z } from "zod";
import { celChecked, Dns1123Subdomain } from "./k8s-formats.ts";

export type ArtifactUri =
  | { kind: "local"; path: string }
  | { kind: "s3"; bucket: string; key: string }
  | { kind: "https"; url: string };

/** S3 bucket names (the lenient rule S3-compatible stores accept: 3-63 of [a-z0-9.-_], alphanumeric ends). */
const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;
const S3_RE = /^s3:\/\/([^/]+)(?:\/(.*))?$/;
const HTTP_RE = /^https?:\/\//i;

/**
 * Parses an artifact location. `s3://bucket` and `s3://bucket/prefix/` name a prefix (every object under it);
 * `s3://bucket/key` an object or, when no object has that key, the prefix `key/`. Throws with the reason.
 */
export function parseArtifactUri(value: string): ArtifactUri {
  if (value.startsWith("s3://")) {
    const m = S3_RE.exec(value);
    if (!m || !BUCKET_RE.test(m[1]!))
      throw new Error(`${value}: not s3://bucket/key (bucket: 3-63 of a-z, 0-9, '.', '-', '_')`);
    const key = m[2] ?? "";
    if (key.split("/").some((part) => part === ".." || part === "."))
      throw new Error(`${value}: the key must not contain '.' or '..' segments`);
    return { kind: "s3", bucket: m[1]!, key };
  }
  if (HTTP_RE.test(value)) {
    try {
      return { kind: "https", url: new URL(value).toString() };
    } catch {
      throw new Error(`${value}: not a valid URL`);
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value))
    throw new Error(`${value}: unsupported scheme (use a path, s3:// or https://)`);
  return { kind: "local", path: value };
}

export const isRemoteUri = (value: string | undefined) =>
  value !== undefined && parseArtifactUri(value).kind !== "local";

const parses = (value: string) => {
  try {
    parseArtifactUri(value);
    return true;
  } catch {
    return false;
  }
};

const URI_MESSAGE =
  "must be a path, s3://bucket/key or http(s)://... (bucket: 3-63 of a-z, 0-9, '.', '-', '_')";
const S3_URI_CEL = "^s3://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/.*)?$";

/** An input artifact: a path, an s3:// object or prefix, or an http(s) URL. */
export const ArtifactLocation = celChecked(z.string().min(1).max(4096), {
  cel: "!self.startsWith('s3://') || self.matches('" + S3_URI_CEL + "')",
  message: URI_MESSAGE,
  holds: parses,
});

/** An upload destination: an s3:// prefix. */
export const S3Prefix = z
  .string()
  .max(4096)
  .regex(new RegExp(S3_URI_CEL), "must be s3://bucket or s3://bucket/prefix");

export const Sha256 = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex digits")
  .describe(
    "sha256 (hex) the downloaded file must have (a single object or https file; with a tfjs model.json, of model.json): the job fails with ChecksumMismatch when it differs.",
  );

/** Where the operator mounts the CA bundle ConfigMap, and the variable that points the trainer at it. */
export const STORAGE_CA_DIR = "/etc/mokd/storage-ca";
export const STORAGE_CA_ENV = "MOKD_STORAGE_CA_BUNDLE";
/** Keys of `storage.credentialsSecret` mapped to the AWS SDK's standard variables. */
export const CREDENTIAL_SECRET_KEYS = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
] as const;

export const StorageSpec = z
  .object({
    s3: z
      .object({
        endpoint: z
          .string()
          .regex(/^https?:\/\/\S+$/, "must be an http(s) URL")
          .max(2048)
          .optional()
          .describe(
            "Endpoint of an S3-compatible store (e.g. `https://minio.storage:9000`); unset: AWS S3 (or $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL).",
          ),
        region: z
          .string()
          .min(1)
          .max(64)
          .optional()
          .describe("Region of the bucket; unset: $AWS_REGION, the shared config's, else us-east-1."),
        forcePathStyle: z
          .boolean()
          .default(false)
          .describe(
            "Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores on an IP or a single host name need.",
          ),
        maxAttempts: z
          .number()
          .int()
          .min(1)
          .max(20)
          .default(5)
          .describe(
            "Attempts per request on transient errors (timeouts, 5xx, throttling), with exponential backoff; access and not-found errors fail at once.",
          ),
      })
      .prefault({})
      .describe("Settings of the S3 client, for every s3:// URI of the job."),
    credentialsSecret: Dns1123Subdomain.optional().describe(
      "A Secret in the job's namespace whose keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and (optional) AWS_SESSION_TOKEN the trainer pod gets as environment variables. Unset: the SDK's default chain (e.g. the pod's service account with workload identity, `runtime.serviceAccountName`). Only the kubelet reads the Secret; the operator never does.",
    ),
    caBundle: z
      .object({
        configMap: Dns1123Subdomain.describe("ConfigMap in the job's namespace holding the PEM bundle."),
        key: z.string().min(1).max(253).default("ca.crt").describe("Key of the bundle in the ConfigMap."),
      })
      .optional()
      .describe(
        `CA certificates (PEM) trusted for a private S3 endpoint, in addition to the public roots: mounted at ${STORAGE_CA_DIR} and passed to the trainer as $${STORAGE_CA_ENV} (locally: set $${STORAGE_CA_ENV} or $AWS_CA_BUNDLE to a file).`,
      ),
    cache: z
      .object({
        claimName: Dns1123Subdomain.describe(
          "A PersistentVolumeClaim in the job's namespace, writable by the trainer's UID (the pod's fsGroup).",
        ),
      })
      .optional()
      .describe(
        "Where the `fetch` initializer keeps its downloads. Unset: an emptyDir, which goes with the pod, so a retry (a new pod after a failure) or a resume downloads everything again. A claim keeps them: a retry or resume that mounts it finds each file there, checks it against the store (size and ETag, sha256 when given) and downloads only what changed; a ReadWriteOnce claim serves pods on its node, a ReadWriteMany claim every node and job.",
      ),
  })
  .prefault({})
  .describe("Object storage: the S3 client's settings and where its credentials come from.");
export type StorageSpec = z.infer<typeof StorageSpec>;
