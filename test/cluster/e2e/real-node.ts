// What cluster tests need to use the bed's real node (test/bed/node.ts): where it is, and the project's images,
// built from their Dockerfiles by scripts/images/build.ts (cached by their inputs) and imported into its containerd.
import { execFile, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { inject } from "vitest";
import { CHART_DIR, ROOT } from "../../../scripts/generate.ts";
import { binDir, createTestNamespace, kubeconfigPath, kubectl } from "../../bed/env.ts";
import { CRI_NAMESPACE } from "../../bed/node.ts";

const run = promisify(execFile);

export interface RealNode {
  containerdSocket: string;
  nodeIp: string;
  /** The kubelet's --root-dir: pods/<uid>/volumes/... */
  kubeletRoot: string;
}

/** The real node, or undefined when the bed runs without one (MOKD_TESTBED_REAL_NODE=0). */
export function realNode(): RealNode | undefined {
  try {
    const containerdSocket = inject("mokdContainerdSocket");
    if (!containerdSocket) return undefined;
    return {
      containerdSocket,
      nodeIp: inject("mokdNodeIp"),
      kubeletRoot: join(inject("mokdNodeDir"), "kubelet", "root"),
    };
  } catch {
    return undefined;
  }
}

export type ImageName = "operator" | "trainer-cpu" | "trainer-gpu";
export interface BuiltImage {
  ref: string;
  tar: string;
  cached: boolean;
  seconds: number;
}

/** Runs the images script (which holds its own lock and cache): cold minutes, warm seconds. */
export async function buildImages(names: ImageName[]): Promise<Record<string, BuiltImage>> {
  const child = spawn(process.execPath, [join(ROOT, "scripts", "images", "build.ts"), ...names], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? -1)));
  if (code !== 0)
    throw new Error(`scripts/images/build.ts ${names.join(" ")} exited ${code}:\n${stderr.slice(-3000)}`);
  return (JSON.parse(stdout) as { images: Record<string, BuiltImage> }).images;
}

async function hasImage(node: RealNode, ref: string): Promise<boolean> {
  const { stdout } = await run("ctr", [
    "--address",
    node.containerdSocket,
    "-n",
    CRI_NAMESPACE,
    "images",
    "ls",
    "-q",
  ]);
  return stdout.split("\n").includes(ref);
}

/** Imports each image's docker-archive into the node's containerd (CRI namespace) unless it is there already. */
export async function importImages(node: RealNode, images: BuiltImage[]): Promise<void> {
  for (const image of images) {
    if (await hasImage(node, image.ref)) continue;
    // prettier-ignore
    await run("ctr", ["--address", node.containerdSocket, "-n", CRI_NAMESPACE, "images", "import", image.tar], {
      maxBuffer: 16 << 20,
    });
  }
}

/** Namespace annotations that put every pod of the namespace on the real node, as a cluster admin would:
 * the PodNodeSelector and PodTolerationRestriction admission plugins (enabled on the bed's apiserver) add the
 * node selector and the toleration of its taint, so the manifests under test stay as users write them. */
export const REAL_NODE_NAMESPACE_ANNOTATIONS = {
  "scheduler.alpha.kubernetes.io/node-selector": "kubernetes.io/hostname=kwok-local-0",
  "scheduler.alpha.kubernetes.io/defaultTolerations":
    '[{"key":"mokd.io/local-kubelet","operator":"Exists","effect":"NoSchedule"}]',
};

/** The bed's helm (first on PATH), never throwing on a non-zero exit. */
export function helm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(join(binDir(), "helm"), [`--kubeconfig=${kubeconfigPath()}`, ...args], (err, stdout, stderr) =>
      resolve({ code: err ? 1 : 0, stdout, stderr }),
    );
  });
}

/** A test namespace whose pods all land on the real node (see REAL_NODE_NAMESPACE_ANNOTATIONS). */
export async function realNodeNamespace(
  prefix: string,
  labels: Record<string, string> = {},
): Promise<string> {
  const namespace = await createTestNamespace(prefix);
  // prettier-ignore
  const annotate = await kubectl(["annotate", "namespace", namespace,
    ...Object.entries(REAL_NODE_NAMESPACE_ANNOTATIONS).map(([k, v]) => `${k}=${v}`)]);
  if (annotate.code !== 0) throw new Error(annotate.stderr);
  if (Object.keys(labels).length > 0) {
    const label = await kubectl([
      "label",
      "namespace",
      namespace,
      ...Object.entries(labels).map(([k, v]) => `${k}=${v}`),
    ]);
    if (label.code !== 0) throw new Error(label.stderr);
  }
  return namespace;
}

