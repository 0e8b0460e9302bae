export * from "./trainer-spec.ts";
export * from "./distillationjob.ts";
export * from "./exit-codes.ts";
export * from "./parse.ts";
export * from "./k8s-formats.ts";
export * from "./progress.ts";
export * from "./storage.ts";
