// Specs the apiserver would refuse as a child (pod template, ConfigMap) are refused up front, naming the field:
// by the CRD (CEL / OpenAPI, checked for real in test/cluster/operator/lifecycle.test.ts) and by the same rules in
// zod (the trainer's `validate`, the operator's load). Each class of test/fixtures/invalid-specs.ts is one row.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  ConfigError,
  isLabelValue,
  isQualifiedName,
  isQuantity,
  parseDistillationJobSpec,
  type DistillationJobSpecInput,
} from "../../../api/v1alpha1/index.ts";
import { INVALID_SPECS } from "../../fixtures/invalid-specs.ts";

function refusedFields(spec: unknown): string[] {
  try {
    parseDistillationJobSpec(spec);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).errors.map((e) => e.field);
  }
  return [];
}

describe("spec validation (zod, as the trainer's validate and the operator's load)", () => {
  it.each(INVALID_SPECS)("refuses %s, naming the field", (_what, spec, field) => {
    expect(refusedFields(spec)).toContain(field);
  });

  it.each<[string, DistillationJobSpecInput]>([
    ["numbers for quantities", { runtime: { resources: { requests: { cpu: 0.5, memory: 1073741824 } } } }],
    [
      "quantity strings",
      {
        runtime: {
          resources: { requests: { cpu: "500m", memory: "1.5Gi" }, limits: { cpu: "2", memory: "8e9" } },
        },
      },
    ],
    ["a toleration of every taint", { runtime: { tolerations: [{ operator: "Exists" }] } }],
    [
      "a NoExecute toleration with seconds",
      {
        runtime: {
          tolerations: [{ key: "k", operator: "Exists", effect: "NoExecute", tolerationSeconds: 30 }],
        },
      },
    ],
    ["prefixed label keys and empty values", { runtime: { podLabels: { "example.com/team": "", a: "b" } } }],
    [
      "annotation keys with capitals and long values",
      { runtime: { podAnnotations: { "Example.com/Note": "x".repeat(10_000) } } },
    ],
    ["env names with dots and dashes", { runtime: { env: [{ name: "my.var-1", value: "" }] } }],
    ["a nested subPath", { runtime: { volumes: { data: { claimName: "data", subPath: "mnist/v1..2" } } } }],
    ["a queueName", { queueName: "team-a.gpu_queue" }],
  ])("accepts %s", (_what, spec) => {
    expect(refusedFields(spec)).toEqual([]);
  });

  it("follows Kubernetes' formats at their edges", () => {
    expect(isQualifiedName("a".repeat(63))).toBe(true);
    expect(isQualifiedName("a".repeat(64))).toBe(false);
    expect(isQualifiedName(`${"a".repeat(253)}/b`)).toBe(true);
    expect(isQualifiedName(`${"a".repeat(254)}/b`)).toBe(false);
    expect(isQualifiedName("/b")).toBe(false);
    expect(isQualifiedName("-a")).toBe(false);
    expect(isLabelValue("")).toBe(true);
    expect(isLabelValue("a.")).toBe(false);
    expect(isQuantity("1Ki")).toBe(true);
    expect(isQuantity("1K")).toBe(false);
    expect(isQuantity("1e3")).toBe(true);
    expect(isQuantity(".5")).toBe(true);
    expect(isQuantity(Number.NaN)).toBe(false);
  });
});

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode;
  items?: SchemaNode;
  pattern?: string;
  maxLength?: number;
  "x-kubernetes-validations"?: { rule: string; fieldPath?: string }[];
  "x-kubernetes-list-map-keys"?: string[];
}

const crdSpec = (): SchemaNode =>
  (
    parse(readFileSync("crds/distillation.mokd.io_distillationjobs.yaml", "utf8"), { version: "1.1" }) as {
      spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: SchemaNode } } } }[] };
    }
  ).spec.versions[0]!.schema.openAPIV3Schema.properties.spec;

/** The schema nodes along a field path (`spec.runtime.tolerations.0.key`), array indices and map keys included. */
function nodesAlong(path: string): SchemaNode[] {
  const nodes: SchemaNode[] = [crdSpec()];
  for (const part of path.split(".").slice(1)) {
    const node = nodes.at(-1)!;
    const next = node.properties?.[part] ?? (/^\d+$/.test(part) ? node.items : node.additionalProperties);
    if (!next) break;
    nodes.push(next);
  }
  return nodes;
}

const hasOwnRule = (n: SchemaNode) =>
  (n["x-kubernetes-validations"]?.length ?? 0) > 0 ||
  n.pattern !== undefined ||
  n.maxLength !== undefined ||
  n["x-kubernetes-list-map-keys"] !== undefined;

describe("the CRD states each of those rules", () => {
  // Not stated in the CRD: quantities (typeless so that numbers like 0.5 pass; CEL cannot see typeless fields)
  // and the ConfigMap size. The operator fails those jobs with reason InvalidSpec (test/unit/operator).
  const inCrd = INVALID_SPECS.filter(
    ([what]) => !/too large|quantity|memory limit|number for cpu/.test(what),
  );
  it.each(inCrd)(
    "has a rule on the field of %s (or on its parent, pointing at it)",
    (_what, _spec, field) => {
      const nodes = nodesAlong(field);
      expect(nodes).toHaveLength(field.split(".").length);
      const [parent, node] = nodes.slice(-2) as [SchemaNode, SchemaNode];
      const last = `.${field.split(".").at(-1)}`;
      const pointed = parent["x-kubernetes-validations"]?.some((v) => v.fieldPath === last) ?? false;
      expect(hasOwnRule(node) || pointed).toBe(true);
    },
  );
});