export const RELEASE = "mokd";
export const OPERATOR_DEPLOYMENT = "mokd-mokd-operator"; // the chart's fullname for release "mokd"

/**
 * `helm install` of the chart with the locally built operator image, watching one namespace. The CRDs are
 * cluster-wide and other tests apply them too, so they are managed outside the release (crds.enabled=false).
 */
export async function installOperator(namespace: string, operatorImage: BuiltImage): Promise<void> {
  const crds = join(CHART_DIR, "files", "crds");
  const crd = await kubectl([
    "apply",
    "--server-side",
    "--force-conflicts",
    "-f",
    join(crds, "distillation.mokd.io_distillationjobs.yaml"),
    "-f",
    join(crds, "distillation.mokd.io_distillationstudies.yaml"),
  ]);
  if (crd.code !== 0) throw new Error(crd.stderr);
  const [repository, tag] = operatorImage.ref.split(/:(?=[^:/]+$)/);
  // prettier-ignore
  const install = await helm([
    "install", RELEASE, CHART_DIR, "-n", namespace, "--wait", "--timeout=180s",
    "--set", `image.repository=${repository}`, "--set", `image.tag=${tag}`, "--set", "image.pullPolicy=Never",
    "--set", "replicaCount=1", "--set", "crds.enabled=false", "--set", `watchNamespace=${namespace}`,
  ]);
  if (install.code !== 0) throw new Error(`helm install: ${install.stderr}`);
}

/**
 * A PersistentVolumeClaim bound to a hostPath PersistentVolume on the real node (the bed has no provisioner):
 * what outlives a pod (outputs of a finished pod, checkpoints of a preempted one). `subdirs` are created
 * writable by the trainer's UID 1000 (the kubelet would create subPath dirs root-owned).
 */
export async function hostPathClaim(
  namespace: string,
  claim: string,
  subdirs: string[] = [],
): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = mkdtempSync("/var/tmp/mokd-pv-");
  for (const d of [dir, ...subdirs.map((s) => join(dir, s))]) {
    mkdirSync(d, { recursive: true });
    chmodSync(d, 0o777);
  }
  const pv = `mokd-${namespace}-${claim}`;
  const docs = [
    {
      apiVersion: "v1",
      kind: "PersistentVolume",
      metadata: { name: pv },
      spec: {
        capacity: { storage: "1Gi" },
        accessModes: ["ReadWriteOnce"],
        persistentVolumeReclaimPolicy: "Retain",
        storageClassName: "",
        hostPath: { path: dir, type: "Directory" },
        claimRef: { namespace, name: claim },
      },
    },
    {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: claim, namespace },
      spec: {
        accessModes: ["ReadWriteOnce"],
        storageClassName: "",
        volumeName: pv,
        resources: { requests: { storage: "1Gi" } },
      },
    },
  ];
  const r = await kubectl(["apply", "-f", "-"], { input: docs.map((d) => JSON.stringify(d)).join("\n") });
  if (r.code !== 0) throw new Error(r.stderr);
  return {
    dir,
    remove: async () => {
      await kubectl(["delete", "pv", pv, "--wait=false", "--ignore-not-found"]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Beside the bed lock: who uses the real node now (shared), or has it to itself (exclusive). */
const REAL_NODE_LOCK = `${process.env.MOKD_BED_LOCK ?? "/tmp/mokd-bed.lock"}.real-node`;

/**
 * Holds a flock(1) on the real node until the returned release is called (or this process dies: the holder
 * reads our stdin). Files whose pods run on the real node hold it shared; a test that stops the node's kubelet
 * (node loss) holds it exclusive, so no other file's pod is caught on a node that stopped reporting.
 */
export function holdRealNode(mode: "shared" | "exclusive", timeoutSeconds = 1800): Promise<() => void> {
  // prettier-ignore
  const child = spawn("flock", [
    `--${mode}`, "--timeout", String(timeoutSeconds), REAL_NODE_LOCK, "sh", "-c", "echo locked; exec cat >/dev/null",
  ], { stdio: ["pipe", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.once("data", () => resolve(() => child.stdin.end()));
    child.once("error", reject);
    child.once("exit", (code) =>
      reject(new Error(`flock ${mode} ${REAL_NODE_LOCK} exited ${code} (${stderr.trim() || "timed out"})`)),
    );
  });
}
