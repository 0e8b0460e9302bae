// A fault injector in front of the bed's real S3 server (versitygw), on the node's IP so the real node's pods
// reach it: everything is passed through, except (1) the GET of one object, which is held after its first
// `holdAfter` bytes until the test releases it — a download that is deterministically under way while the test
// looks at the job's status — and (2) the first `failPuts` uploads (PUT/POST), answered 503 SlowDown — a
// transient store error that, with storage.s3.maxAttempts 1, fails the trainer retriably (exit 1).
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";

export interface S3Proxy {
  endpoint: string;
  /** Lets the held download go on. */
  release(): void;
  /** Bytes of the held object passed before the hold (0 until its GET came). */
  heldAt(): number;
  failedUploads(): number;
  stop(): Promise<void>;
}

export async function s3Proxy(
  upstream: string,
  host: string,
  options: { holdKey: string; holdAfter: number; failPuts: number },
): Promise<S3Proxy> {
  let release!: () => void;
  const released = new Promise<void>((done) => (release = done));
  let heldAt = 0;
  let failed = 0;
  const target = new URL(upstream);

  function hold(res: ServerResponse, upstreamRes: IncomingMessage): void {
    let passed = 0;
    upstreamRes.on("data", (chunk: Buffer) => {
      if (passed >= options.holdAfter) return; // paused below; never reached
      const room = options.holdAfter - passed;
      const now = chunk.subarray(0, room);
      res.write(now);
      passed += now.length;
      if (passed < options.holdAfter) return;
      upstreamRes.pause();
      heldAt = passed;
      const rest = chunk.subarray(room);
      void released.then(() => {
        upstreamRes.removeAllListeners("data");
        if (rest.length) res.write(rest);
        upstreamRes.pipe(res);
        upstreamRes.resume();
      });
    });
    upstreamRes.on("end", () => {
      if (passed < options.holdAfter) res.end();
    });
  }

  const server: Server = createServer((req, res) => {
    const path = req.url ?? "/";
    if ((req.method === "PUT" || req.method === "POST") && failed < options.failPuts) {
      failed++;
      req.resume();
      res.writeHead(503, { "Content-Type": "application/xml" });
      res.end("<Error><Code>SlowDown</Code><Message>injected by the test</Message></Error>");
      return;
    }
    const holding =
      req.method === "GET" && !req.headers.range && path.split("?")[0]!.endsWith(options.holdKey);
    const forward = request(
      { host: target.hostname, port: target.port, method: req.method, path, headers: req.headers },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        if (holding && heldAt === 0) hold(res, upstreamRes);
        else upstreamRes.pipe(res);
      },
    );
    forward.on("error", () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((done) => server.listen(0, host, done));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://${host}:${port}`,
    release,
    heldAt: () => heldAt,
    failedUploads: () => failed,
    stop: () =>
      new Promise<void>((done) => {
        release();
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
