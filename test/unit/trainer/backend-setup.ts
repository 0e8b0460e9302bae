// setupFiles of the `tensorflow` and `wasm` vitest projects: forces the backend under test before each file, so
// files that do not pick a backend themselves (objectives, strategies, checkpoints) run on it too. Forced, not
// auto: a backend that cannot load fails the file instead of falling back.
import * as tf from "@tensorflow/tfjs";
import { beforeAll, expect } from "vitest";
import { selectBackend } from "../../../trainer/src/backend/index.ts";
import { backendUnderTest } from "./backend-under-test.ts";

beforeAll(async () => {
  const selected = await selectBackend(backendUnderTest("cpu"), () => {});
  expect(tf.getBackend()).toBe(selected.tfBackend);
});
