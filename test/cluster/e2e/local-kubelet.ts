// A test fixture that acts as the kubelet of one node kwok leaves alone (kwok-local-0): it keeps the node Ready,
// and runs each pod bound to it as local processes — the container's entrypoint (from the image's Dockerfile)
// and args, with the pod's env and its ConfigMap volumes written to a temp dir — then reports the pod's status
// (Running with podIP 127.0.0.1; Succeeded/Failed with the termination message) as a kubelet would.
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1Container,
  type V1Pod,
} from "@kubernetes/client-node";
import { ROOT } from "../../../api/generate.ts";
import { parseDockerfile } from "../../unit/packaging/dockerfile.ts";

/** The pod's addresses: the trainer runs on this machine, so its metrics port is on loopback. */
const LOOPBACK_NETWORK = { podIP: "127.0.0.1", podIPs: [{ ip: "127.0.0.1" }], hostIP: "127.0.0.1" };

/** The ENTRYPOINT of the trainer image: what the container runs before its args. */
export function trainerEntrypoint(): string[] {
  const instructions = parseDockerfile(readFileSync(join(ROOT, "trainer", "Dockerfile"), "utf8"));
  return JSON.parse(instructions.filter((i) => i.keyword === "ENTRYPOINT").at(-1)!.args) as string[];
}

interface RunningPod {
  name: string;
  exit: Promise<void>;
  pid: number;
}

export class LocalKubelet {
  private readonly core: CoreV1Api;
  private readonly leases: CoordinationV1Api;
  private readonly dir = mkdtempSync(join(tmpdir(), "mokd-local-kubelet-"));
  private readonly pods = new Map<string, RunningPod>();
  private timer: NodeJS.Timeout | undefined;
  private heartbeatAt = 0;
  private busy = false;
  /** What happened to each pod (exit code and log tail) and any error of the fixture itself. */
  readonly logs: string[] = [];

  readonly nodeName: string;
  readonly namespace: string;

  constructor(kubeConfig: KubeConfig, nodeName: string, namespace: string) {
    this.nodeName = nodeName;
    this.namespace = namespace;
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.leases = kubeConfig.makeApiClient(CoordinationV1Api);
  }

