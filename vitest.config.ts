import { defineConfig } from "vitest/config";

// The trainer's kernel-sensitive tests (their numbers depend on the backend's kernels), selected by name and run
// again on each backend (test/unit/trainer/backend-under-test.ts).
const KERNEL_SENSITIVE = ["test/unit/trainer/**/*.kernels.test.ts"];

/** A project running KERNEL_SENSITIVE on `backend` (forced: a backend that does not load fails the project). */
const onBackend = (backend: "tensorflow" | "wasm") => ({
  test: {
    name: backend,
    include: KERNEL_SENSITIVE,
    env: { MOKD_TEST_BACKEND: backend },
    setupFiles: ["test/unit/trainer/backend-setup.ts"],
    testTimeout: 120_000,
    sequence: { groupOrder: 0 },
  },
});

// `unit` needs nothing; `tensorflow` and `wasm` rerun the kernel-sensitive trainer tests on those backends
// (tensorflow needs `npm run native-tf`, which `npm test` runs first); `images` builds the real images from their
// Dockerfiles with podman (cached by their inputs; up to an hour cold) and runs them; `cluster` runs against the
// real control plane that test/bed/global-setup.ts builds (cached) and starts once per run, and always tears down.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          testTimeout: 120_000,
          sequence: { groupOrder: 0 },
        },
      },
      onBackend("tensorflow"),
      onBackend("wasm"),
      {
        test: {
          name: "images",
          include: ["test/images/**/*.test.ts"],
          testTimeout: 120_000,
          // Before the cluster tests, beside the unit tests, as when it was part of `unit`.
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: "cluster",
          include: ["test/cluster/**/*.test.ts"],
          globalSetup: ["test/bed/global-setup.ts"],
          testTimeout: 240_000,
          hookTimeout: 240_000,
          // Two cores: the control plane needs one of them.
          maxWorkers: 2,
          // After the unit tests, so the two do not compete for the two cores.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
