// The commands the newcomer's docs give (README, quick start, trainer.md) exist as written, cheaply: npm scripts
// are in package.json, files and paths exist, the trainer's subcommands and flags are in its --help, native-tf's
// flags in its script, helm --set keys in values.yaml, and no `node file.ts` that a system Node 20 cannot run.
// Running them for real is what `npm test` (the job, the chart, the images) and the cluster tests do.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const ROOT = join(import.meta.dirname, "../../..");
const DOCS = ["README.md", "docs/quickstart.md", "docs/trainer.md"];
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const scripts = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts;

/** Shell lines of the sh/bash blocks (continuations joined, comments dropped) and inline `npm`/`npx` spans. */
function commands(doc: string): string[] {
  const text = read(doc);
  const blocks = [...text.matchAll(/^```(?:sh|bash)\n([\s\S]*?)^```/gm)].flatMap((m) =>
    m[1]!
      .replace(/\\\n\s*/g, " ")
      .split("\n")
      .map((l) => l.replace(/\s+#.*$/, "").trim())
      .filter(Boolean),
  );
  const inline = [...text.matchAll(/`((?:npm run|npx) [^`]+)`/g)].map((m) => m[1]!);
  return [...blocks, ...inline].flatMap((line) => line.split(/\s*(?:&&|;)\s*/)).filter(Boolean);
}

const ALL = DOCS.flatMap((doc) => commands(doc).map((command) => [doc, command] as const));

let trainerHelp: string | undefined;
function trainerUsage(): string {
  trainerHelp ??= spawnSync(process.execPath, ["trainer/src/cli.ts", "--help"], {
    cwd: ROOT,
    encoding: "utf8",
  }).stdout;
  return trainerHelp;
}

/** Whether `--set a.b[0].c=v` names a value the chart has (free-form maps and lists end the walk). */
function chartHasValue(assignment: string): boolean {
  let node: unknown = parse(read("charts/mokd-operator/values.yaml"));
  const path = assignment.split("=")[0]!.replace(/^'|'$/g, "");
  for (const part of path.split(/(?<!\\)\./).map((p) => p.replace(/\[\d+\]$/, ""))) {
    if (node === null || typeof node !== "object" || Array.isArray(node)) return true;
    const map = node as Record<string, unknown>;
    if (Object.keys(map).length === 0) return true;
    if (!(part in map)) return false;
    node = map[part];
  }
  return true;
}

/** Problems of one command; [] when it exists as written. */
function problems(command: string): string[] {
  const words = command.replace(/^eval "\$\(|\)"$/g, "").split(/\s+/);
  const out: string[] = [];
  const pathLike = words.filter((w) => /^(examples|charts|scripts|trainer|operator|docs|crds|api)\//.test(w));
  for (const p of pathLike) if (!existsSync(join(ROOT, p.replace(/[,'"]$/, "")))) out.push(`no file ${p}`);
  if (words[0] === "node" && /\.ts$/.test(words[1] ?? ""))
    out.push("plain `node` on a .ts file: use npx node");
  if (words[0] === "npm" && words[1] === "run") {
    const rest = words.slice(2).filter((w) => w !== "-s");
    const script = rest[0]!;
    if (script === "…") return out;
    if (!(script in scripts)) out.push(`no npm script ${script}`);
    const args = rest.slice(2);
    const flags = args.filter((a) => a.startsWith("--")).map((a) => a.split("=")[0]!);
    if (script === "trainer" || script === "job") {
      const usage = trainerUsage();
      const sub = script === "job" ? "run" : args[0];
      if (sub && !sub.startsWith("-") && !usage.includes(`trainer ${sub}`))
        out.push(`no trainer command ${sub}`);
      for (const f of flags) if (!usage.includes(f)) out.push(`trainer --help has no ${f}`);
    }
    if (script === "native-tf")
      for (const f of flags)
        if (!read("scripts/native-tf/install.ts").includes(`"${f}"`)) out.push(`no ${f}`);
  }
  if (words[0] === "helm")
    words.forEach((w, i) => {
      if (words[i - 1] === "--set")
        for (const a of w.replace(/^'|'$/g, "").split(/,(?![^{]*})/))
          if (!chartHasValue(a)) out.push(`no chart value ${a.split("=")[0]}`);
    });
  if (words[0] === "docker" && words.includes("-f")) {
    const file = words[words.indexOf("-f") + 1]!;
    if (!existsSync(join(ROOT, file))) out.push(`no file ${file}`);
  }
  return out;
}

describe("the commands in the docs", () => {
  it("finds commands in each doc", () => {
    for (const doc of DOCS) expect(commands(doc).length, doc).toBeGreaterThan(2);
  });

  it.each(ALL)("%s: %s", (_doc, command) => {
    expect(problems(command)).toEqual([]);
  });

  it("state the Kubernetes minimum the chart enforces, which the CRD's CEL format library needs", () => {
    const chart = parse(read("charts/mokd-operator/Chart.yaml")) as { kubeVersion: string };
    const minimum = /^>=(\d+\.\d+)\.0-0$/.exec(chart.kubeVersion)?.[1];
    expect(minimum).toBe("1.31");
    expect(read("docs/quickstart.md")).toContain(`Kubernetes cluster (${minimum} or newer`);
    expect(read("api/v1alpha1/k8s-formats.ts")).toContain(`Kubernetes >= ${minimum}`);
  });

  it("would catch a missing script, file, flag or chart value", () => {
    expect(problems("npm run nope")).toEqual(["no npm script nope"]);
    expect(problems("kubectl apply -f examples/nope.yaml")).toEqual(["no file examples/nope.yaml"]);
    expect(problems("npm run trainer -- validate x --bogus")).toEqual(["trainer --help has no --bogus"]);
    expect(problems("helm install m charts/mokd-operator --set metrics.trainerPort=1")).toEqual([
      "no chart value metrics.trainerPort",
    ]);
    expect(problems("node trainer/src/cli.ts")).toEqual(["plain `node` on a .ts file: use npx node"]);
  });
});
