/**
 * Token buckets in Redis, shared by every replica and worker (`RATE_LIMIT_STORE=redis`): N
 * collectors behind a load balancer give a client one budget, not N. Each decision is one Lua
 * script, so refill, check and take are atomic across processes, and the refill uses the Redis
 * server's clock, so replicas with skewed clocks still agree. A bucket key expires once it would be
 * full again (a missing key is a full bucket), which bounds Redis memory by the active clients.
 *
 * Fail closed: when Redis cannot answer, a decision raises 503 `upstream` with Retry-After (never
 * an unlimited pass, never a 500).
 */
import { GeofenceError, STORE_RETRY_AFTER_SECONDS } from '@geofence/verifier';
import type { Redis } from 'ioredis';
import type { RateDecision, TokenBuckets } from './rate-limit.js';

// KEYS[1] bucket; ARGV rate per second, burst, '1' take or '0' peek. Returns {allowed, tokens}:
// tokens as a string because Redis truncates Lua numbers in replies to integers.
const BUCKET = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = burst
if b[1] then
  tokens = math.min(burst, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * rate / 1000)
end
local allowed = 0
if tokens >= 1 then allowed = 1 end
if ARGV[3] == '1' then
  if allowed == 1 then tokens = tokens - 1 end
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
end
return {allowed, tostring(tokens)}
`;

interface BucketClient extends Redis {
  geofenceRateBucket(key: string, rate: number, burst: number, take: '0' | '1'): Promise<[number, string]>;
}

/** Options of {@link RedisTokenBuckets}. */
export interface RedisTokenBucketsOptions {
  /** A connected client without offline queue and with a command timeout (see runtime.ts). */
  client: Redis;
  ratePerSecond: number;
  burst: number;
  /** Key prefix (default `geofence:rate:`). */
  prefix?: string;
}

/** The outage answer of a rate limit decision. */
export function rateLimitStoreUnavailable(cause: unknown): GeofenceError {
  return new GeofenceError('upstream', 'Rate limit store unavailable', {
    status: 503,
    retryAfter: STORE_RETRY_AFTER_SECONDS,
    details: { dependency: 'rate_limit_store' },
    cause,
  });
}

/** One token bucket per key in Redis, refilled at `ratePerSecond` up to `burst`. */
export class RedisTokenBuckets implements TokenBuckets {
  private readonly client: BucketClient;
  private readonly prefix: string;

  constructor(private readonly o: RedisTokenBucketsOptions) {
    const c = o.client as BucketClient;
    if (typeof c.geofenceRateBucket !== 'function') {
      c.defineCommand('geofenceRateBucket', { numberOfKeys: 1, lua: BUCKET });
    }
    this.client = c;
    this.prefix = o.prefix ?? 'geofence:rate:';
  }

  /** Takes one token for `key`; rejects with 503 `upstream` when Redis cannot answer. */
  take(key: string): Promise<RateDecision> {
    return this.decide(key, '1');
  }

  /** Whether `key` has a token now, without taking it. */
  peek(key: string): Promise<RateDecision> {
    return this.decide(key, '0');
  }

  /** Keys are counted by Redis (bounded by expiry), not by this process. */
  get size(): undefined {
    return undefined;
  }

  private async decide(key: string, take: '0' | '1'): Promise<RateDecision> {
    let reply: [number, string];
    try {
      reply = await this.client.geofenceRateBucket(
        `${this.prefix}${key}`,
        this.o.ratePerSecond,
        this.o.burst,
        take,
      );
    } catch (err) {
      throw rateLimitStoreUnavailable(err);
    }
    const tokens = Number(reply[1]);
    if (reply[0] === 1) return { allowed: true, retryAfterSeconds: 0, remaining: Math.floor(tokens) };
    return {
      allowed: false,
      retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / this.o.ratePerSecond)),
      remaining: 0,
    };
  }
}
