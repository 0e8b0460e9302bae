// One validation everywhere: a manifest file is judged by zod (checkManifestFile), by the
// trainer's `validate` and `run`, and by the apiserver (test/cluster/api/manifest-agreement.test.ts) alike.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import {
  celRulesWithZodTwin,
  checkManifestFile,
  ConfigError,
  didYouMean,
  ExitCode,
} from "../../../api/v1alpha1/index.ts";
import { CRD_PATH } from "../../../scripts/generate.ts";
import { parseConfig } from "../../../trainer/src/config.ts";
import { loadJobManifest } from "../../../trainer/src/manifest-file.ts";
import { INVALID_SPECS } from "../../fixtures/invalid-specs.ts";
import { MANIFEST_CASES, type ManifestCase } from "../../fixtures/manifest-cases.ts";

const dir = mkdtempSync(join(tmpdir(), "mokd-manifest-"));
const write = (name: string, text: string) => {
  const path = join(dir, name.replace(/[^a-z0-9]+/gi, "-") + ".yaml");
  writeFileSync(path, text);
  return path;
};

/** The fields zod names for a file; [""] for a file-level error (empty, bad YAML). */
function zodFields(text: string): string[] {
  try {
    return checkManifestFile(text).flatMap((c) => c.errors.map((e) => e.field));
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).errors.map((e) => e.field);
  }
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["trainer/src/cli.ts", ...args]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const locallyValid = (c: ManifestCase) => c.admission === "admitted";

describe("hostile manifests, through zod", () => {
  it.each(MANIFEST_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const fields = zodFields(c.text);
    if (locallyValid(c)) expect(fields).toEqual([]);
    else expect(fields).toEqual(expect.arrayContaining(c.fields));
  });
});

describe.concurrent("hostile manifests, through `trainer validate`", () => {
  it.each(MANIFEST_CASES.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const r = await cli(["validate", write(c.name, c.text)]);
    if (locallyValid(c)) {
      expect(r.code, r.stderr).toBe(ExitCode.Success);
      expect(r.stdout).toContain("valid (job default/hostile");
    } else {
      expect(r.code, r.stdout).toBe(ExitCode.BadConfig);
      for (const field of c.fields) expect(r.stderr).toContain(`  ${field || "(root)"}: `);
    }
  });
});

describe("every class of invalid spec (invalid-specs.ts), as a manifest file", () => {
  // YAML 1.1 as kubectl writes and reads it: strings such as `y` are quoted (unquoted, both read a boolean).
  const manifest = (spec: unknown, i: number) =>
    stringify(
      {
        apiVersion: "distillation.mokd.io/v1alpha1",
        kind: "DistillationJob",
        metadata: { name: `j${i}` },
        spec,
      },
      { version: "1.1" },
    );

  it("is refused by the manifest check and by one `trainer validate` of them all, naming each field", async () => {
    const file = write("invalid-specs", INVALID_SPECS.map(([, spec], i) => manifest(spec, i)).join("---\n"));
    const checked = checkManifestFile(readFileSync(file, "utf8"));
    INVALID_SPECS.forEach(([what, , field], i) => {
      expect(
        checked[i]!.errors.map((e) => e.field),
        what,
      ).toContain(field);
    });
    const r = await cli(["validate", file]);
    expect(r.code).toBe(ExitCode.BadConfig);
    for (const [what, , field] of INVALID_SPECS) expect(r.stderr, what).toContain(`  ${field}: `);
    INVALID_SPECS.forEach((_row, i) => expect(r.stderr).toContain(`[document ${i + 1}]`));
  });
});

describe("manifest checks", () => {
  it("names the field of a typo with a did-you-mean, at any depth", () => {
    const [checked] = checkManifestFile(
      "apiVersion: distillation.mokd.io/v1alpha1\nkind: DistillationJob\nmetadata: {name: a, lables: {}}\n" +
        "spec:\n  runtime: {volumes: {data: {claimname: d}}, affinity: {nodeAffinity: {any: 1}}}\n",
    );
    expect(checked!.errors).toEqual(
      expect.arrayContaining([
        { field: "metadata.lables", message: "unknown field (did you mean labels?)" },
        { field: "spec.runtime.volumes.data.claimname", message: "unknown field (did you mean claimName?)" },
      ]),
    );
    // affinity is a pass-through core/v1 Affinity: its fields are not ours to judge.
    expect(checked!.errors.map((e) => e.field).filter((f) => f.includes("affinity"))).toEqual([]);
    expect(didYouMean("epohcs", ["epochs", "batchSize"])).toBe("epochs");
    expect(didYouMean("xyz", ["epochs"])).toBeUndefined();
  });

  it("says when a file looks like a bare spec", () => {
    const [checked] = checkManifestFile("training: {epochs: 2}\n");
    expect(checked!.errors[0]!.message).toMatch(/looks like a bare spec/);
  });

  it("checks every document; `run` takes the only job, or the one --job names", () => {
    const doc = (name: string, epochs: number) =>
      `apiVersion: distillation.mokd.io/v1alpha1\nkind: DistillationJob\nmetadata: {name: ${name}}\n` +
      `spec: {training: {epochs: ${epochs}}}\n`;
    const two = write("two", `${doc("a", 2)}---\n${doc("b", 3)}`);
    expect(() => loadJobManifest(two, undefined, {})).toThrow(
      /holds 2 DistillationJobs \(a, b\).*--job NAME/,
    );
    expect(loadJobManifest(two, "b", {}).spec.training.epochs).toBe(3);
    expect(() => loadJobManifest(two, "c", {})).toThrow(/no DistillationJob named c/);
    const oneBad = write("one-bad", `${doc("a", 2)}---\n${doc("b", -1)}`);
    expect(() => loadJobManifest(oneBad, "a", {})).toThrow(/spec\.training\.epochs.*\[document 2\]/);
  });

  it("keeps the in-cluster path lenient: a spec from an older or newer operator only warns", () => {
    const mounted = { training: { epochs: 2, futureKnob: 1 }, runtime: { gpus: 7 } };
    const c = parseConfig(mounted, "job.json", {});
    expect(c.unknownFields).toEqual(["spec.training.futureKnob"]);
    expect(c.spec.training.epochs).toBe(2);
  });
});

describe("the CRD's CEL rules", () => {
  /** Every x-kubernetes-validations rule under the CRD's spec schema. */
  function rules(node: unknown): { rule: string }[] {
    if (node === null || typeof node !== "object") return [];
    return Object.entries(node).flatMap(([key, child]) =>
      key === "x-kubernetes-validations" ? (child as { rule: string }[]) : rules(child),
    );
  }

  it("each have a zod twin, but the immutability rules (which need the old object)", () => {
    const crd = parse(readFileSync(CRD_PATH, "utf8"), { version: "1.1" }) as {
      spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: unknown } } } }[] };
    };
    const all = rules(crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec).map((r) => r.rule);
    expect(all.length).toBeGreaterThan(20);
    const apiserverOnly = all.filter((r) => !celRulesWithZodTwin.has(r));
    expect(apiserverOnly.length).toBeGreaterThan(0);
    for (const rule of apiserverOnly) expect(rule).toContain("oldSelf");
  });
});
