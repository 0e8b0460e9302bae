import { defineConfig } from "vitest/config";

// Two projects: `unit` needs nothing; `cluster` runs against the real control plane that
// test/bed/global-setup.ts builds (cached) and starts once per run, and always tears down.
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
