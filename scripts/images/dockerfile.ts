// A minimal Dockerfile parser and .dockerignore matcher: enough to find an image's inputs (its COPY sources from
// the build context) for the build cache key, and for the static checks in test/unit/packaging.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

/** Instructions with line continuations joined and comments dropped; `stage` counts FROMs (0-based). */
export function parseDockerfile(text: string): Instruction[] {
  const joined = text.replace(/\\\n/g, " ");
  const out: Instruction[] = [];
  let stage = -1;
  for (const line of joined.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) continue;
    const [keyword = "", ...rest] = trimmed.split(/\s+/);
    if (keyword.toUpperCase() === "FROM") stage++;
    out.push({ keyword: keyword.toUpperCase(), args: rest.join(" "), stage });
  }
  return out;
}

/** Sources of COPY/ADD instructions that read the build context (not another stage). */
export function contextCopySources(instructions: Instruction[]): string[] {
  return instructions
    .filter((i) => (i.keyword === "COPY" || i.keyword === "ADD") && !/--from=/.test(i.args))
    .flatMap((i) => {
      const words = i.args.split(/\s+/).filter((w) => !w.startsWith("--"));
      return words.slice(0, -1);
    });
}

/** Sources of `RUN --mount=type=bind,source=...` that read the build context (no `from=`). */
export function contextMountSources(instructions: Instruction[]): string[] {
  return instructions
    .filter((i) => i.keyword === "RUN")
    .flatMap((i) => [...i.args.matchAll(/--mount=(\S+)/g)].map((m) => m[1]!))
    .map((spec) => Object.fromEntries(spec.split(",").map((kv) => kv.split("=", 2) as [string, string])))
    .filter((o) => o.type === "bind" && !o.from && (o.source ?? o.src))
    .map((o) => (o.source ?? o.src)!);
}

/** Images named by FROM that are not earlier stages of the same file (ARG defaults substituted). */
export function baseImages(instructions: Instruction[]): string[] {
  const args = new Map<string, string>();
  const stages = new Set<string>();
  const out = new Set<string>();
  for (const i of instructions) {
    if (i.keyword === "ARG" && i.stage === -1) {
      const [name = "", value = ""] = i.args.split("=", 2);
      args.set(name, value.replace(/^"|"$/g, ""));
    }
    if (i.keyword !== "FROM") continue;
    const words = i.args.split(/\s+/).filter((w) => !w.startsWith("--"));
    const image = (words[0] ?? "").replace(/\$\{?(\w+)\}?/g, (_, n: string) => args.get(n) ?? "");
    if (!stages.has(image)) out.add(image);
    if (words[1]?.toUpperCase() === "AS" && words[2]) stages.add(words[2]);
  }
  return [...out];
}

export function dockerignorePatterns(root: string): string[] {
  return readFileSync(join(root, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}

/** Enough of .dockerignore's matching for our patterns: `name`, `**\/name`, `*.ext`, `dir/name`. */
export function ignored(path: string, patterns: string[]): boolean {
  const segments = path.split("/");
  return patterns.some((p) => {
    if (p.startsWith("**/")) return segments.includes(p.slice(3));
    if (p.startsWith("*.")) return path.endsWith(p.slice(1));
    return segments[0] === p || path === p || path.startsWith(`${p}/`);
  });
}
