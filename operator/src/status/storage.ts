// Status of the trainer pod's initializer (the `fetch` init container, operator/src/builders/storage.ts): while
// it downloads the inputs the job is Pending with reason Initializing; when it fails, its exit code and
// termination message say why, as the trainer's would.
import type { V1ContainerStateTerminated, V1Pod } from "@kubernetes/client-node";
import { FETCH_CONTAINER } from "../builders/storage.ts";

const fetchStatus = (pod: V1Pod) =>
  pod.status?.initContainerStatuses?.find((c) => c.name === FETCH_CONTAINER);

/** The initializer is running: bytes are in its log (one progress line per artifact every 5 s). */
export function initializing(pod: V1Pod): { reason: string; message: string } | undefined {
  const running = fetchStatus(pod)?.state?.running;
  if (!running) return undefined;
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
