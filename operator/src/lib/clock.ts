// Durations (leases, backoff, event series windows, rate limits) are measured on the monotonic clock: the wall
// clock can jump (NTP steps, a VM resumed, a manual change), which would expire a Lease early, or keep a backoff
// or an event series alive far too long. Wall time (Date) is only for timestamps written to the API.
export const monotonicNow = (): number => performance.now();
