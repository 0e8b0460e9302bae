// The study commands as a pod runs them: the CLI in a child process, config from MOKD_CONFIG (the operator's
// ConfigMap format), index from JOB_COMPLETION_INDEX, exit codes and termination messages of the contract.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  DistillationStudy,
  ExitCode,
  FailureMessage,
  Result,
  studyTrainerConfig,
} from "../../../../api/v1alpha1/index.ts";
import { tinyJob, writeTinyIdx } from "../../../fixtures/tiny-run.ts";

function cli(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ["trainer/src/cli.ts", ...args], {
      env: { ...process.env, MOKD_BACKEND: "cpu", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("trainer study (a study pod's commands)", () => {
  it("runs the teacher pass and a variant by index, with the contract's exit codes and messages", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mokd-study-cli-"));
    const template = tinyJob(writeTinyIdx(), dir, { epochs: 1 }).spec;
    const study = DistillationStudy.parse({
      apiVersion: "distillation.mokd.io/v1alpha1",
      kind: "DistillationStudy",
      metadata: { name: "cli-study", namespace: "tests" },
      spec: {
        template: { ...template, runtime: { volumes: { output: { claimName: "shared" } } } },
        variants: { automatic: ["mokd"], fixedAlphas: [], studentAlone: false },
        seeds: [1],
      },
    });
    const config = join(dir, "job.json");
    writeFileSync(config, JSON.stringify(studyTrainerConfig(study)));
    const log = join(dir, "termination-log");
    const env = { MOKD_CONFIG: config, MOKD_TERMINATION_LOG: log, MOKD_STUDY: "cli-study" };
    const message = () => JSON.parse(readFileSync(log, "utf8")) as unknown;

    expect((await cli(["study", "bogus"], env)).code).toBe(ExitCode.BadConfig);

    // A variant pod outside an Indexed Job does not know which run it is.
    expect((await cli(["study", "variant"], env)).code).toBe(ExitCode.BadConfig);
    expect(FailureMessage.parse(message()).error).toContain("JOB_COMPLETION_INDEX");

    // Before the teacher pass: not found, naming where it looked.
    expect((await cli(["study", "variant"], { ...env, JOB_COMPLETION_INDEX: "0" })).code).toBe(
      ExitCode.StorageNotFound,
    );
    expect(FailureMessage.parse(message())).toMatchObject({
      reason: "StorageNotFound",
      error: expect.stringContaining(join(dir, "output", "teacher", "shard-0.json")),
    });

    expect((await cli(["study", "teacher"], { ...env, JOB_COMPLETION_INDEX: "0" })).code).toBe(0);
    expect(Result.parse(message())).toMatchObject({ teacherSource: "trained" });
    expect((await cli(["study", "variant"], { ...env, JOB_COMPLETION_INDEX: "0" })).code).toBe(0);
    expect(Result.parse(message())).toMatchObject({ variant: "mokd-s1", teacherSource: "shared" });
  }, 180_000);
});
