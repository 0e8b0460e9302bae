// Moved to api/stats.ts (the study status and report compute the same intervals); re-exported for the benches.
export * from "../../api/stats.ts";
