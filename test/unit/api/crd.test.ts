import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { buildCrd } from "../../../api/crd.ts";
import { CRD_PATH, generatedFiles } from "../../../scripts/generate.ts";
import { parseDistillationJob, ConfigError } from "../../../api/v1alpha1/index.ts";

describe("generated artefacts", () => {
  it("are current (run `npm run generate` after changing api/)", () => {
    for (const [path, expected] of generatedFiles()) {
      expect(readFileSync(path, "utf8"), `${path} is stale`).toBe(expected);
    }
  });
});

/** Every `enum` list in a schema, by path. */
function enums(node: unknown, path = ""): Record<string, unknown[]> {
  if (node === null || typeof node !== "object") return {};
  return Object.entries(node as Record<string, unknown>).reduce<Record<string, unknown[]>>(
    (found, [key, child]) =>
      key === "enum" && Array.isArray(child)
        ? { ...found, [path]: child }
        : { ...found, ...enums(child, `${path}.${key}`) },
    {},
  );
}

describe("the CRD as YAML", () => {
  it("keeps every enum value a string when read as YAML 1.1, as kubectl and Helm read it (`off` is no boolean)", () => {
    const expected = enums(buildCrd());
    expect(Object.values(expected).flat()).toContain("off");
    const read = enums(parse(readFileSync(CRD_PATH, "utf8"), { version: "1.1" }));
    expect(read).toEqual(expected);
  });
});

describe("the CRD's spec schema", () => {
  interface Node {
    description?: string;
    properties?: Record<string, Node>;
    items?: Node;
  }
  /** Named fields (object properties, also inside array items) without a description, as `kubectl explain` shows them. */
  function undescribed(node: Node, path: string): string[] {
    const own = node.properties ?? node.items?.properties ?? {};
    return Object.entries(own).flatMap(([name, child]) => [
      ...(child.description ? [] : [`${path}.${name}`]),
      ...undescribed(child, `${path}.${name}`),
    ]);
  }

  it("describes every field", () => {
    const crd = parse(readFileSync("crds/distillation.mokd.io_distillationjobs.yaml", "utf8")) as {
      spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: Node } } } }[] };
    };
    const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec;
    expect(spec.description).toBeTruthy();
    expect(undescribed(spec, "spec")).toEqual([]);
  });
});

describe("DistillationJob parsing", () => {
  const base = {
    apiVersion: "distillation.mokd.io/v1alpha1",
    kind: "DistillationJob",
    metadata: { name: "x" },
  };

  it("fills every default from an empty spec", () => {
    const job = parseDistillationJob(base);
    expect(job.spec.strategy.name).toBe("mokd");
    expect(job.spec.training.epochs).toBeGreaterThan(0);
    expect(job.spec.teacher.width).toBeGreaterThan(job.spec.student.width);
    expect(job.spec.runPolicy.backoffLimit).toBe(3);
  });

  it("names every bad field", () => {
    const bad = { ...base, spec: { training: { epochs: 0, batchSize: "big" }, strategy: { name: "magic" } } };
    try {
      parseDistillationJob(bad);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const fields = (e as ConfigError).errors.map((x) => x.field).sort();
      expect(fields).toEqual(["spec.strategy.name", "spec.training.batchSize", "spec.training.epochs"]);
    }
  });

  it("applies the cross-field rules the CRD states in CEL", () => {
    const oneObjective = { ...base, spec: { objectives: { distillation: { enabled: false } } } };
    expect(() => parseDistillationJob(oneObjective)).toThrow(/spec\.strategy\.name/);
    const sum = {
      ...base,
      spec: { strategy: { name: "sum" }, objectives: { distillation: { enabled: false } } },
    };
    expect(parseDistillationJob(sum).spec.strategy.name).toBe("sum");
  });
});
