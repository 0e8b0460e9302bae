// The shipped backend here is wasm, with our own kernels and the fused optimiser: a whole tiny run on it must
// learn as well as on cpu (unit tests of single kernels cannot catch a wrong interaction inside the engine).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../../../trainer/src/backend/index.ts";
import { parseConfig } from "../../../../trainer/src/config.ts";
import { runJob } from "../../../../trainer/src/engine/run.ts";
import { backendUnderTest } from "../backend-under-test.ts";
import { tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

// wasm in the unit project; the `tensorflow` project runs the same whole runs on native TensorFlow.
const BACKEND = backendUnderTest("wasm");
const quiet = { info: () => {}, warn: () => {} };
let data: string;

beforeAll(async () => {
  await selectBackend(BACKEND, () => {});
  data = writeTinyIdx();
});

describe("engine on the wasm backend", () => {
  for (const strategy of ["sum", "mokd", "mokd-amortized"]) {
    it(`trains a student far above chance with ${strategy}`, async () => {
      const out = mkdtempSync(join(tmpdir(), "mokd-wasm-"));
      const job = tinyJob(data, out, { strategy, epochs: 3 });
      // Odd layer sizes: parameter counts that are not multiples of the SIMD width.
      job.spec.student = { ...job.spec.student, width: 7, hiddenUnits: 5 };
      const { summary } = await runJob({
        config: parseConfig(job, "test", {}),
        backend: BACKEND,
        log: quiet,
      });
      expect(summary.backend).toBe(BACKEND);
      // The synthetic classes are trivially separable; chance is 0.25.
      expect(summary.teacher.accuracy).toBeGreaterThan(0.6);
      expect(summary.student.accuracy).toBeGreaterThan(0.6);
    });
  }
});
