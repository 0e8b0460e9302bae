// `trainer fetch`: the initializer the operator runs as the trainer pod's init container. It downloads the spec's
// remote inputs into $MOKD_CACHE_DIR (a volume the trainer container mounts too) and exits; the trainer's own
// fetch then finds every file in the cache (one HEAD or LIST per artifact, nothing downloaded again).
import type { TrainerSpec } from "../../../api/v1alpha1/index.ts";
import { storageContext } from "./client.ts";
import { cacheRoot, remoteInputs, resolveInputs, type InputField } from "./inputs.ts";

interface Log {
  info(message: string): void;
  warn(message: string): void;
}

export async function fetchInputs(
  spec: TrainerSpec,
  log: Log,
  root = cacheRoot(),
  fields?: readonly InputField[],
): Promise<void> {
  const inputs = remoteInputs(spec, fields);
  if (inputs.length === 0) {
    log.info("fetch: no remote inputs");
    return;
  }
  log.info(`fetch: ${inputs.map((i) => `${i.field} ${i.uri}`).join(", ")} -> ${root}`);
  const ctx = storageContext(spec.storage, { info: (m) => log.info(m), warn: (m) => log.warn(m) });
  await resolveInputs(spec, ctx, root, fields);
}
