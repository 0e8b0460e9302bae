// A child a builder can tell is invalid before sending it: the controller treats it as the apiserver's own
// refusal (controller/refusal.ts), so the job ends Failed/InvalidSpec instead of retrying.

/** Thrown by a builder for a child it can tell is invalid before sending it (e.g. a ConfigMap over 1 MiB). */
export class SpecRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SpecRefusal";
  }
}
