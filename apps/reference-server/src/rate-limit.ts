/**
 * Token-bucket rate limiting keyed by client IP and by claimed keyid: the bucket interface, the
 * in-process buckets (`RATE_LIMIT_STORE=memory`; the Redis ones are in rate-limit-redis.ts), and the
 * keyid extraction. The in-process table is bounded (least recently used keys are dropped first) so
 * a flood of distinct keys cannot exhaust memory.
 */
import { parseSignatureInput } from '@geofence/http-sig';

/** Result of {@link RateLimiter.take}. */
export interface RateDecision {
  allowed: boolean;
  /** Whole seconds until one token is available again (for `Retry-After`). */
  retryAfterSeconds: number;
  remaining: number;
}

/**
 * Token buckets by key: in this process ({@link RateLimiter}) or shared in Redis. A shared store
 * answers asynchronously and may fail (503 `upstream`).
 */
export interface TokenBuckets {
  /** Takes one token for `key` when there is one. */
  take(key: string): RateDecision | Promise<RateDecision>;
  /** Whether `key` has a token now, without taking it. */
  peek(key: string): RateDecision | Promise<RateDecision>;
  /** Number of tracked keys, when this process knows it. */
  readonly size: number | undefined;
}

interface Bucket {
  tokens: number;
  updated: number;
}

/** One token bucket per key in this process, refilled at `ratePerSecond` up to `burst`. */
export class RateLimiter implements TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token for `key`. */
  take(key: string): RateDecision {
    const t = this.now();
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-insert below: Map order doubles as LRU order
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.updated) / 1000) * this.ratePerSecond);
      b.updated = t;
    } else {
      b = { tokens: this.burst, updated: t };
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
    }
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { allowed: true, retryAfterSeconds: 0, remaining: Math.floor(b.tokens) };
    }
    return {
      allowed: false,
      retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.ratePerSecond)),
      remaining: 0,
    };
  }

  /** Whether `key` has a token now, without taking it. */
  peek(key: string): RateDecision {
    const b = this.buckets.get(key);
    if (!b) return { allowed: true, retryAfterSeconds: 0, remaining: this.burst };
    const tokens = Math.min(this.burst, b.tokens + ((this.now() - b.updated) / 1000) * this.ratePerSecond);
    if (tokens >= 1) return { allowed: true, retryAfterSeconds: 0, remaining: Math.floor(tokens) };
    return {
      allowed: false,
      retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / this.ratePerSecond)),
      remaining: 0,
    };
  }

  /** Number of tracked keys (exposed on `/gateway/rate-limits`). */
  get size(): number {
    return this.buckets.size;
  }
}

/** Extracts the claimed keyid of a request for rate limiting only (never trusted for anything else). */
export function claimedKeyid(query: unknown, signatureInput: string | undefined): string | undefined {
  if (query && typeof query === 'object') {
    const v = (query as Record<string, unknown>).public_key_hash;
    if (typeof v === 'string' && /^[0-9a-f]{64}$/.test(v)) return v;
  }
  if (!signatureInput) return undefined;
  try {
    const keyid = parseSignatureInput(signatureInput)[0]?.keyid;
    return keyid !== undefined && /^[0-9a-f]{64}$/.test(keyid) ? keyid : undefined;
  } catch {
    return undefined; // the verifier answers a malformed header; the limiter just has no keyid
  }
}
