// End to end, all real, on the bed's real node (a kubelet on containerd): the project's images built from their
// Dockerfiles -> `helm install` of the chart -> the operator runs as a pod under its ServiceAccount ->
// `kubectl apply -f examples/fashion-mnist.yaml` (only image and pull policy changed) -> the trainer image runs
// in a real container -> live progress in status -> Succeeded with the result, the student model on the output
// volume -> Prometheus finds the trainer pod and the operator by Kubernetes service discovery, selected as the
// chart's PodMonitor/ServiceMonitor select them. And a spec with bad data ends Failed/BadData from the real
// container's exit code.
import { copyFileSync, existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ROOT } from "../../../scripts/generate.ts";
import { TRAINER_LABELS, TrainerMetric } from "../../../api/metrics.ts";
import type { DistillationJobStatus } from "../../../api/v1alpha1/index.ts";
import { ExitCode } from "../../../api/v1alpha1/exit-codes.ts";
import { LOCAL_NODE } from "../../bed/config.ts";
import { binDir, deleteNamespace, kubeconfigPath, kubectl, waitFor } from "../../bed/env.ts";
import { Prometheus } from "../packaging/prometheus.ts";
import { chartMonitors, scrapeConfigs } from "./discovery.ts";
import {
  buildImages,
  helm,
  hostPathClaim,
  importImages,
  installOperator,
  OPERATOR_DEPLOYMENT,
  RELEASE,
  realNode,
  realNodeNamespace,
  type BuiltImage,
} from "./real-node.ts";

const SA = OPERATOR_DEPLOYMENT; // the chart's ServiceAccount has the release's fullname too
const JOB = "fashion-mnist"; // the example's name
const BAD_JOB = "fashion-mnist-bad-data";
const EXAMPLE_ONNX_TEACHER = "examples/teachers/fashion-mnist-cnn-nchw.onnx";
const node = realNode();

let namespace = "";
let images: Record<string, BuiltImage> = {};
let prom: Prometheus | undefined;
let output: { dir: string; remove: () => Promise<void> } | undefined;

type Json = Record<string, unknown>;

/**
 * examples/fashion-mnist.yaml as a user applies it, with the image and its pull policy changed, an ONNX teacher
 * (that of examples/fashion-mnist-onnx-teacher.yaml) and an output claim: the default emptyDir output goes with the pod (the kubelet removes a finished pod's volumes), so a user
 * who wants to keep the model sets runtime.volumes.output, as the example's comment says for the data.
 */
function example(): Json & { metadata: Json; spec: Json & { runtime: Json; data: Json } } {
  const job = parse(readFileSync(join(ROOT, "examples", "fashion-mnist.yaml"), "utf8")) as ReturnType<
    typeof example
  >;
  delete job.metadata.namespace; // applied with -n
  job.spec.runtime.image = images["trainer-cpu"]!.ref;
  job.spec.runtime.imagePullPolicy = "Never"; // imported into containerd; no registry to pull from
  job.spec.runtime.volumes = { output: { claimName: "output", subPath: job.metadata.name as string } };
  // An ONNX teacher (run by ONNX Runtime in the image) instead of training one: the student comes out as tfjs and
  // as a parity-checked ONNX model (output.formats defaults to both).
  job.spec.teacher = { model: "/output/teacher.onnx" };
  return job;
}

async function status(name: string): Promise<DistillationJobStatus | undefined> {
  const r = await kubectl(["get", "distillationjob", name, "-n", namespace, "-o", "json"]);
  return r.code === 0 ? (JSON.parse(r.stdout) as { status?: DistillationJobStatus }).status : undefined;
}

async function trainerPod(job: string): Promise<Json & { metadata: Json; spec: Json; status: Json }> {
  const r = await kubectl([
    "get",
    "pods",
    "-n",
    namespace,
    "-l",
    `batch.kubernetes.io/job-name=${job}`,
    "-o",
    "json",
  ]);
  const pods = (JSON.parse(r.stdout) as { items: Awaited<ReturnType<typeof trainerPod>>[] }).items;
  if (pods.length === 0) throw new Error(`no pod of Job ${job}`);
  return pods.at(-1)!;
}

