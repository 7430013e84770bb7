import type { Redis } from 'ioredis';
import {
  generateNonce,
  type IssuedNonce,
  type NonceConsumeResult,
  NonceCounters,
  type NonceIssueOptions,
  type NonceStore,
  type NonceStoreOptions,
  type NonceStoreStats,
  type ResolvedNonceOptions,
  resolveNonceOptions,
} from './nonce-store.js';
import { storeCall } from './store-fault.js';

/**
 * Options of {@link RedisNonceStore}.
 * @public
 */
export interface RedisNonceStoreOptions extends NonceStoreOptions {
  /**
   * A connected ioredis client (the store does not close it unless `ownsClient`). Give it a
   * `commandTimeout` and `enableOfflineQueue: false`: then a frozen or unreachable Redis fails each
   * call within the timeout (as `StoreUnavailableError`) instead of queueing it until Redis returns.
   */
  client: Redis;
  /** Key prefix (default `geofence:nonce:`). */
  prefix?: string;
  /** Close the client in {@link RedisNonceStore.close} (default false). */
  ownsClient?: boolean;
  /** How long tombstones of spent or expired nonces are kept after expiry, in seconds (default: the TTL). */
  retainSeconds?: number;
}

// Value of a nonce key: "<state>|<expiresAtMs>|<pool>|<keyid>", state 0 = outstanding, 1 = spent.
// Owner queue: sorted set "<prefix>q:<keyid>:<pool>" of outstanding nonces scored by
// expiry * 4096 + (issue sequence mod 4096): expiry order, ties broken by issue order, so ZPOPMIN
// evicts the oldest. 1.8e12 ms * 4096 < 2^53, so scores stay exact doubles.
const ISSUE = `
local q = KEYS[1]
local nkey = KEYS[2]
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local prefix = ARGV[6]
redis.call('ZREMRANGEBYSCORE', q, '-inf', now * 4096 + 4095)
local n = redis.call('ZCARD', q)
local evicted = 0
if n >= max then
  local old = redis.call('ZPOPMIN', q, n - max + 1)
  for i = 1, #old, 2 do
    redis.call('DEL', prefix .. 'n:' .. old[i])
    evicted = evicted + 1
  end
end
local exp = now + ttl
redis.call('SET', nkey, '0|' .. string.format('%d', exp) .. '|' .. ARGV[5] .. '|' .. ARGV[4], 'PX', ttl + tonumber(ARGV[7]))
local seq = redis.call('INCR', q .. ':seq') % 4096
redis.call('PEXPIRE', q .. ':seq', ttl + 1000)
redis.call('ZADD', q, exp * 4096 + seq, ARGV[8])
redis.call('PEXPIRE', q, ttl + 1000)
return evicted
`;

const CONSUME = `
local v = redis.call('GET', KEYS[1])
if not v then return 'unknown' end
local state, exp, pool, keyid = string.match(v, '^(%d)|(%d+)|(%d)|(.*)$')
if keyid ~= ARGV[1] then return 'wrong_agent' end
if state == '1' then return 'reused' end
if tonumber(exp) <= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return 'expired'
end
redis.call('SET', KEYS[1], '1|' .. exp .. '|' .. pool .. '|' .. keyid, 'KEEPTTL')
redis.call('ZREM', ARGV[3] .. 'q:' .. keyid .. ':' .. pool, ARGV[4])
return 'ok'
`;

type Scripted = Redis & {
  geofenceNonceIssue(...args: Array<string | number>): Promise<number>;
  geofenceNonceConsume(...args: Array<string | number>): Promise<string>;
};

const RESULTS = new Set<string>(['ok', 'unknown', 'expired', 'reused', 'wrong_agent']);

/**
 * Redis nonce store, shared by collector replicas. Issue and consume are Lua scripts, so each is
 * atomic on the server: exactly one of any number of concurrent consumers of a nonce — from any
 * process or host — gets `ok`. Nonce keys carry a TTL, so Redis drops everything on its own.
 * Single Redis instance or primary (keys of one call are not co-located for Redis Cluster). Every
 * client error — refused, closed, timed out, an error reply — raises `StoreUnavailableError`
 * (`503 upstream`); a consume whose reply was lost is never reported as `ok`.
 * @public
 */
export class RedisNonceStore implements NonceStore {
  private readonly o: ResolvedNonceOptions;
  private readonly prefix: string;
  private readonly retainMs: number;
  private readonly client: Scripted;
  private readonly counters = new NonceCounters();

