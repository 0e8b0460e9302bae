// The operator's one clock (client-go's `clock.PassiveClock`). Durations (leases, backoff, event series windows,
// rate limits, cache TTLs) are measured on the monotonic clock: the wall clock can jump (NTP steps, a VM resumed,
// a manual change), which would expire a Lease early, or keep a backoff or an event series alive far too long.
// Wall time is only for timestamps written to the API and for HTTP dates. Both read the global clock at each
// call, so vitest's fake timers move them; code that tests drive to a given time takes a `now` option instead.

/** Milliseconds on the monotonic clock, for durations only (its origin is arbitrary). */
export const monotonicNow = (): number => performance.now();

/** The wall clock, for timestamps the API stores and HTTP dates. */
export const wallNow = (): Date => new Date();
