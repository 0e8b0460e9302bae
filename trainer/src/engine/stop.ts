// SIGTERM handling: the signal only sets a flag; the training loop checks it at each step boundary, writes a
// checkpoint and exits with ExitCode.Terminated (143). The loop yields to the event loop between steps so the
// signal handler can run.

export class StopSignal {
  requested = false;
  private readonly onSignal = () => {
    // A second signal means "now": do not wait for the step boundary.
    if (this.requested) process.exit(143);
    this.requested = true;
  };

  /** Starts listening for SIGTERM (and SIGINT, so Ctrl-C also checkpoints). */
  listen(): this {
    process.on("SIGTERM", this.onSignal);
    process.on("SIGINT", this.onSignal);
    return this;
  }

  close(): void {
    process.off("SIGTERM", this.onSignal);
    process.off("SIGINT", this.onSignal);
  }
}

/** Thrown out of the training loop once a stop was requested and the checkpoint is written. */
export class StoppedError extends Error {
  readonly checkpoint: string | undefined;
  constructor(checkpoint: string | undefined) {
    super(checkpoint ? `stopped by signal; checkpoint ${checkpoint}` : "stopped by signal");
    this.name = "StoppedError";
    this.checkpoint = checkpoint;
  }
}

/** Lets pending signal handlers and HTTP scrapes run. */
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
