// The JSONL log of step, epoch and evaluation records (<output>/metrics.jsonl): one JSON object per line, appended, so a
// resumed run continues the same file.
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { EpochRecord, EvaluationRecord, StepRecord } from "../contracts.ts";

export class JsonlWriter {
  readonly path: string;
  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
  }

  write(record: StepRecord | EpochRecord | EvaluationRecord | Record<string, unknown>): void {
    appendFileSync(this.path, JSON.stringify(record) + "\n");
  }
}
