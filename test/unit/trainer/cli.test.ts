import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ExitCode } from "../../../api/v1alpha1/index.ts";
import { tinyJob, writeJob, writeTinyIdx } from "../../fixtures/tiny-run.ts";

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as the container/README would; `onStderr` may act on output (e.g. send SIGTERM). */
function cli(
  args: string[],
  env: Record<string, string> = {},
  onStderr?: (text: string, kill: () => void) => void,
) {
  return new Promise<Exit>((resolve) => {
    const child = spawn(process.execPath, ["trainer/src/cli.ts", ...args], {
      env: { ...process.env, MOKD_BACKEND: "cpu", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr + stdout, () => child.kill("SIGTERM"));
    });
    child.stdout.on("data", () => onStderr?.(stderr + stdout, () => child.kill("SIGTERM")));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const tmp = (p: string) => mkdtempSync(join(tmpdir(), p));

describe("trainer CLI exit codes", () => {
  it("validate: 0 for a good manifest, 2 naming every bad field", async () => {
    const dir = tmp("mokd-cli-");
    const good = writeJob(dir, tinyJob("/data", dir));
    expect((await cli(["validate", good])).code).toBe(ExitCode.Success);
    const job = tinyJob("/data", dir);
    const bad = writeJob(
      dir,
      { ...job, spec: { ...job.spec, training: { epochs: 0 }, strategy: { name: "nope" } } },
      "bad.yaml",
    );
    const r = await cli(["validate", bad]);
    expect(r.code).toBe(ExitCode.BadConfig);
    expect(r.stderr).toContain("spec.training.epochs");
    expect(r.stderr).toContain("spec.strategy.name");
  });

  it("validate: refuses a field it does not know, naming it, as `kubectl apply` does", async () => {
    // The lenient path (a spec mounted by an older or newer operator only warns) is `train`'s: config.test.ts.
    const dir = tmp("mokd-cli-");
    const job = tinyJob("/data", dir);
    const newer = { ...job, spec: { ...job.spec, training: { ...job.spec.training, futureKnob: 3 } } };
    const r = await cli(["validate", writeJob(dir, newer)]);
    expect(r.code).toBe(ExitCode.BadConfig);
    expect(r.stderr).toContain("spec.training.futureKnob: unknown field");
  });

  it("run: 2 for a bad config, 3 for corrupt data", async () => {
    const dir = tmp("mokd-cli-");
    expect((await cli(["run", join(dir, "missing.yaml")])).code).toBe(ExitCode.BadConfig);
    const data = writeTinyIdx();
    writeFileSync(join(data, "train-labels-idx1-ubyte"), Buffer.from([0, 0, 8, 2, 0, 0]));
    const r = await cli(["run", writeJob(dir, tinyJob(data, dir)), "--no-progress"]);
    expect(r.code).toBe(ExitCode.BadData);
    expect(r.stderr).toMatch(/train-labels-idx1-ubyte/);
  });

  it("train: 3 (BadData) for an ONNX teacher that does not fit the data, naming the file and what was expected", async () => {
    const dir = tmp("mokd-cli-");
    const job = tinyJob(writeTinyIdx(), dir);
    // The fixture takes [N, 1, 8, 8] with 3 classes; the tiny data is 8x8x1 with 4 classes.
    const teacher = join(import.meta.dirname, "../../../trainer/test-fixtures/onnx/tiny-cnn-nhwc-b2.onnx");
    const spec = { ...job.spec, teacher: { model: teacher, inputLayout: "nchw" } };
    const config = writeJob(dir, spec, "spec.yaml");
    const termination = join(dir, "termination-log");
    const r = await cli(["train"], { MOKD_CONFIG: config, MOKD_TERMINATION_LOG: termination });
    expect(r.code).toBe(ExitCode.BadData);
    const message = JSON.parse(readFileSync(termination, "utf8")) as { error: string; reason: string };
    expect(message.reason).toBe("BadData");
    expect(message.error).toBe(
      `${teacher}: input "image" has shape [2, 8, 8, 1]; the data is 8x8x1, so expected [N, 1, 8, 8] (NCHW)`,
    );
  });

  it("train: 0 on a tiny run with config from MOKD_CONFIG; writes the termination message", async () => {
    const dir = tmp("mokd-cli-");
    const config = writeJob(dir, tinyJob(writeTinyIdx(), dir).spec, "spec.yaml");
    const termination = join(dir, "termination-log");
    const r = await cli(["train"], {
      MOKD_CONFIG: config,
      MOKD_TERMINATION_LOG: termination,
      MOKD_JOB_NAME: "j",
    });
    expect(r.code).toBe(ExitCode.Success);
    // JSON logs in the container.
    expect(
      r.stdout
        .trim()
        .split("\n")
        .every((l) => JSON.parse(l).message !== undefined),
    ).toBe(true);
    expect(JSON.parse(readFileSync(termination, "utf8")).strategy).toBe("mokd");
    const report = readFileSync(join(dir, "output", "report.html"), "utf8");
    // Six charts since the step shares and the norm ratios joined the weights, cosines, losses and accuracy.
    expect(report.match(/<svg /g)).toHaveLength(6);
    expect(report).toContain("Gradient cosine");
    expect(report).toContain("Step share");
  });

  it("train: a failure writes {error, reason} to the termination log (bad config, bad data, internal)", async () => {
    const dir = tmp("mokd-cli-");
    const data = writeTinyIdx();
    const spec = tinyJob(data, dir).spec;
    const badData = writeTinyIdx();
    writeFileSync(join(badData, "train-labels-idx1-ubyte"), Buffer.from([0, 0, 8, 2, 0, 0]));
    // An output path below a regular file: mkdir fails with ENOTDIR, an error no category claims.
    writeFileSync(join(dir, "a-file"), "");
    const cases = [
      {
        reason: "BadConfig",
        code: ExitCode.BadConfig,
        spec: { ...spec, training: { epochs: 0 } },
        text: /spec\.training\.epochs/,
      },
      {
        reason: "BadData",
        code: ExitCode.BadData,
        spec: { ...spec, data: { path: badData } },
        text: /train-labels-idx1-ubyte/,
      },
      {
        reason: "InternalError",
        code: ExitCode.InternalError,
        spec: { ...spec, output: { ...spec.output, path: join(dir, "a-file", "output") } },
        text: /internal error: .*ENOTDIR/,
      },
    ];
    for (const c of cases) {
      const termination = join(dir, `termination-${c.reason}`);
      const config = writeJob(dir, c.spec, `${c.reason}.yaml`);
      const r = await cli(["train"], { MOKD_CONFIG: config, MOKD_TERMINATION_LOG: termination });
      expect(r.code, r.stdout).toBe(c.code);
      const text = readFileSync(termination, "utf8");
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(4096);
      const message = JSON.parse(text) as { error: string; reason: string };
      expect(Object.keys(message).sort()).toEqual(["error", "reason"]);
      expect(message.reason).toBe(c.reason);
      expect(message.error).toMatch(c.text);
    }
  });

  it("run: SIGTERM mid-way exits 143 after a checkpoint; rerunning resumes and finishes with 0", async () => {
    const dir = tmp("mokd-cli-");
    const job = writeJob(dir, tinyJob(writeTinyIdx(1024), dir, { epochs: 3 }));
    let sent = false;
    const first = await cli(["run", job, "--no-progress"], {}, (text, kill) => {
      if (!sent && text.includes("student:")) {
        sent = true;
        kill();
      }
    });
    expect(first.code).toBe(ExitCode.Terminated);
    expect(first.stderr).toMatch(/checkpoint .*ckpt-/);
    const second = await cli(["run", job, "--no-progress"]);
    expect(second.code).toBe(ExitCode.Success);
    expect(second.stderr).toMatch(/resumed from/);
    // Said loudly, with the way out; the time of this run apart from the total.
    expect(second.stderr).toMatch(/RESUMING: .* checkpoint\(s\) of an earlier run.*--fresh/);
    expect(second.stdout).toMatch(/time: [\d.]+ s this run \(resumed; [\d.]+ s with the earlier attempts\)/);
    const summary = JSON.parse(readFileSync(join(dir, "output", "summary.json"), "utf8"));
    expect(summary.steps).toBe(3 * Math.ceil((1024 * 0.875) / 32));
    expect(second.stdout).toMatch(/teacher \(trained\)/);
    const fresh = await cli(["run", job, "--no-progress", "--fresh"]);
    expect(fresh.code).toBe(ExitCode.Success);
    expect(fresh.stderr).toMatch(/--fresh: removed \d+ checkpoint\(s\)/);
    expect(fresh.stderr).not.toMatch(/resumed from/);
  });
});
