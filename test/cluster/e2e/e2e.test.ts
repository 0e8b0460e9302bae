// End to end: kubectl applies a DistillationJob -> the operator (a child process under the chart's RBAC, as its
// own ServiceAccount) creates the Job -> the scheduler binds its pod to kwok-local-0 -> a local kubelet fixture
// runs the real trainer -> live progress in status -> Succeeded with the result -> trainer metrics in Prometheus.
import { execFile, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHART_DIR, ROOT } from "../../../scripts/generate.ts";
import { TRAINER_LABELS, TrainerMetric } from "../../../api/metrics.ts";
import type { DistillationJobStatus } from "../../../api/v1alpha1/index.ts";
import { LOCAL_NODE } from "../../bed/config.ts";
import {
  adminKubeConfig,
  binDir,
  createTestNamespace,
  deleteNamespace,
  kubectl,
  serviceAccountKubeconfig,
  waitCrdEstablished,
  waitFor,
} from "../../bed/env.ts";
import { stopGroups, tail } from "../../bed/processes.ts";
import { freePort, Prometheus } from "../packaging/prometheus.ts";
import { tinyTrainerJob } from "../tiny-job.ts";
import { LocalKubelet } from "./local-kubelet.ts";

/** The CRD as the chart ships it (identical to crds/: the staleness test compares both with the schema). */
const CHART_CRD = join(CHART_DIR, "files", "crds", "distillation.mokd.io_distillationjobs.yaml");
const run = promisify(execFile);
const RELEASE = "mokd";
const SA = "mokd-mokd-operator"; // the chart's fullname for release "mokd"
const JOB = "e2e-fashion";

let dir = "";
let namespace = "";
let kubelet: LocalKubelet | undefined;
let prom: Prometheus | undefined;
let operatorPid: number | undefined;
let operatorLog = "";

function manifest(trainerPort: number) {
  return tinyTrainerJob({
    name: JOB,
    namespace,
    dir,
    metricsPort: trainerPort,
    maxTrainSamples: 512,
    // Long enough (a few seconds) for the operator, scraping every 2 s, to report progress while it runs.
    epochs: 12,
    extraSpec: {
      runtime: {
        gpus: 0,
        // A short run can end between two Prometheus scrapes: keep /metrics up a little after it.
        env: [{ name: "MOKD_METRICS_LINGER_SECONDS", value: "4" }],
        nodeSelector: { "kubernetes.io/hostname": LOCAL_NODE },
        tolerations: [
          { key: "mokd.io/local-kubelet", operator: "Equal", value: "true", effect: "NoSchedule" },
        ],
      },
      runPolicy: { backoffLimit: 0 },
    },
  });
}

/** The chart's ServiceAccount and RBAC for single-namespace mode, applied as Helm would render them. */
async function applyChartRbac(): Promise<void> {
  // prettier-ignore
  const { stdout } = await run(join(binDir(), "helm"), [
    "template", RELEASE, CHART_DIR, "-n", namespace, "--set", `watchNamespace=${namespace}`,
    "--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml",
  ]);
  const applied = await kubectl(["apply", "-f", "-"], { input: stdout });
  expect(applied.code, applied.stderr).toBe(0);
}

async function status(): Promise<DistillationJobStatus | undefined> {
  const r = await kubectl(["get", "distillationjob", JOB, "-n", namespace, "-o", "json"]);
  return r.code === 0 ? (JSON.parse(r.stdout) as { status?: DistillationJobStatus }).status : undefined;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "mokd-e2e-"));
  namespace = await createTestNamespace("e2e");
  const crd = await kubectl(["apply", "-f", CHART_CRD]);
  expect(crd.code, crd.stderr).toBe(0);
  await waitCrdEstablished("distillationjobs.distillation.mokd.io");
  await applyChartRbac();

  kubelet = new LocalKubelet(adminKubeConfig(), LOCAL_NODE, namespace);
  await kubelet.start();

  const operatorPort = await freePort();
  const kubeconfig = await serviceAccountKubeconfig(namespace, SA);
  operatorLog = join(dir, "operator.log");
  const fd = openSync(operatorLog, "a");
  // prettier-ignore
  const child = spawn(process.execPath, [
    "operator/src/main.ts", `--namespace=${namespace}`, `--port=${operatorPort}`, "--leader-elect",
    `--lease-name=${SA}`, `--lease-namespace=${namespace}`, "--progress-interval=2",
  ], { cwd: ROOT, env: { ...process.env, KUBECONFIG: kubeconfig }, detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  operatorPid = child.pid;
  await waitFor(
    "operator ready",
    async () => (await fetch(`http://127.0.0.1:${operatorPort}/readyz`)).ok,
    60_000,
  );

  const trainerPort = await freePort();
  prom = await Prometheus.start([
    { job: "operator", address: `127.0.0.1:${operatorPort}` },
    { job: "trainer", address: `127.0.0.1:${trainerPort}` },
  ]);
  const applied = await kubectl(["apply", "-f", "-"], { input: JSON.stringify(manifest(trainerPort)) });
  expect(applied.code, applied.stderr).toBe(0);
}, 240_000);

