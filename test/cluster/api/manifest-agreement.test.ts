// One validation everywhere: each hostile manifest of test/fixtures/manifest-cases.ts through
// zod, the trainer's `validate` and the real apiserver (`kubectl apply --dry-run=server` against the generated
// CRD, kubectl's default strict field validation): all three accept it or all three refuse it. The one declared
// exception is a bad quantity, typeless in the CRD: admitted, then failed by the operator with reason InvalidSpec
// (that path is test/cluster/operator/lifecycle.test.ts).
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkManifestFile, ConfigError } from "../../../api/v1alpha1/index.ts";
import { createTestNamespace, deleteNamespace, kubectl } from "../../bed/env.ts";
import { ensureCrd } from "../operator/harness.ts";
import { MANIFEST_CASES } from "../../fixtures/manifest-cases.ts";

const ROOT = join(import.meta.dirname, "../../..");
const dir = mkdtempSync(join(tmpdir(), "mokd-agreement-"));
let ns = "";

beforeAll(async () => {
  await ensureCrd();
  ns = await createTestNamespace("manifest-agreement");
});
afterAll(async () => {
  if (ns) await deleteNamespace(ns);
});

function zodRefuses(text: string): boolean {
  try {
    return checkManifestFile(text).some((c) => c.errors.length > 0);
  } catch (error) {
    if (error instanceof ConfigError) return true;
    throw error;
  }
}

function validateRefuses(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["trainer/src/cli.ts", "validate", path], {
      cwd: ROOT,
      stdio: "ignore",
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 || code === 2 ? resolve(code === 2) : reject(new Error(`exit ${code}`)),
    );
  });
}

describe.concurrent("zod, `trainer validate` and the apiserver agree", () => {
  it.each(MANIFEST_CASES.map((c, i) => [c.name, c, i] as const))("%s", async (_name, c, i) => {
    const path = join(dir, `case-${i}.yaml`);
    writeFileSync(path, c.text);
    const applied = await kubectl(["apply", "--dry-run=server", "-n", ns, "-f", path]);
    const apiserverRefuses = applied.code !== 0;
    const localRefuses = c.admission !== "admitted";
    expect({ zod: zodRefuses(c.text), validate: await validateRefuses(path) }).toEqual({
      zod: localRefuses,
      validate: localRefuses,
    });
    // A bad quantity is admitted (the CRD cannot type it) and refused by the operator: the declared exception.
    expect(apiserverRefuses, applied.stdout + applied.stderr).toBe(c.admission === "refused");
    if (c.apiserverSays) expect(applied.stderr).toContain(c.apiserverSays);
  });
});
