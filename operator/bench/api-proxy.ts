// A plain-HTTP reverse proxy to an apiserver (as admin) that counts every request a client makes (the scale
// bench), and lets tests break that client's connection on purpose: cut it (all connections dropped, new ones
// refused) or inject a 410 Gone into watches.
import { KubeConfig } from "@kubernetes/client-node";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo, Socket } from "node:net";

export type ProxyMode = "pass" | "down";

export interface ApiProxy {
  /** A KubeConfig pointing at the proxy (each call: a fresh instance, so a fresh connection pool). */
  kubeConfig(): KubeConfig;
  /** "down": drop every open connection and refuse new ones until set back to "pass". */
  setMode(mode: ProxyMode): void;
  /** Answer the next `count` watch requests with 410 Gone (resourceVersion too old). */
  failWatchesWithGone(count: number): void;
  /** Method and path (with query) of every request that reached the proxy. */
  readonly requests: string[];
  close(): Promise<void>;
}

export interface ApiProxyOptions {
  /**
   * Forward as this user (Impersonate-User; a service account's user name gets its groups from the apiserver):
   * the client is then authorized and classified by API Priority and Fairness as that user, not as admin
   * (system:masters, which APF exempts).
   */
  impersonate?: string;
}

export async function startApiProxy(admin: KubeConfig, options: ApiProxyOptions = {}): Promise<ApiProxy> {
  const upstream = new URL(admin.getCurrentCluster()!.server);
  const tls: https.RequestOptions = {};
  await admin.applyToHTTPSOptions(tls);
  const agent = new https.Agent({ keepAlive: true, ca: tls.ca, cert: tls.cert, key: tls.key });
  const sockets = new Set<Socket>();
  const requests: string[] = [];
  let mode: ProxyMode = "pass";
  let goneLeft = 0;

  const server = http.createServer((req, res) => {
    if (mode === "down") return req.socket.destroy();
    requests.push(`${req.method} ${req.url}`);
    if (goneLeft > 0 && /[?&]watch=(1|true)/.test(req.url ?? "")) {
      goneLeft--;
      res.writeHead(410, { "Content-Type": "application/json" });
      return res.end(JSON.stringify({ kind: "Status", status: "Failure", reason: "Expired", code: 410 }));
    }
    const headers = {
      ...req.headers,
      ...(tls.headers as Record<string, string> | undefined),
      host: upstream.host,
      ...(options.impersonate ? { "impersonate-user": options.impersonate } : {}),
    };
    const forward = https.request(
      new URL(req.url ?? "/", upstream),
      { method: req.method, headers, agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", () => res.destroy());
    res.on("close", () => forward.destroy());
    req.pipe(forward);
  });
  server.on("connection", (socket) => {
    if (mode === "down") return socket.destroy();
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: "proxy", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
        users: [{ name: "anonymous-to-proxy" }],
        contexts: [{ name: "proxy", cluster: "proxy", user: "anonymous-to-proxy" }],
        currentContext: "proxy",
      });
      return kc;
    },
    setMode(next) {
      mode = next;
      if (next === "down") for (const socket of sockets) socket.destroy();
    },
    failWatchesWithGone(count) {
      goneLeft = count;
    },
    requests,
    async close() {
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
