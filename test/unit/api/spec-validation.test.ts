// Specs the apiserver would refuse as a child (pod template, ConfigMap) are refused up front, naming the field:
// by the CRD (CEL / OpenAPI, checked for real in test/cluster/operator/lifecycle.test.ts) and by the same rules in
// zod (the trainer's `validate`, the operator's load). Each class of issue 10 point 2 is one row.
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

/** [class, spec, the field the error must name]. Shared with the cluster test, which applies each row. */
export const INVALID_SPECS: [string, unknown, string][] = [
  [
    "a cpu request that is no quantity",
    { runtime: { resources: { requests: { cpu: "lots" } } } },
    "spec.runtime.resources.requests.cpu",
  ],
  [
    "a negative memory limit",
    { runtime: { resources: { limits: { memory: "-1Gi" } } } },
    "spec.runtime.resources.limits.memory",
  ],
  [
    "a negative number for cpu",
    { runtime: { resources: { limits: { cpu: -0.5 } } } },
    "spec.runtime.resources.limits.cpu",
  ],
  [
    "a nodeSelector key with a space",
    { runtime: { nodeSelector: { "gpu type": "a100" } } },
    "spec.runtime.nodeSelector",
  ],
  [
    "a nodeSelector value over 63 characters",
    { runtime: { nodeSelector: { gpu: "a".repeat(64) } } },
    "spec.runtime.nodeSelector.gpu",
  ],
  [
    "a toleration key with two slashes",
    { runtime: { tolerations: [{ key: "a/b/c", operator: "Exists" }] } },
    "spec.runtime.tolerations.0.key",
  ],
  [
    "a toleration value that is no label value",
    { runtime: { tolerations: [{ key: "gpu", value: "a b" }] } },
    "spec.runtime.tolerations.0.value",
  ],
  [
    "a toleration with Exists and a value",
    { runtime: { tolerations: [{ key: "gpu", operator: "Exists", value: "x" }] } },
    "spec.runtime.tolerations.0.value",
  ],
  [
    "a toleration without key and not Exists",
    { runtime: { tolerations: [{ value: "x" }] } },
    "spec.runtime.tolerations.0.operator",
  ],
  [
    "tolerationSeconds without NoExecute",
    { runtime: { tolerations: [{ key: "gpu", operator: "Exists", tolerationSeconds: 5 }] } },
    "spec.runtime.tolerations.0.effect",
  ],
  [
    "a pod label key with a bad prefix",
    { runtime: { podLabels: { "Team_A/x": "y" } } },
    "spec.runtime.podLabels",
  ],
  [
    "a pod label value with a slash",
    { runtime: { podLabels: { team: "a/b" } } },
    "spec.runtime.podLabels.team",
  ],
  [
    "a pod annotation key with a space",
    { runtime: { podAnnotations: { "my note": "x" } } },
    "spec.runtime.podAnnotations",
  ],
  ["an env name with '='", { runtime: { env: [{ name: "A=B", value: "1" }] } }, "spec.runtime.env.0.name"],
  [
    "an env name used twice",
    {
      runtime: {
        env: [
          { name: "A", value: "1" },
          { name: "A", value: "2" },
        ],
      },
    },
    "spec.runtime.env",
  ],
  [
    "an env name of the operator's own",
    { runtime: { env: [{ name: "MOKD_CONFIG", value: "/tmp/x" }] } },
    "spec.runtime.env",
  ],
  [
    "a subPath with '..'",
    { runtime: { volumes: { data: { claimName: "data", subPath: "a/../../etc" } } } },
    "spec.runtime.volumes.data.subPath",
  ],
  [
    "an absolute subPath",
    { runtime: { volumes: { output: { claimName: "out", subPath: "/etc" } } } },
    "spec.runtime.volumes.output.subPath",
  ],
  [
    "a claimName that is no object name",
    { runtime: { volumes: { data: { claimName: "Data_1" } } } },
    "spec.runtime.volumes.data.claimName",
  ],
  [
    "a priorityClassName that is no object name",
    { runtime: { priorityClassName: "High Prio" } },
    "spec.runtime.priorityClassName",
  ],
  [
    "an image with trailing whitespace",
    { runtime: { image: "ghcr.io/mokd/trainer:0.1.0 " } },
    "spec.runtime.image",
  ],
  ["a queueName that is no label value", { queueName: "team a" }, "spec.queueName"],
  [
    "a spec too large for its ConfigMap",
    { runtime: { env: [{ name: "BIG", value: "x".repeat(1100 * 1024) }] } },
    "spec.runtime",
  ],
];

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
  it.each(INVALID_SPECS.filter(([what]) => !what.includes("too large")))(
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
