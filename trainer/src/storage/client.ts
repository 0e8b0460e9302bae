// The S3 client of a run, from spec.storage.s3 and the SDK's standard sources: credentials from its default chain
// ($AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY, shared config/credentials files and profiles, web identity tokens
// for workload identity, container credentials), region and endpoint from the spec, else $AWS_REGION and
// $AWS_ENDPOINT_URL(_S3) or the shared config. Retries are ours (retry.ts: logged and counted), not the SDK's.
import { existsSync, readFileSync } from "node:fs";
import { Agent } from "node:https";
import { homedir } from "node:os";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import { S3Client } from "@aws-sdk/client-s3";
import { STORAGE_CA_ENV, type StorageSpec } from "../../../api/v1alpha1/index.ts";
import { DEFAULT_RETRY, type RetryObserver, type RetryPolicy } from "./retry.ts";

type Env = Record<string, string | undefined>;

/** Everything a storage operation needs: the client (made on first use), the retry policy and the log. */
export interface StorageContext {
  s3(): S3Client;
  retry: RetryPolicy;
  observer: RetryObserver;
  /** Progress lines, one per artifact and every few seconds while one transfers. */
  info(message: string): void;
  /** Counts bytes moved (download, upload). */
  bytes?(direction: "download" | "upload", n: number): void;
}

/** The region: the spec's, the environment's, the shared config's (the SDK reads it), else us-east-1. */
function region(settings: StorageSpec["s3"], env: Env): string | undefined {
  if (settings.region) return settings.region;
  if (env.AWS_REGION || env.AWS_DEFAULT_REGION) return env.AWS_REGION || env.AWS_DEFAULT_REGION;
  const sharedConfig = env.AWS_CONFIG_FILE ?? join(homedir(), ".aws", "config");
  return existsSync(sharedConfig) ? undefined : "us-east-1";
}

/** Extra CA certificates for a private endpoint: $MOKD_STORAGE_CA_BUNDLE (the operator's mount) or $AWS_CA_BUNDLE. */
function httpsAgent(env: Env): Agent | undefined {
  const file = env[STORAGE_CA_ENV] || env.AWS_CA_BUNDLE;
  if (!file) return undefined;
  return new Agent({ keepAlive: true, ca: [...rootCertificates, readFileSync(file, "utf8")] });
}

export function makeS3Client(storage: StorageSpec, env: Env = process.env): S3Client {
  const s3 = storage.s3;
  const agent = httpsAgent(env);
  return new S3Client({
    region: region(s3, env),
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    forcePathStyle: s3.forcePathStyle,
    maxAttempts: 1,
    // S3-compatible stores differ in their support of the newer default checksums: only where S3 requires them.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    ...(agent ? { requestHandler: { httpsAgent: agent, requestTimeout: 120_000 } } : {}),
  });
}

export interface ContextOptions {
  info(message: string): void;
  warn(message: string): void;
  retried?(operation: string): void;
  bytes?(direction: "download" | "upload", n: number): void;
  env?: Env;
}

export function storageContext(storage: StorageSpec, options: ContextOptions): StorageContext {
  let client: S3Client | undefined;
  return {
    s3: () => (client ??= makeS3Client(storage, options.env)),
    retry: { ...DEFAULT_RETRY, attempts: storage.s3.maxAttempts },
    observer: { warn: options.warn, ...(options.retried ? { retried: options.retried } : {}) },
    info: options.info,
    ...(options.bytes ? { bytes: options.bytes } : {}),
  };
}
