// Progress display of `run`: a one-line bar rewritten in place on a TTY, or a plain line every few seconds (and at
// each epoch) when the output is a file or pipe.
import type { EpochRecord, StepRecord } from "../contracts.ts";
import type { StageHooks } from "../engine/teacher-stage.ts";

const BAR_WIDTH = 20;
const TTY_INTERVAL_MS = 100;
const PLAIN_INTERVAL_MS = 10_000;

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const fmt = (r: Record<string, number>) =>
  Object.entries(r)
    .map(([k, v]) => `${k} ${v.toFixed(3)}`)
    .join(" ");

export class ProgressLine implements StageHooks {
  private readonly out: NodeJS.WriteStream;
  private readonly tty: boolean;
  private stage = "";
  private epochs = 0;
  private stepsPerEpoch = 0;
  private lastDraw = 0;
  private lastEpoch: EpochRecord | undefined;
  private measured = 0;
  private conflicts = 0;
  private drawn = false;

  constructor(out: NodeJS.WriteStream = process.stderr, tty = Boolean(out.isTTY)) {
    this.out = out;
    this.tty = tty;
  }

  onStageStart(stage: "teacher" | "student", epochs: number, stepsPerEpoch: number): void {
    this.clear();
    Object.assign(this, { stage, epochs, stepsPerEpoch, lastEpoch: undefined, measured: 0, conflicts: 0 });
    this.out.write(`${stage}: ${epochs} epochs x ${stepsPerEpoch} steps\n`);
  }

  onStep(record: StepRecord, _batchSize: number, stepInEpoch: number): void {
    if (record.conflict !== undefined) {
      this.measured++;
      if (record.conflict) this.conflicts++;
    }
    const now = Date.now();
    if (now - this.lastDraw < (this.tty ? TTY_INTERVAL_MS : PLAIN_INTERVAL_MS)) return;
    this.lastDraw = now;
    const line = this.line(record, stepInEpoch);
    if (this.tty) {
      this.out.write(`\r\x1b[2K${line.slice(0, (this.out.columns ?? 160) - 1)}`);
      this.drawn = true;
    } else {
      this.out.write(line + "\n");
    }
  }

  onEpoch(record: EpochRecord): void {
    this.lastEpoch = record;
    this.clear();
    const conflict = record.stage === "student" ? ` conflict ${pct(record.conflictRate)}` : "";
    this.out.write(
      `${record.stage} epoch ${record.epoch}/${record.epochs}: train ${pct(record.trainAccuracy)} ` +
        `val ${pct(record.validationAccuracy)} ${fmt(record.losses)}${conflict} ` +
        `${Math.round(record.samplesPerSecond)} samples/s\n`,
    );
  }

  /** Erases the bar so that a log line or the final table starts on a clean line. */
  clear(): void {
    if (this.tty && this.drawn) this.out.write("\r\x1b[2K");
    this.drawn = false;
  }

  private line(record: StepRecord, stepInEpoch: number): string {
    const done = Math.min(1, stepInEpoch / Math.max(1, this.stepsPerEpoch));
    const filled = Math.round(done * BAR_WIDTH);
    const bar = this.tty ? `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ` : "";
    const weights = this.stage === "student" ? ` | w ${fmt(record.weights)}` : "";
    const val = this.lastEpoch ? ` | val ${pct(this.lastEpoch.validationAccuracy)}` : "";
    const conflict = this.measured ? ` | conflict ${pct(this.conflicts / this.measured)}` : "";
    return (
      `${this.stage} ${record.epoch}/${this.epochs} ${bar}${stepInEpoch}/${this.stepsPerEpoch} ` +
      `| ${fmt(record.losses)}${weights}${val}${conflict}`
    );
  }
}
