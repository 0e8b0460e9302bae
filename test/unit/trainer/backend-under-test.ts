// The backend the trainer's kernel-sensitive tests run on. The unit project leaves MOKD_TEST_BACKEND unset (each
// file uses its own default: cpu, or wasm for the wasm-specific ones); the `tensorflow` and `wasm` projects of
// vitest.config.ts set it, so the same tests run on native TensorFlow and on wasm (vitest.config.ts lists them).
import type { BackendChoice } from "../../../trainer/src/backend/index.ts";
import { backendPreferences } from "../../../trainer/src/backend/index.ts";

export function backendUnderTest(fallback: BackendChoice): BackendChoice {
  const value = process.env.MOKD_TEST_BACKEND;
  if (value === undefined || value === "") return fallback;
  if (value === "auto" || !(backendPreferences as readonly string[]).includes(value))
    throw new Error(`MOKD_TEST_BACKEND=${value}: expected tensorflow-gpu, tensorflow, wasm or cpu`);
  return value as BackendChoice;
}

/** For files that cover several backends: only the one under test when a project sets it. */
export function backendsUnderTest<B extends BackendChoice>(fallback: readonly B[]): BackendChoice[] {
  return process.env.MOKD_TEST_BACKEND ? [backendUnderTest(fallback[0]!)] : [...fallback];
}
