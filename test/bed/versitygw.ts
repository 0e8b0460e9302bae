// A real S3-compatible server for the storage tests: versitygw (built from the Go module proxy by
// build-binaries.sh) with its posix backend serving a fresh directory, static root credentials, path-style
// addressing. Unit tests start one on 127.0.0.1; cluster tests on the host's IP, which the real node's pods reach
// through the CNI bridge's default route (as they reach the apiserver).
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { Agent, request as httpsRequest } from "node:https";
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
  /** The CA certificate (PEM file) of a TLS endpoint. */
  caFile?: string;
  createBucket(name: string): Promise<void>;
  log(): string;
  stop(): Promise<void>;
}

/** The versitygw binary (built on first use: about 10 minutes cold on 2 loaded cores, 0.1 s cached). */
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

/** A self-signed certificate for `host` (its own CA), for a TLS endpoint a client trusts only with it. */
async function selfSigned(dir: string, host: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  // prettier-ignore
  await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=mokd-test-s3",
    "-addext", `subjectAltName=IP:${host}`, "-keyout", key, "-out", cert]);
  return { cert, key };
}

export async function startS3Server(host = "127.0.0.1", options: { tls?: boolean } = {}): Promise<S3Server> {
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
  const tls = options.tls ? await selfSigned(work, host) : undefined;
  const args = ["--access", accessKeyId, "--secret", secretAccessKey, "--region", region];
  if (tls) args.push("--cert", tls.cert, "--key", tls.key);
  args.push("--port", `${host}:${port}`, "--quiet", "posix", "--sidecar", sidecar, root);
  const component: Component = startComponent("versitygw", binary, args, work);
  const endpoint = `${tls ? "https" : "http"}://${host}:${port}`;
  const agent = tls ? new Agent({ ca: readFileSync(tls.cert, "utf8") }) : undefined;
  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    ...(agent ? { requestHandler: { httpsAgent: agent } } : {}),
  });
  await untilReady("versitygw", [component], async () => {
    try {
      await new Promise<void>((done, fail) => {
        const req = (tls ? httpsRequest : httpRequest)(
          endpoint,
          { method: "HEAD", ...(agent ? { agent } : {}) },
          (res) => {
            res.resume();
            done();
          },
        );
        req.on("error", fail).end();
      });
      return true;
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
    ...(tls ? { caFile: tls.cert } : {}),
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
