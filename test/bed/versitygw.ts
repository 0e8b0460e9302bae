// A real S3-compatible server for the storage tests: versitygw (built from the Go module proxy by
// build-binaries.sh) with its posix backend serving a fresh directory, static root credentials, path-style
// addressing. Unit tests start one on 127.0.0.1; cluster tests on the host's IP, which the real node's pods reach
// through the CNI bridge's default route (as they reach the apiserver).
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { startComponent, stopGroups, tail, untilReady, type Component } from "./processes.ts";

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));

export interface S3Server {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** A client with the root credentials (path-style). */
  client: S3Client;
  /** The directory served: <root>/<bucket>/<key>. */
  root: string;
  createBucket(name: string): Promise<void>;
  log(): string;
  stop(): Promise<void>;
}

/** The versitygw binary (built on first use: about 5 minutes cold, 0.1 s cached). */
export async function versitygwBinary(): Promise<string> {
  const { stdout } = await run("bash", [join(HERE, "build-binaries.sh"), "versitygw"], {
    maxBuffer: 1 << 20,
  });
  return stdout.trim().split("\n").pop()!;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function startS3Server(host = "127.0.0.1"): Promise<S3Server> {
  const binary = await versitygwBinary();
  const work = mkdtempSync(join(tmpdir(), "mokd-s3-"));
  const root = join(work, "data");
  const sidecar = join(work, "meta");
  mkdirSync(root);
  mkdirSync(sidecar);
  const port = await freePort(host);
  const accessKeyId = "mokdtestaccess";
  const secretAccessKey = "mokdtestsecret0123456789";
  const region = "us-east-1";
  const args = ["--access", accessKeyId, "--secret", secretAccessKey, "--region", region];
  args.push("--port", `${host}:${port}`, "--quiet", "posix", "--sidecar", sidecar, root);
  const component: Component = startComponent("versitygw", binary, args, work);
  const endpoint = `http://${host}:${port}`;
  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
  });
  await untilReady("versitygw", [component], async () => {
    try {
      const res = await fetch(endpoint);
      return res.status > 0;
    } catch {
      return false;
    }
  });
  return {
    endpoint,
    accessKeyId,
    secretAccessKey,
    region,
    client,
    root,
    createBucket: async (name) => {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    log: () => tail(component.logFile),
    stop: async () => {
      client.destroy();
      await stopGroups([component.pid], 3000);
      rmSync(work, { recursive: true, force: true });
    },
  };
}
