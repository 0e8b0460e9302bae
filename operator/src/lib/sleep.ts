// The operator's one sleep (client-go's `wait` with a context): every wait is abortable, on the global timers so
// vitest's fake timers drive it.

/** Resolves after `ms`; rejects with the signal's reason as soon as `signal` aborts (a request given up). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });
}

/**
 * Resolves after `ms`, or as soon as `signal` aborts; never rejects, so the caller's loop checks its own exit
 * (informer backoff, leader-election retries).
 */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, signal).catch(() => undefined);
}
