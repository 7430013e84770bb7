/** Retry policy for retriable failures (network errors, timeouts, 5xx). */
export interface RetryPolicy {
  /** Attempts per delivery call, including the first (default 4). */
  attempts: number;
  /** Delay before the first retry (default 200 ms); doubles each retry. */
  baseDelayMs: number;
  /** Upper bound of one delay (default 10 000 ms). */
  maxDelayMs: number;
}

/** Defaults of {@link RetryPolicy}. */
export const DEFAULT_RETRY: RetryPolicy = Object.freeze({
  attempts: 4,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
});

/**
 * Delay before retry number `retry` (1-based): exponential backoff with "full jitter" —
 * uniformly random in [d/2, d] where d = min(max, base·2^(retry−1)) — so many agents that lost
 * the same gateway do not come back in lockstep. A server `Retry-After` raises the floor.
 */
export function backoffDelay(
  policy: RetryPolicy,
  retry: number,
  retryAfterMs?: number,
  random = Math.random,
): number {
  const d = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1));
  const jittered = d / 2 + random() * (d / 2);
  return Math.max(jittered, Math.min(retryAfterMs ?? 0, policy.maxDelayMs));
}
