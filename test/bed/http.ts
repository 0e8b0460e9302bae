// Minimal HTTP(S) GET for health probes: no client library, short timeouts, never throws.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export interface TlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
  /** For components that serve a self-signed cert (controller-manager, scheduler). */
  insecure?: boolean;
}

export interface Probe {
  status: number;
  body: string;
}

export function get(url: string, tls: TlsOptions = {}, timeoutMs = 2000): Promise<Probe> {
  const secure = url.startsWith("https:");
  const request = secure ? httpsRequest : httpRequest;
  const options = secure
    ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: !tls.insecure }
    : {};
  return new Promise((resolve) => {
    const req = request(url, { ...options, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", (err) => resolve({ status: 0, body: err.message }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (err) => resolve({ status: 0, body: err.message }));
    req.end();
  });
}
