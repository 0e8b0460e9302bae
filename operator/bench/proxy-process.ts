// The scale bench's counting proxy (api-proxy.ts) in a process of its own. In the bench's process it shared one
// event loop with the bench's 64 parallel creates and its watches of every job and pod: at 5,000 jobs on a
// loaded machine the operator's Lease renewals waited there (none of the lost ones reached the apiserver's
// priority level) and the leader lost its Lease to the bench, not to itself.
//
// Child side: `node proxy-process.ts KUBECONFIG [USER]` serves, sends {port} and then the request lines in
// batches over the IPC channel (asynchronous: a busy parent never stalls the proxy, unlike a pipe on stdout).
import { fork, type ChildProcess } from "node:child_process";
import { KubeConfig } from "@kubernetes/client-node";
import { startApiProxy } from "./api-proxy.ts";

interface Ready {
  port: number;
}

/** The parent's view of the proxy process: its address, the requests it forwarded so far, and a stop. */
export interface ProxyProcess {
  server: string;
  readonly requests: string[];
  close(): Promise<void>;
}

/** How often the child sends the request lines it collected. */
const BATCH_MS = 250;

export async function startProxyProcess(kubeconfig: string, impersonate?: string): Promise<ProxyProcess> {
  const child: ChildProcess = fork(new URL(import.meta.url).pathname, [kubeconfig, impersonate ?? ""], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const requests: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the proxy process exited (${code})`)));
    child.on("message", (message: Ready | string[]) => {
      if (Array.isArray(message)) requests.push(...message);
      else resolve(message.port);
    });
  });
  return {
    server: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // The last batch first: the child sends what it still holds when told to stop, then exits.
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.send("stop");
      await exited;
    },
  };
}

async function serve(kubeconfig: string, impersonate: string): Promise<void> {
  const admin = new KubeConfig();
  admin.loadFromFile(kubeconfig);
  const proxy = await startApiProxy(admin, { impersonate: impersonate || undefined });
  let sent = 0;
  const flush = () => {
    if (proxy.requests.length > sent) process.send!(proxy.requests.slice(sent));
    sent = proxy.requests.length;
  };
  const timer = setInterval(flush, BATCH_MS);
  process.on("message", () => {
    clearInterval(timer);
    flush();
    void proxy.close().then(() => process.disconnect());
  });
  process.send!({ port: Number(new URL(proxy.kubeConfig().getCurrentCluster()!.server).port) });
}

if (process.send && process.argv[1] === new URL(import.meta.url).pathname) {
  await serve(process.argv[2]!, process.argv[3] ?? "");
}
