import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../api/v1alpha1/index.ts";
import { configPath, loadConfig, parseConfig } from "../../../trainer/src/config.ts";

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

  it("parses the trainer's contract only: operator fields are set aside, their rules not applied", () => {
    const job = {
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationJob",
      metadata: { name: "x" },
      // A teacher volume without teacher.model breaks an operator rule (runtime.volumes.teacher): not the
      // trainer's business. An invalid runtime field is not parsed either.
      spec: { runtime: { gpus: -3, volumes: { teacher: { claimName: "t" } } }, runPolicy: { suspend: true } },
    };
    const c = parseConfig(job, "t", {});
    expect(c.unknownFields).toEqual([]);
    expect(c.spec).not.toHaveProperty("runtime");
    expect(c.spec.training.epochs).toBe(5);
  });

  it("keeps the trainer's own cross-field rules", () => {
    const oneObjective = { objectives: { distillation: { enabled: false } }, strategy: { name: "mokd" } };
    expect(() => parseConfig(oneObjective, "t", {})).toThrow(/spec\.strategy\.name: strategies other than/);
  });

  it("lists every field it does not know, nested and at the root", () => {
    const job = {
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationJob",
      extra: 1,
      spec: {
        training: { epochs: 2, warmupEpochs: 1 },
        objectives: { distillation: { temperature: 2, flavour: "x" } },
        futureSection: {},
      },
    };
    const c = parseConfig(job, "t", {});
    expect(c.unknownFields).toEqual([
      "extra",
      "spec.training.warmupEpochs",
      "spec.objectives.distillation.flavour",
      "spec.futureSection",
    ]);
    expect(c.spec.training.epochs).toBe(2);
  });

  it("ships no generator in api/: nothing under api/ imports the dashboards (every image copies api/)", () => {
    const root = join(import.meta.dirname, "../../../api");
    const files = readdirSync(root, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
    expect(files.length).toBeGreaterThan(3);
    const importing = files.filter((f) =>
      /from "[./]*dashboards\//.test(readFileSync(join(root, f), "utf8")),
    );
    expect(importing).toEqual([]);
  });
});