  /** @param options - client, prefix, TTL, cap, clock */
  constructor(private readonly options: RedisNonceStoreOptions) {
    this.o = resolveNonceOptions(options);
    this.prefix = options.prefix ?? 'geofence:nonce:';
    this.retainMs = (options.retainSeconds ?? this.o.ttlSeconds) * 1000;
    const c = options.client as Scripted;
    if (typeof c.geofenceNonceIssue !== 'function') {
      c.defineCommand('geofenceNonceIssue', { numberOfKeys: 2, lua: ISSUE });
      c.defineCommand('geofenceNonceConsume', { numberOfKeys: 1, lua: CONSUME });
    }
    this.client = c;
  }

  /** {@inheritDoc NonceStore.issue} */
  async issue(keyid: string, options?: NonceIssueOptions): Promise<IssuedNonce> {
    const now = this.o.now();
    const nonce = generateNonce();
    const pool = options?.authenticated ? 1 : 0;
    const evicted = await storeCall('nonce_store', () =>
      this.client.geofenceNonceIssue(
        `${this.prefix}q:${keyid}:${pool}`,
        `${this.prefix}n:${nonce}`,
        now,
        this.o.ttlMs,
        this.o.maxOutstanding,
        keyid,
        pool,
        this.prefix,
        this.retainMs,
        nonce,
      ),
    );
    this.counters.issued++;
    this.counters.evicted += Number(evicted);
    return { nonce, expiresAt: new Date(now + this.o.ttlMs), expiresIn: this.o.ttlSeconds };
  }

  /** {@inheritDoc NonceStore.consume} */
  async consume(keyid: string, nonce: string): Promise<NonceConsumeResult> {
    if (typeof nonce !== 'string' || typeof keyid !== 'string') return 'unknown';
    const raw = await storeCall('nonce_store', () =>
      this.client.geofenceNonceConsume(`${this.prefix}n:${nonce}`, keyid, this.o.now(), this.prefix, nonce),
    );
    if (!RESULTS.has(raw)) throw new Error('unexpected nonce script result');
    const r = raw as NonceConsumeResult;
    this.counters.count(r);
    return r;
  }

  /** {@inheritDoc NonceStore.claimRequest} */
  async claimRequest(keyid: string, requestId: string, until: Date): Promise<boolean> {
    // At least 1 ms: PX 0 is an error, and a mark that is already over claims nothing lasting.
    const ttl = Math.max(1, until.getTime() - this.o.now());
    // Through storeCall like every other command: Redis down is a 503, never an unexplained 500.
    const r = await storeCall('nonce_store', () =>
      this.client.set(`${this.prefix}r:${keyid}:${requestId}`, '1', 'PX', ttl, 'NX'),
    );
    return r === 'OK';
  }

  /** {@inheritDoc NonceStore.stats} */
  async stats(options?: { perAgent?: boolean }): Promise<NonceStoreStats> {
    return storeCall('nonce_store', () => this.scanStats(options));
  }

  private async scanStats(options?: { perAgent?: boolean }): Promise<NonceStoreStats> {
    const now = this.o.now();
    const per = new Map<string, number>();
    let cursor = '0';
    const qPrefix = `${this.prefix}q:`;
    do {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', `${qPrefix}*`, 'COUNT', 500);
      cursor = next;
      for (const key of keys) {
        if (key.endsWith(':seq')) continue;
        const n = await this.client.zcount(key, `(${now * 4096 + 4095}`, '+inf');
        if (n === 0) continue;
        const keyid = key.slice(qPrefix.length, key.lastIndexOf(':'));
        per.set(keyid, (per.get(keyid) ?? 0) + n);
      }
    } while (cursor !== '0');
    return this.counters.stats(per, options?.perAgent);
  }

  /** {@inheritDoc NonceStore.cleanup} */
  async cleanup(): Promise<number> {
    return storeCall('nonce_store', () => this.scanCleanup());
  }

  private async scanCleanup(): Promise<number> {
    // Redis expires nonce keys itself; here only drop expired members from owner queues.
    const now = this.o.now();
    let removed = 0;
    let cursor = '0';
    do {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', `${this.prefix}q:*`, 'COUNT', 500);
      cursor = next;
      for (const key of keys) {
        if (!key.endsWith(':seq'))
          removed += await this.client.zremrangebyscore(key, '-inf', now * 4096 + 4095);
      }
    } while (cursor !== '0');
    return removed;
  }

  /** {@inheritDoc NonceStore.close} */
  async close(): Promise<void> {
    if (!this.options.ownsClient) return;
    try {
      await this.client.quit();
    } catch {
      // Redis down or frozen: QUIT cannot be delivered; drop the connection (and its reconnects).
      this.client.disconnect();
    }
  }
}