  async start(): Promise<void> {
    await this.heartbeat();
    this.timer = setInterval(() => void this.tick(), 500);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const p of this.pods.values()) {
      try {
        process.kill(-p.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      if (Date.now() - this.heartbeatAt > 10_000) await this.heartbeat();
      const list = await this.core.listNamespacedPod({
        namespace: this.namespace,
        fieldSelector: `spec.nodeName=${this.nodeName}`,
      });
      for (const pod of list.items) {
        const name = pod.metadata!.name!;
        if (!this.pods.has(name) && pod.status?.phase === "Pending" && !pod.metadata?.deletionTimestamp) {
          this.pods.set(name, await this.runPod(pod));
        }
      }
    } catch (err) {
      this.logs.push(`tick: ${String(err)}`);
    } finally {
      this.busy = false;
    }
  }

  /** Ready condition and node Lease, as a kubelet renews them, so the node lifecycle controller keeps it schedulable. */
  private async heartbeat(): Promise<void> {
    const now = new Date();
    const node = await this.core.readNodeStatus({ name: this.nodeName });
    const others = (node.status?.conditions ?? []).filter((c) => c.type !== "Ready");
    node.status = {
      ...node.status,
      conditions: [
        ...others,
        {
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "local test kubelet",
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        },
      ],
    };
    await this.core.replaceNodeStatus({ name: this.nodeName, body: node });
    const lease = {
      metadata: { name: this.nodeName, namespace: "kube-node-lease" },
      spec: { holderIdentity: this.nodeName, leaseDurationSeconds: 40, renewTime: now },
    };
    try {
      const existing = await this.leases.readNamespacedLease({
        name: this.nodeName,
        namespace: "kube-node-lease",
      });
      existing.spec = { ...existing.spec, ...lease.spec };
      await this.leases.replaceNamespacedLease({
        name: this.nodeName,
        namespace: "kube-node-lease",
        body: existing,
      });
    } catch {
      await this.leases
        .createNamespacedLease({ namespace: "kube-node-lease", body: lease })
        .catch(() => undefined);
    }
    this.heartbeatAt = Date.now();
  }

  /** ConfigMap volumes are written under the pod's dir; returns a map from mount path to local path. */
  private async mountConfigMaps(
    pod: V1Pod,
    container: V1Container,
    podDir: string,
  ): Promise<Map<string, string>> {
    const mounts = new Map<string, string>();
    for (const m of container.volumeMounts ?? []) {
      const volume = pod.spec!.volumes?.find((v) => v.name === m.name);
      if (!volume?.configMap) continue;
      const cm = await this.core.readNamespacedConfigMap({
        name: volume.configMap.name!,
        namespace: this.namespace,
      });
      const local = join(podDir, "mounts", m.name);
      mkdirSync(local, { recursive: true });
      for (const [key, value] of Object.entries(cm.data ?? {})) writeFileSync(join(local, key), value);
      mounts.set(m.mountPath, local);
    }
    return mounts;
  }

  private async runPod(pod: V1Pod): Promise<RunningPod> {
    const name = pod.metadata!.name!;
    const container = pod.spec!.containers[0]!;
    const podDir = join(this.dir, name);
    mkdirSync(podDir, { recursive: true });
    const mounts = await this.mountConfigMaps(pod, container, podDir);
    const local = (value: string) => {
      for (const [mountPath, dir] of mounts)
        if (value.startsWith(`${mountPath}/`)) return dir + value.slice(mountPath.length);
      return value;
    };
    const terminationLog = join(podDir, "termination-log");
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      HOME: podDir,
      MOKD_TERMINATION_LOG: terminationLog,
    };
    for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = local(e.value);
    const argv = [...(container.command ?? trainerEntrypoint()), ...(container.args ?? [])];
    const command = argv[0] === "node" ? process.execPath : argv[0]!;
    const logFile = join(podDir, "container.log");
    const fd = openSync(logFile, "a");
    const child = spawn(command, argv.slice(1), {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ["ignore", fd, fd],
    });
    closeSync(fd);
    const startedAt = new Date();
    await this.setStatus(pod, {
      phase: "Running",
      ...LOOPBACK_NETWORK,
      startTime: startedAt,
      conditions: [
        { type: "PodScheduled", status: "True" },
        { type: "Initialized", status: "True" },
        { type: "ContainersReady", status: "True" },
        { type: "Ready", status: "True" },
      ],
      containerStatuses: [
        {
          name: container.name,
          image: container.image!,
          imageID: "",
          ready: true,
          started: true,
          restartCount: 0,
          state: { running: { startedAt } },
        },
      ],
    });
    const exit = new Promise<void>((resolve) =>
      child.on("exit", (code, signal) => {
        const exitCode = code ?? (signal ? 128 + 9 : 1);
        let message = existsSync(terminationLog) ? readFileSync(terminationLog, "utf8") : "";
        if (!message && exitCode !== 0 && container.terminationMessagePolicy === "FallbackToLogsOnError") {
          message = readFileSync(logFile, "utf8").split("\n").slice(-80).join("\n").slice(-4096);
        }
        this.logs.push(`${name} exited ${exitCode}\n${readFileSync(logFile, "utf8").slice(-2000)}`);
        const finishedAt = new Date();
        void this.setStatus(pod, {
          phase: exitCode === 0 ? "Succeeded" : "Failed",
          ...LOOPBACK_NETWORK,
          startTime: startedAt,
          conditions: [
            { type: "PodScheduled", status: "True" },
            { type: "Initialized", status: "True" },
            { type: "ContainersReady", status: "False", reason: "PodCompleted" },
            { type: "Ready", status: "False", reason: "PodCompleted" },
          ],
          containerStatuses: [
            {
              name: container.name,
              image: container.image!,
              imageID: "",
              ready: false,
              started: false,
              restartCount: 0,
              state: {
                terminated: {
                  exitCode,
                  reason: exitCode === 0 ? "Completed" : "Error",
                  message,
                  startedAt,
                  finishedAt,
                },
              },
            },
          ],
        })
          .catch((err: unknown) => this.logs.push(`status of ${name}: ${String(err)}`))
          .finally(resolve);
      }),
    );
    return { name, exit, pid: child.pid! };
  }

  private async setStatus(pod: V1Pod, status: NonNullable<V1Pod["status"]>): Promise<void> {
    const name = pod.metadata!.name!;
    const current = await this.core.readNamespacedPodStatus({ name, namespace: this.namespace });
    current.status = status;
    await this.core.replaceNamespacedPodStatus({ name, namespace: this.namespace, body: current });
  }

  /** Resolves when every pod started so far has exited and its final status is written. */
  async settled(): Promise<void> {
    await Promise.all([...this.pods.values()].map((p) => p.exit));
  }

  get started(): number {
    return this.pods.size;
  }
}
