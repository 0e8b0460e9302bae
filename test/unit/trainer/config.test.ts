import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../api/v1alpha1/index.ts";
import { configPath, loadConfig } from "../../../trainer/src/config.ts";

const dir = mkdtempSync(join(tmpdir(), "mokd-config-"));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

const manifest = `
apiVersion: distillation.mokd.io/v1alpha1
kind: DistillationJob
metadata: { name: fm, namespace: ml }
spec:
  strategy: { name: pcgrad }
  training: { epochs: 7 }
`;

describe("trainer config", () => {
  it("reads a whole manifest with defaults and takes name/namespace from metadata", () => {
    const c = loadConfig(file("job.yaml", manifest), {});
    expect(c.spec.strategy.name).toBe("pcgrad");
    expect(c.spec.training.epochs).toBe(7);
    expect(c.spec.training.batchSize).toBe(64);
    expect([c.jobName, c.namespace]).toEqual(["fm", "ml"]);
  });

  it("reads a bare spec (what the operator mounts) and names from the env", () => {
    const path = file("spec.json", JSON.stringify({ training: { epochs: 2 } }));
    const c = loadConfig(path, { MOKD_JOB_NAME: "j1", MOKD_JOB_NAMESPACE: "n1" });
    expect(c.spec.training.epochs).toBe(2);
    expect([c.jobName, c.namespace]).toEqual(["j1", "n1"]);
  });

  it("names every bad field", () => {
    const badSpec = "  training: { epochs: -1 }\n  data: { validationSplit: 3 }\n";
    const bad = file("bad.yaml", manifest.replace("  training: { epochs: 7 }\n", badSpec));
    try {
      loadConfig(bad, {});
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const fields = (error as ConfigError).errors.map((e) => e.field);
      expect(fields).toEqual(expect.arrayContaining(["spec.training.epochs", "spec.data.validationSplit"]));
      expect((error as Error).message).toContain("spec.training.epochs");
    }
  });

  it("reports unreadable files, bad YAML and a missing path as config errors", () => {
    expect(() => loadConfig(join(dir, "missing.yaml"), {})).toThrow(ConfigError);
    expect(() => loadConfig(file("broken.yaml", "spec: [unclosed"), {})).toThrow(ConfigError);
    expect(() => configPath(undefined, {})).toThrow(/MOKD_CONFIG/);
    expect(configPath(undefined, { MOKD_CONFIG: "/etc/x.yaml" })).toBe("/etc/x.yaml");
    expect(configPath("/a.yaml", { MOKD_CONFIG: "/etc/x.yaml" })).toBe("/a.yaml");
  });
});