/** Why something failed: the operator's log, pods and events of the namespace. */
async function context(): Promise<string> {
  const logs = await kubectl(["logs", "-n", namespace, `deploy/${OPERATOR_DEPLOYMENT}`, "--tail=40"]);
  const pods = await kubectl(["get", "pods", "-n", namespace, "-o", "wide"]);
  const events = await kubectl(["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"]);
  return `operator:\n${logs.stdout}${logs.stderr}\npods:\n${pods.stdout}\nevents:\n${events.stdout.slice(-3000)}`;
}

describe.skipIf(!node)("a DistillationJob end to end on the real node", () => {
  beforeAll(async () => {
    images = await buildImages(["operator", "trainer-cpu"]);
    await importImages(node!, [images.operator!, images["trainer-cpu"]!]);
    namespace = await realNodeNamespace("e2e");
    output = await hostPathClaim(namespace, "output", [JOB, BAD_JOB]);
    // The job distils from the ONNX teacher of examples/fashion-mnist-onnx-teacher.yaml, put where the pod reads
    // it (the output volume here; a data volume or object storage in real use).
    copyFileSync(join(ROOT, EXAMPLE_ONNX_TEACHER), join(output.dir, JOB, "teacher.onnx"));

    await installOperator(namespace, images.operator!).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await context()}`);
    });

    prom = await Prometheus.startWith(
      scrapeConfigs(await chartMonitors(RELEASE, namespace), kubeconfigPath(), [namespace]),
      [],
      1,
      binDir(), // the bed's Prometheus, with Kubernetes service discovery
    );
    const applied = await kubectl(["apply", "-n", namespace, "-f", "-"], {
      input: JSON.stringify(example()),
    });
    expect(applied.code, applied.stderr).toBe(0);
  }, 1_200_000);

  afterAll(async () => {
    await prom?.stop();
    if (namespace) {
      await helm(["uninstall", RELEASE, "-n", namespace, "--wait=false"]);
      await deleteNamespace(namespace);
    }
    await output?.remove();
  });

  it("runs the operator as a pod under the chart's ServiceAccount on the real node", async () => {
    const r = await kubectl([
      "get",
      "pods",
      "-n",
      namespace,
      "-l",
      "app.kubernetes.io/component=operator",
      "-o",
      "json",
    ]);
    const [pod] = (JSON.parse(r.stdout) as { items: { spec: Json; status: Json }[] }).items;
    expect(pod?.spec.serviceAccountName).toBe(SA);
    expect(pod?.spec.nodeName).toBe(LOCAL_NODE);
    expect(pod?.status.phase).toBe("Running");
  });

  it("runs the trainer image, shows live progress, and succeeds with the result", async () => {
    let sawProgress = false;
    const percentages: number[] = [];
    const final = await waitFor(
      "the example DistillationJob finished",
      async () => {
        const s = await status(JOB);
        if (s?.phase === "Running" && (s.progress?.step ?? 0) > 0) sawProgress = true;
        // Kubeflow Trainer's shape, from the trainer's /progress document: it never goes back.
        const percentage = s?.phase === "Running" ? s.trainerStatus?.progressPercentage : undefined;
        if (percentage !== undefined && percentage !== percentages.at(-1)) percentages.push(percentage);
        return (s?.phase === "Succeeded" || s?.phase === "Failed") && s;
      },
      600_000,
      500,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await context()}`);
    });
    expect(final.phase, `${JSON.stringify(final.conditions)}\n${await context()}`).toBe("Succeeded");
    expect(sawProgress, `no live progress while Running\n${await context()}`).toBe(true);
    expect(percentages.length, "no trainerStatus seen while Running").toBeGreaterThan(0);
    expect(percentages).toEqual([...percentages].sort((a, b) => a - b));
    expect(final.trainerStatus).toMatchObject({ progressPercentage: 100, estimatedRemainingSeconds: 0 });
    expect(final.result?.strategy).toBe("mokd");
    expect(final.result?.studentAccuracy).toBeGreaterThan(0.5); // 10 classes: chance is 0.1
    // The ONNX teacher's own test accuracy (examples/teachers/make-fashion-mnist-teacher.ts), through ONNX Runtime.
    expect(final.result?.teacherAccuracy).toBe(0.8418);
    expect(final.result?.onnxModelPath).toBe("/output/student.onnx");
    expect(final.result?.sizeRatio).toBeGreaterThan(0);
    expect(final.result?.speedup).toBeGreaterThan(0);
    const pod = await trainerPod(JOB);
    expect(pod.spec.nodeName).toBe(LOCAL_NODE);
    const container = (pod.status.containerStatuses as { image: string; state: Json }[])[0]!;
    expect(container.image).toContain(images["trainer-cpu"]!.ref.split(":")[0]);
    expect(container.state.terminated).toMatchObject({ exitCode: 0 });
  });

  it("left the student model and summary on the output volume", async () => {
    const s = await status(JOB);
    const modelPath = s?.result?.modelPath ?? "";
    expect(modelPath.startsWith("/output/"), modelPath).toBe(true);
    const dir = join(output!.dir, JOB);
    const onVolume = join(dir, modelPath.slice("/output/".length));
    expect(existsSync(onVolume), `${onVolume}; the volume has: ${readdirSync(dir).join(", ")}`).toBe(true);
    expect(existsSync(join(onVolume, "model.json")) || onVolume.endsWith(".json")).toBe(true);
    const summary = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8")) as {
      student?: unknown;
      exports?: { onnx?: { status: string; parity?: { passed: boolean; samples: number } } };
    };
    expect(summary.student).toBeDefined();
    // The ONNX student passed its parity check in ONNX Runtime inside the trainer image, on the whole test set.
    expect(summary.exports?.onnx).toMatchObject({
      status: "written",
      parity: { passed: true, samples: 10000 },
    });
    expect(existsSync(join(dir, "student.onnx"))).toBe(true);
  });

  it("is found by Prometheus through Kubernetes service discovery: the trainer pod and the operator", async () => {
    const pod = await trainerPod(JOB);
    const name = pod.metadata.name as string;
    // This very pod, not any trainer series: a job may have had an earlier attempt's pod.
    const t = await prom!.lastUpTime("trainer", 600, { pod: name });
    const scraped = await prom!.query(`up{job="trainer"}`);
    expect(
      t,
      `the trainer pod ${name} was never scraped; trainer series: ${JSON.stringify(scraped)}`,
    ).toBeDefined();
    const selector = `{${TRAINER_LABELS.job}="${JOB}", ${TRAINER_LABELS.namespace}="${namespace}"}`;
    const steps = await prom!.query(`${TrainerMetric.steps}${selector}`, t);
    expect(Number(steps[0]?.value?.[1] ?? 0)).toBeGreaterThan(0);
    const operator = await waitFor(
      "the operator scraped through its Service's endpoints",
      async () => {
        const r = await prom!.query(`up{job="operator", namespace="${namespace}"} == 1`);
        return r.length > 0 && r;
      },
      60_000,
      1000,
    );
    expect(operator[0]!.metric.pod).toMatch(/^mokd-mokd-operator-/);
  });

  it("ends a job with bad data Failed/BadData from the trainer container's exit code", async () => {
    const bad = example();
    bad.metadata.name = BAD_JOB;
    bad.spec.data.path = "/usr/share/datasets/no-such-dataset";
    const applied = await kubectl(["apply", "-n", namespace, "-f", "-"], { input: JSON.stringify(bad) });
    expect(applied.code, applied.stderr).toBe(0);
    const final = await waitFor(
      "the bad-data DistillationJob failed",
      async () => {
        const s = await status(BAD_JOB);
        return (s?.phase === "Failed" || s?.phase === "Succeeded") && s;
      },
      180_000,
      500,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await context()}`);
    });
    expect(final.phase).toBe("Failed");
    expect(final.conditions?.find((c) => c.type === "Failed")?.reason).toBe("BadData");
    const pod = await trainerPod(BAD_JOB);
    const container = (
      pod.status.containerStatuses as { state: { terminated?: { exitCode: number } } }[]
    )[0]!;
    expect(container.state.terminated?.exitCode).toBe(ExitCode.BadData);
  });
});
