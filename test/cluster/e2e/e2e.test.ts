// End to end, all real, on the bed's real node (a kubelet on containerd): the project's images built from their
// Dockerfiles -> `helm install` of the chart -> the operator runs as a pod under its ServiceAccount ->
// `kubectl apply -f examples/fashion-mnist.yaml` (only image and pull policy changed) -> the trainer image runs
// in a real container, its data and its ONNX teacher fetched from a real S3-compatible server (versitygw) by the
// `fetch` init container -> live progress in status -> Succeeded with the result, every output uploaded to the
// bucket (the tfjs student downloaded and loaded back; the ONNX student parity-checked in ONNX Runtime inside the
// image) -> Prometheus finds the trainer pod and the operator by Kubernetes service discovery, selected as the
// chart's PodMonitor/ServiceMonitor select them. Bad data ends Failed/BadData from the real container's exit code;
// wrong credentials, a missing prefix and a checksum mismatch end Failed with their storage reasons.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
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
import { loadLayersModel } from "../../../trainer/src/models/io.ts";
import { clusterS3, type ClusterS3 } from "./s3.ts";
import { s3Proxy } from "./s3-proxy.ts";
import {
  buildImages,
  helm,
  hostPathClaim,
  importImages,
  installOperator,
  OPERATOR_DEPLOYMENT,
  RELEASE,
  holdRealNode,
  realNode,
  realNodeNamespace,
  type BuiltImage,
} from "./real-node.ts";

const SA = OPERATOR_DEPLOYMENT; // the chart's ServiceAccount has the release's fullname too
const JOB = "fashion-mnist"; // the example's name
const BAD_JOB = "fashion-mnist-bad-data";
const EXAMPLE_TEACHERS = "examples/teachers"; // the ONNX teacher of examples/fashion-mnist-onnx-teacher.yaml
const ONNX_TEACHER = "fashion-mnist-cnn-nchw.onnx";
const BUCKET = "mokd-e2e";
const DATA_URI = `s3://${BUCKET}/datasets/fashion-mnist/`;
const WRONG_SECRET = "s3-wrong-credentials";
const node = realNode();

let namespace = "";
let images: Record<string, BuiltImage> = {};
let prom: Prometheus | undefined;
let s3: ClusterS3 | undefined;

type Json = Record<string, unknown>;

/**
 * examples/fashion-mnist.yaml as a user applies it, with the image and its pull policy changed, its data and
 * outputs in the bucket (the default emptyDir output goes with the pod: the kubelet removes a finished pod's
 * volumes, so the outputs that must outlive it go to `output.uri`) and an ONNX teacher from the bucket (that of
 * examples/fashion-mnist-onnx-teacher.yaml, run by ONNX Runtime in the image) instead of training one.
 */
function example(name = JOB): Json & {
  metadata: Json;
  spec: Json & { runtime: Json; data: Json; output: Json; teacher: Json; training: Json };
} {
  const job = parse(readFileSync(join(ROOT, "examples", "fashion-mnist.yaml"), "utf8")) as ReturnType<
    typeof example
  >;
  delete job.metadata.namespace; // applied with -n
  job.metadata.name = name;
  job.spec.runtime.image = images["trainer-cpu"]!.ref;
  job.spec.runtime.imagePullPolicy = "Never"; // imported into containerd; no registry to pull from
  job.spec.data.path = DATA_URI;
  job.spec.output = { ...job.spec.output, uri: `s3://${BUCKET}/runs/${name}` };
  job.spec.storage = s3!.storage();
  job.spec.teacher = { model: `s3://${BUCKET}/teachers/${ONNX_TEACHER}` };
  // With no teacher to train the example's student stage alone runs ~12 s, about one of the operator's 10 s
  // progress scrapes: 10 student epochs give live progress several scrapes to show.
  job.spec.training = { ...job.spec.training, epochs: 10 };
  return job;
}

/** A small job of the example's shape (a few seconds of training), for what is not about training. */
function smallJob(name: string): ReturnType<typeof example> {
  const job = example(name);
  job.spec.data = { ...job.spec.data, maxTrainSamples: 1000 };
  job.spec.teacher = { architecture: "mlp", width: 16, hiddenUnits: 16, depth: 1, epochs: 1 };
  job.spec.training = { ...job.spec.training, epochs: 1 };
  return job;
}

async function applyJob(job: object): Promise<void> {
  const applied = await kubectl(["apply", "-n", namespace, "-f", "-"], { input: JSON.stringify(job) });
  expect(applied.code, applied.stderr).toBe(0);
}

