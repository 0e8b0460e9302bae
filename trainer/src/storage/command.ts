// `trainer fetch`: the initializer the operator runs as the trainer pod's init container. It downloads the spec's
// remote inputs into $MOKD_CACHE_DIR (a volume the trainer container mounts too) and exits; the trainer's own
// fetch then finds every file in the cache (one HEAD or LIST per artifact, nothing downloaded again). While it
// runs it serves its progress (storage/fetch-progress.ts) on the trainer's metrics port, for the operator.
import type { TrainerSpec } from "../../../api/v1alpha1/index.ts";
import { storageContext } from "./client.ts";
import { closeFetchProgress, FetchProgressDocument, serveFetchProgress } from "./fetch-progress.ts";
import { cacheRoot, remoteInputs, resolveInputs, type InputField } from "./inputs.ts";

interface Log {
  info(message: string): void;
  warn(message: string): void;
}

export async function fetchInputs(
  spec: TrainerSpec,
  log: Log,
  root = cacheRoot(),
  options: { port?: number; fields?: readonly InputField[] } = {},
): Promise<void> {
  const inputs = remoteInputs(spec, options.fields);
  if (inputs.length === 0) {
    log.info("fetch: no remote inputs");
    return;
  }
  log.info(`fetch: ${inputs.map((i) => `${i.field} ${i.uri}`).join(", ")} -> ${root}`);
  const ctx = storageContext(spec.storage, { info: (m) => log.info(m), warn: (m) => log.warn(m) });
  const progress = new FetchProgressDocument(inputs);
  const server = await serveFetchProgress(progress, options.port ?? spec.metrics.port, (m) => log.warn(m));
  try {
    await resolveInputs(spec, ctx, root, {
      watch: (index) => progress.watch(index),
      ...(options.fields ? { fields: options.fields } : {}),
    });
  } finally {
    await closeFetchProgress(server);
  }
  // The counters a retry's or resume's fetch is judged by: a cache hit downloads 0 bytes.
  const artifacts = progress.document().artifacts;
  const sum = (pick: (a: (typeof artifacts)[number]) => number) => artifacts.reduce((s, a) => s + pick(a), 0);
  log.info(
    `fetch: done: ${artifacts.length} artifact(s), ${sum((a) => a.files ?? 0)} file(s), ${sum((a) => a.cachedFiles)} cached, ${sum((a) => a.bytesDownloaded)} bytes downloaded of ${sum((a) => a.bytesDone)}`,
  );
}
