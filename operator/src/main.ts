// The operator process: config -> HTTP (/healthz, /readyz, /metrics) -> leader election -> controller.
// SIGTERM/SIGINT: stop intake, drain in-flight reconciles, release the Lease, exit 0.
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { loadConfig, OperatorConfigError, type OperatorConfig } from "./config.ts";
import { Manager } from "./controller/manager.ts";
import { KubeHttp } from "./lib/kube-http.ts";
import { loadKubeConfig } from "./lib/kubeconfig.ts";
import { LeaderElector } from "./lib/leader-election.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createMetrics, type Metrics } from "./metrics.ts";

/** A health check: undefined when fine, else why not (the 503 body). */
type Check = () => string | undefined;

function answer(res: ServerResponse, problem: string | undefined): void {
  res.statusCode = problem === undefined ? 200 : 503;
  res.end(problem ?? "ok");
}

function startServer(port: number, metrics: Metrics, checks: { live: Check; ready: Check }): Promise<Server> {
  const server = createServer((req, res) => {
    const path = req.url?.split("?")[0];
    if (path === "/healthz") return answer(res, checks.live());
    if (path === "/readyz") return answer(res, checks.ready());
    if (path === "/metrics") {
      metrics.registry
        .metrics()
        .then((text) => {
          res.setHeader("Content-Type", metrics.registry.contentType);
          res.end(text);
        })
        .catch((error: unknown) => {
          res.statusCode = 500;
          res.end(String(error));
        });
      return;
    }
    res.statusCode = 404;
    res.end("not found");
  });
  return new Promise((resolve) => server.listen(port, () => resolve(server)));
}

/**
 * Ready: the caches are synced and every informer lists and watches (a standby is ready: it waits for the
 * Lease). Live: no informer has been failing for `--unhealthy-after-seconds` — a cache that cannot catch up
 * (apiserver unreachable, or a bug like the watch that retried a too-old resourceVersion forever) is stale, so
 * the chart's livenessProbe on /healthz restarts the process.
 */
function healthChecks(
  config: OperatorConfig,
  manager: Manager,
  leading: () => boolean,
): { live: Check; ready: Check } {
  const failing = (seconds: number) => {
    const list = leading() ? manager.failingInformers(seconds * 1000) : [];
    if (list.length === 0) return undefined;
    return list.map((f) => `${f.resource} informer failing for ${f.seconds} s: ${f.error}`).join("\n");
  };
  return {
    live: () => failing(config.unhealthyAfterSeconds),
    ready: () => (leading() && !manager.synced() ? "caches not synced" : failing(config.unreadyAfterSeconds)),
  };
}

async function run(config: OperatorConfig, log: Logger): Promise<void> {
  // The light loader (client-node's KubeConfig costs ~80 MiB of RSS), unless the user needs an exec or
  // auth-provider plugin: lib/kubeconfig.ts.
  const { kubeConfig } = await loadKubeConfig();
  KubeHttp.for(kubeConfig).setRateLimit({ qps: config.kubeApiQps, burst: config.kubeApiBurst });
  const metrics = createMetrics();
  const manager = new Manager(kubeConfig, config, log, metrics);
  let leading = false;
  const server = await startServer(
    config.port,
    metrics,
    healthChecks(config, manager, () => leading),
  );
  log.info("serving /healthz, /readyz, /metrics", { port: (server.address() as AddressInfo).port });

  const identity = config.identity ?? `${hostname()}-${process.pid}`;
  const startLeading = () => {
    leading = true;
    metrics.leader.set(1);
    log.info("leading", { identity });
    manager
      .start()
      .catch((error: unknown) => log.error("controller failed to start", { error: String(error) }));
  };
  const elector = config.leaderElect
    ? new LeaderElector({
        kubeConfig,
        namespace: config.leaseNamespace!,
        name: config.leaseName,
        identity,
        leaseDurationSeconds: config.leaderElectLeaseDuration,
        renewDeadlineSeconds: config.leaderElectRenewDeadline,
        retryPeriodSeconds: config.leaderElectRetryPeriod,
        onStartedLeading: startLeading,
        // Like controller-runtime: a replica that lost the Lease exits, so it never reconciles beside a new leader.
        onStoppedLeading: () => {
          if (shuttingDown) return;
          log.error("lost the leader lease, exiting", { identity });
          process.exit(1);
        },
        onNewLeader: (leader) => log.info("leader", { leader }),
        onError: (error) => log.warn("leader election error", { error: String(error) }),
      })
    : undefined;

  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info("shutting down", { signal });
    await manager.stop();
    await elector?.release();
    metrics.leader.set(0);
    server.close();
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  if (elector) {
    log.info("waiting for the leader lease", {
      namespace: config.leaseNamespace,
      name: config.leaseName,
      identity,
    });
    void elector.run();
  } else {
    startLeading();
  }
}

let config: OperatorConfig;
try {
  config = loadConfig(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof OperatorConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(2);
}
const log = createLogger(config.logLevel);
run(config, log).catch((error: unknown) => {
  log.error("operator failed", { error: error instanceof Error ? error.stack : String(error) });
  process.exit(1);
});