afterAll(async () => {
  await stopGroups([operatorPid].filter((p): p is number => p !== undefined));
  await kubelet?.stop();
  await prom?.stop();
  if (namespace) await deleteNamespace(namespace);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("a DistillationJob end to end", () => {
  it("runs the real trainer on the local node, shows live progress, and succeeds with the result", async () => {
    const context = () => `operator:\n${tail(operatorLog, 30)}\nkubelet:\n${kubelet!.logs.join("\n")}`;
    const pod = await waitFor(
      "the trainer pod bound to the local node",
      async () => {
        const r = await kubectl(["get", "pods", "-n", namespace, "-o", "jsonpath={.items[*].spec.nodeName}"]);
        return r.stdout.includes(LOCAL_NODE) && r.stdout;
      },
      60_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${context()}`);
    });
    expect(pod).toContain(LOCAL_NODE);

    // Poll status while it runs: progress must appear before the end.
    let sawProgress = false;
    const percentages: number[] = [];
    const final = await waitFor(
      "DistillationJob finished",
      async () => {
        const s = await status();
        if (s?.phase === "Running" && s.progress?.step !== undefined) sawProgress = true;
        // Kubeflow Trainer's shape, from the trainer's /progress document: it never goes back.
        const percentage = s?.phase === "Running" ? s.trainerStatus?.progressPercentage : undefined;
        if (percentage !== undefined && percentage !== percentages.at(-1)) percentages.push(percentage);
        return (s?.phase === "Succeeded" || s?.phase === "Failed") && s;
      },
      180_000,
      500,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${context()}`);
    });
    expect(final.phase, `${JSON.stringify(final.conditions)}\n${context()}`).toBe("Succeeded");
    expect(sawProgress, `no live progress seen while Running\n${context()}`).toBe(true);
    expect(percentages.length, "no trainerStatus seen while Running").toBeGreaterThan(0);
    expect(percentages).toEqual([...percentages].sort((a, b) => a - b));
    expect(final.trainerStatus).toMatchObject({ progressPercentage: 100, estimatedRemainingSeconds: 0 });
    expect(final.result?.strategy).toBe("mokd");
    expect(final.result?.studentAccuracy).toBeGreaterThan(0.2); // 10 classes: chance is 0.1
    expect(final.result?.teacherAccuracy).toBeGreaterThan(0.2);
    expect(final.conditions?.find((c) => c.type === "Succeeded")?.status).toBe("True");
  });

  it("left the trainer's metrics in Prometheus, labelled with the job", async () => {
    const t = await prom!.lastUpTime("trainer");
    expect(t, prom!.log()).toBeDefined();
    const selector = `{${TRAINER_LABELS.job}="${JOB}", ${TRAINER_LABELS.namespace}="${namespace}"}`;
    const epochs = await prom!.query(`${TrainerMetric.epoch}${selector}`, t);
    expect(epochs.map((s) => s.metric.stage)).toContain("student");
    const accuracy = await prom!.query(`${TrainerMetric.accuracy}${selector}`, t);
    expect(accuracy.length).toBeGreaterThan(0);
    const steps = await prom!.query(`${TrainerMetric.steps}{stage="student"}`, t);
    expect(Number(steps[0]?.value?.[1])).toBeGreaterThan(0);
  });
});