async function finished(name: string, ms = 180_000): Promise<DistillationJobStatus> {
  return waitFor(
    `${name} finished`,
    async () => {
      const s = await status(name);
      return (s?.phase === "Failed" || s?.phase === "Succeeded") && s;
    },
    ms,
    500,
  ).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${await context()}`);
  });
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
  let releaseNode: (() => void) | undefined;
  beforeAll(async () => {
    // Shared: a node-loss test stops the node's kubelet only while no other file uses the node.
    releaseNode = await holdRealNode("shared");
    images = await buildImages(["operator", "trainer-cpu"]);
    await importImages(node!, [images.operator!, images["trainer-cpu"]!]);
    // Restricted Pod Security enforced: the operator's pod, the trainer's and its `fetch` init container pass it.
    namespace = await realNodeNamespace("e2e", { "pod-security.kubernetes.io/enforce": "restricted" });
    s3 = await clusterS3(node!, BUCKET);
    await s3.uploadDir("/usr/share/datasets/fashion-mnist", "datasets/fashion-mnist");
    await s3.createSecret(namespace, "s3-credentials");
    await s3.createSecret(namespace, WRONG_SECRET, true);
    await s3.uploadDir(join(ROOT, EXAMPLE_TEACHERS), "teachers");

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
    await s3?.stop();
    releaseNode?.();
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

  it("fetched the data in the init container, and uploaded every output; the student downloads and loads", async () => {
    const s = await status(JOB);
    expect(s?.result?.outputUri).toBe(`s3://${BUCKET}/runs/${JOB}`);
    const pod = await trainerPod(JOB);
    const init = (pod.status.initContainerStatuses as { name: string; state: Json }[])[0]!;
    expect(init.name).toBe("fetch");
    expect(init.state.terminated).toMatchObject({ exitCode: 0 });
    const fetchLog = await kubectl(["logs", "-n", namespace, pod.metadata.name as string, "-c", "fetch"]);
    expect(fetchLog.stdout).toMatch(
      /fetched s3:\/\/mokd-e2e\/datasets\/fashion-mnist\/: 4 file\(s\).*\(0 cached/,
    );
    // The trainer found the init container's downloads in the shared cache: nothing downloaded again.
    const trainerLog = await kubectl(["logs", "-n", namespace, pod.metadata.name as string, "-c", "trainer"]);
    expect(trainerLog.stdout).toMatch(
      /fetched s3:\/\/mokd-e2e\/datasets\/fashion-mnist\/: 4 file\(s\).*\(4 cached, 0\.0 KiB downloaded\)/,
    );

    const keys = await s3!.keys(`runs/${JOB}/`);
    for (const f of ["summary.json", "metrics.jsonl", "report.html", "student/model.json", "student.onnx"])
      expect(keys, keys.join(", ")).toContain(`runs/${JOB}/${f}`);
    const dir = mkdtempSync(join(tmpdir(), "mokd-e2e-student-"));
    await s3!.download(`runs/${JOB}/`, dir);
    const summary = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8")) as {
      student: { accuracy: number };
      exports?: { onnx?: { status: string; parity?: { passed: boolean; samples: number } } };
    };
    expect(summary.student.accuracy).toBe(s?.result?.studentAccuracy);
    // The ONNX student passed its parity check in ONNX Runtime inside the trainer image, on the whole test set.
    expect(summary.exports?.onnx).toMatchObject({
      status: "written",
      parity: { passed: true, samples: 10000 },
    });
    const student = await loadLayersModel(join(dir, "student"));
    expect(student.outputs[0]!.shape).toEqual([null, 10]);
    student.dispose();
  });

  it("ends storage failures Failed with their reason, naming the URI and the S3 error code", async () => {
    const denied = smallJob("storage-denied");
    denied.spec.storage = s3!.storage(WRONG_SECRET);
    const missing = smallJob("storage-missing");
    missing.spec.data.path = `s3://${BUCKET}/datasets/no-such-dataset/`;
    const mismatch = smallJob("storage-mismatch");
    const labels = `s3://${BUCKET}/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz`;
    mismatch.spec.data = { ...mismatch.spec.data, path: labels, sha256: "0".repeat(64) };
    const cases: [ReturnType<typeof smallJob>, string, number, RegExp][] = [
      [
        denied,
        "StorageAccessDenied",
        ExitCode.StorageAccessDenied,
        /s3:\/\/mokd-e2e\/datasets\/fashion-mnist\/: access denied.*\((SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied)\)/,
      ],
      [
        missing,
        "StorageNotFound",
        ExitCode.StorageNotFound,
        /s3:\/\/mokd-e2e\/datasets\/no-such-dataset\/: not found.*\(NoSuchKey\)/,
      ],
      [
        mismatch,
        "ChecksumMismatch",
        ExitCode.ChecksumMismatch,
        /t10k-labels-idx1-ubyte\.gz: sha256 [0-9a-f]{64}, expected 0{64}/,
      ],
    ];
    for (const [job] of cases) await applyJob(job);
    for (const [job, reason, exitCode, message] of cases) {
      const name = job.metadata.name as string;
      const final = await finished(name, 120_000);
      const failed = final.conditions?.find((c) => c.type === "Failed");
      expect(final.phase, `${name}: ${JSON.stringify(final.conditions)}`).toBe("Failed");
      expect(failed?.reason, failed?.message).toBe(reason);
      expect(failed?.message).toMatch(message);
      // One attempt: the initializer's exit code failed the Job (podFailurePolicy), no retry loop.
      expect(final.attempts).toBe(1);
      const pod = await trainerPod(name);
      const init = (
        pod.status.initContainerStatuses as { state: { terminated?: { exitCode: number } } }[]
      )[0]!;
      expect(init.state.terminated?.exitCode).toBe(exitCode);
    }
  });

  // Its Job must see exactly the one injected failure: a pod evicted from outside (the scheduler preempting it for
  // a higher-priority pod of another file on the shared node) would be a further attempt, and its replacement would
  // find the cache already filled (seen before the Kueue test's PriorityClasses got preemptionPolicy Never).
  it("shows the initializer's bytes in Initializing; a retry's fetch finds everything in the cache claim", async () => {
    // The held download: train-images (26 MB) stops after its first MiB until the status has shown the bytes;
    // the first upload gets a 503 which, with one attempt allowed, fails the trainer retriably (exit 1).
    const proxy = await s3Proxy(s3!.server.endpoint, node!.nodeIp, {
      holdKey: "datasets/fashion-mnist/train-images-idx3-ubyte.gz",
      holdAfter: 1 << 20,
      failPuts: 1,
    });
    const claim = await hostPathClaim(namespace, "fetch-cache");
    try {
      const name = "fetch-cache-retry";
      const job = smallJob(name);
      const storage = s3!.storage() as { s3: Json };
      job.spec.storage = {
        ...storage,
        s3: { ...storage.s3, endpoint: proxy.endpoint, maxAttempts: 1 },
        cache: { claimName: "fetch-cache" },
      };
      await applyJob(job);
      const bytes =
        /^fetching s3:\/\/mokd-e2e\/datasets\/fashion-mnist\/: ([\d.]+) MiB of ([\d.]+) MiB \(1 of 1 artifacts\)$/;
      const initializing = await waitFor(
        "the Initializing condition with the bytes fetched",
        async () => {
          const c = (await status(name))?.conditions?.find((x) => x.type === "Initializing");
          return c?.status === "True" && bytes.test(c.message ?? "") && c;
        },
        180_000,
        500,
      ).catch(async (e: Error) => {
        throw new Error(
          `${e.message}\n${JSON.stringify((await status(name))?.conditions)}\n${await context()}`,
        );
      });
      const [, done, total] = bytes.exec(initializing.message!)!.map(Number);
      expect(proxy.heldAt()).toBe(1 << 20);
      expect(done).toBeGreaterThan(1); // t10k-* and the held file's first MiB
      expect(done).toBeLessThan(total!);
      proxy.release();

      const final = await finished(name, 300_000);
      expect(final.phase, JSON.stringify(final.conditions)).toBe("Succeeded");
      // On a mismatch, say what the cluster saw: the Job's counts and each pod's containers' exits.
      const seen = async () =>
        `${(await kubectl(["get", "job", name, "-n", namespace, "-o", "jsonpath={.status}"])).stdout}\n` +
        (
          await kubectl([
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            `batch.kubernetes.io/job-name=${name}`,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.initContainerStatuses[*].state.terminated.exitCode} {.status.containerStatuses[*].state.terminated.message}{'\\n'}{end}",
          ])
        ).stdout;
      // No pod of this job was disrupted from outside (the operator would say so: status.lastDisruption and a
      // Disrupted event naming the pod and the reason, e.g. PreemptionByScheduler).
      const disruptions = (
        await kubectl([
          "get",
          "events",
          "-n",
          namespace,
          "--field-selector",
          `involvedObject.kind=DistillationJob,involvedObject.name=${name},reason=Disrupted`,
          "-o",
          "jsonpath={range .items[*]}{.message}{'\\n'}{end}",
        ])
      ).stdout.trim();
      if (disruptions || final.lastDisruption)
        expect.fail(`trainer pods disrupted from outside:\n${disruptions}\n${await seen()}`);
      if (final.attempts !== 2) expect.fail(`attempts ${final.attempts}, expected 2:\n${await seen()}`);
      expect(proxy.failedUploads()).toBe(1);
      const r = await kubectl([
        "get",
        "pods",
        "-n",
        namespace,
        "-l",
        `batch.kubernetes.io/job-name=${name}`,
        "-o",
        "json",
      ]);
      const pods = (
        JSON.parse(r.stdout) as { items: { metadata: { name: string; creationTimestamp: string } }[] }
      ).items.sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp));
      if (pods.length !== 2) expect.fail(`${pods.length} pods, expected 2:\n${await seen()}`);
      const fetchLog = async (pod: string) =>
        (await kubectl(["logs", "-n", namespace, pod, "-c", "fetch"])).stdout;
      // The fetch's own counters: the first pod downloaded everything, the retry's found it in the claim.
      expect(await fetchLog(pods[0]!.metadata.name)).toMatch(
        /fetch: done: 1 artifact\(s\), 4 file\(s\), 0 cached, [1-9]\d* bytes downloaded/,
      );
      expect(await fetchLog(pods[1]!.metadata.name)).toMatch(
        /fetch: done: 1 artifact\(s\), 4 file\(s\), 4 cached, 0 bytes downloaded of [1-9]\d*/,
      );
    } finally {
      await proxy.stop();
      await claim.remove();
    }
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
