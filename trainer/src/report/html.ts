// placeholder, replaced below
import type { TrainerConfig } from "../config.ts";
import type { RunResult } from "../engine/run.ts";
export function renderReport(_result: RunResult, _config: TrainerConfig, _jsonl: string): string {
  return "<html></html>";
}
