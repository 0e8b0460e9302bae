// Versions and locations of the test control plane. build-binaries.sh has the same defaults.
import { homedir } from "node:os";
import { join } from "node:path";

export const K8S_VERSION = process.env.K8S_VERSION ?? "v1.36.3";

/** Root of everything the bed caches or keeps between runs. */
export const CACHE_DIR = process.env.MOKD_TESTBED_CACHE ?? join(homedir(), ".cache", "mokd-testbed");

/** State of the bed started by `npm run testbed:up` (one at a time). */
export const CLI_RUN_DIR = process.env.MOKD_TESTBED_RUN_DIR ?? join(CACHE_DIR, "run");

/** Per-run component logs are kept here; old runs are pruned. */
export const LOGS_DIR = join(CACHE_DIR, "logs");
export const KEEP_LOG_RUNS = 10;

/** Fake nodes: kwok manages only nodes carrying this annotation. */
export const KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node";
export const KWOK_NODE_ANNOTATION_VALUE = "fake";

/** A node kwok leaves alone, so an end-to-end test can act as its kubelet. */
export const LOCAL_NODE = "kwok-local-0";

/** Env vars that point child processes (an operator under test, kubectl) at the bed. */
export const ENV_KUBECONFIG = "MOKD_TEST_KUBECONFIG";
export const ENV_BIN_DIR = "MOKD_TEST_BIN_DIR";
