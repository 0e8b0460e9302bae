// A minimal Dockerfile parser: enough to check COPY sources, install commands, USER and ENTRYPOINT.

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
