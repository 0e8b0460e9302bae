// Object storage for the cluster tests: a real versitygw (test/bed/versitygw.ts) on the host's IP, which the real
// node's pods reach as they reach the apiserver, with a bucket, a Secret of its credentials in the test namespace
// and helpers to upload the data and read back what the trainer wrote.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { kubectl } from "../../bed/env.ts";
import { startS3Server, type S3Server } from "../../bed/versitygw.ts";
import type { RealNode } from "./real-node.ts";

export interface ClusterS3 {
  server: S3Server;
  bucket: string;
  /** spec.storage for a job of the namespace (credentials from the Secret `secret`). */
  storage(secret?: string): Record<string, unknown>;
  /** A Secret with the S3 keys (a wrong secret key with `wrongSecret`). */
  createSecret(namespace: string, name: string, wrongSecret?: boolean): Promise<void>;
  uploadDir(dir: string, prefix: string): Promise<void>;
  keys(prefix: string): Promise<string[]>;
  /** Downloads every object under `prefix` (or the one object `prefix` names) into `dir`. */
  download(prefix: string, dir: string): Promise<void>;
  stop(): Promise<void>;
}

export const S3_SECRET = "s3-credentials";

export async function clusterS3(node: RealNode, bucket: string): Promise<ClusterS3> {
  const server = await startS3Server(node.nodeIp);
  await server.createBucket(bucket);
  const keys = async (prefix: string) => {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await server.client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      out.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort();
  };
  return {
    server,
    bucket,
    storage: (secret = S3_SECRET) => ({
      s3: { endpoint: server.endpoint, forcePathStyle: true, region: server.region },
      credentialsSecret: secret,
    }),
    createSecret: async (namespace, name, wrongSecret = false) => {
      const secret = {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name, namespace },
        stringData: {
          AWS_ACCESS_KEY_ID: server.accessKeyId,
          AWS_SECRET_ACCESS_KEY: wrongSecret ? "not-the-secret-key" : server.secretAccessKey,
        },
      };
      const r = await kubectl(["apply", "-f", "-"], { input: JSON.stringify(secret) });
      if (r.code !== 0) throw new Error(r.stderr);
    },
    uploadDir: async (dir, prefix) => {
      for (const f of readdirSync(dir)) {
        await server.client.send(
          new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/${f}`, Body: readFileSync(join(dir, f)) }),
        );
      }
    },
    keys,
    download: async (prefix, dir) => {
      for (const key of await keys(prefix)) {
        const got = await server.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const file = join(dir, key.slice(prefix.length).replace(/^\/+/, "") || basename(key));
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, await got.Body!.transformToByteArray());
      }
    },
    stop: () => server.stop(),
  };
}
