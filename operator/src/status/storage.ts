// Status of the trainer pod's initializer (the `fetch` init container, operator/src/builders/storage.ts): while
// it downloads the inputs the job is Pending with reason Initializing; when it fails, its exit code and
// termination message say why, as the trainer's would.
import type { V1ContainerStateTerminated, V1Pod } from "@kubernetes/client-node";
import type { FetchProgress } from "../../../api/v1alpha1/index.ts";
import { FETCH_CONTAINER } from "../builders/storage.ts";

const fetchStatus = (pod: V1Pod) =>
  pod.status?.initContainerStatuses?.find((c) => c.name === FETCH_CONTAINER);

/** 1.2 GiB, 20 GiB, 512.0 KiB: bytes as people read them. */
export function formatBytes(n: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB"];
  if (n < 1024) return `${n} B`;
  let value = n / 1024;
  let unit = 0;
  for (; value >= 1024 && unit < units.length - 1; unit++) value /= 1024;
  return `${value >= 10 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/**
 * The initializer's document in one line: "fetching s3://bucket/key: 1.2 GiB of 20 GiB (2 of 3 artifacts)";
 * undefined before any artifact has started.
 */
export function fetchSummary(document: FetchProgress): string | undefined {
  const { artifacts } = document;
  const index = artifacts.findIndex((a) => a.state === "fetching");
  const current = artifacts[index];
  if (!current) return undefined;
  const bytes =
    current.bytesTotal !== undefined
      ? `${formatBytes(current.bytesDone)} of ${formatBytes(current.bytesTotal)}`
      : `${formatBytes(current.bytesDone)} so far`;
  const cached = artifacts.filter((a) => a.state === "cached").length;
  const hits = cached > 0 ? `, ${cached} found in the cache` : "";
  return `fetching ${current.uri}: ${bytes} (${index + 1} of ${artifacts.length} artifacts${hits})`;
}

/** The initializer is running: the bytes from its progress document when read, else where its log is. */
export function initializing(
  pod: V1Pod,
  fetching?: FetchProgress,
): { reason: string; message: string } | undefined {
  const running = fetchStatus(pod)?.state?.running;
  if (!running) return undefined;
  const summary = fetching && fetchSummary(fetching);
  if (summary) return { reason: "Initializing", message: summary };
  const since = running.startedAt ? ` since ${new Date(running.startedAt).toISOString()}` : "";
  return {
    reason: "Initializing",
    message: `downloading the inputs from object storage${since} (progress: kubectl logs ${pod.metadata?.name} -c ${FETCH_CONTAINER})`,
  };
}

/** How the initializer ended when it failed (non-zero exit), if it did. */
export function failedInitializer(pod: V1Pod): V1ContainerStateTerminated | undefined {
  const terminated = fetchStatus(pod)?.state?.terminated;
  return terminated && terminated.exitCode !== 0 ? terminated : undefined;
}
