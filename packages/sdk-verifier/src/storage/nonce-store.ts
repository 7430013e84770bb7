/**
 * Nonce store interface (SPEC §6.1) and the shared helpers of its implementations.
 */
import { randomFillSync } from 'node:crypto';
import { DEFAULT_NONCE_MAX_OUTSTANDING, DEFAULT_NONCE_TTL_SECONDS } from '@geofence/protocol';

/**
 * Outcome of {@link NonceStore.consume}. Only `ok` means the nonce was valid and is now spent.
 * `wrong_agent` leaves the nonce untouched: nobody can burn another agent's nonce.
 * @public
 */
export type NonceConsumeResult = 'ok' | 'unknown' | 'expired' | 'reused' | 'wrong_agent';

/**
 * A freshly issued nonce.
 * @public
 */
export interface IssuedNonce {
  /** 32 random bytes, base64url (43 characters). */
  nonce: string;
  /** When the nonce stops being accepted. */
  expiresAt: Date;
  /** Lifetime in seconds. */
  expiresIn: number;
}

/**
 * Options of {@link NonceStore.issue}.
 * @public
 */
export interface NonceIssueOptions {
  /**
   * True when the `GET /nonce` request carried a valid signature of the agent itself. Authenticated
   * and unauthenticated nonces of one keyid live in separate pools, each capped at `maxOutstanding`,
   * so an anonymous caller who knows a keyid can only evict that keyid's *unauthenticated* nonces.
   */
  authenticated?: boolean;
}

/**
 * Counters and sizes of a store. Counters are per store instance (process); sizes are global.
 * @public
 */
export interface NonceStoreStats {
  /** Unexpired, unconsumed nonces. */
  outstanding: number;
  /** Keyids holding at least one outstanding nonce. */
  agents: number;
  /** Outstanding nonces per keyid (only when requested). Never contains nonce values. */
  perAgent?: Record<string, number>;
  /** Nonces issued by this instance. */
  issued: number;
  /** Successful consumes by this instance. */
  consumed: number;
  /** Nonces evicted by this instance because an owner hit `maxOutstanding`. */
  evicted: number;
  /** Failed consumes by this instance, per reason. */
  rejected: Record<Exclude<NonceConsumeResult, 'ok'>, number>;
}

/**
 * Nonce store (SPEC §6.1). Implementations: {@link MemoryNonceStore} (single process),
 * {@link SqliteNonceStore} (survives restarts, shared by processes on one host),
 * {@link RedisNonceStore} (shared by collector replicas).
 *
 * Guarantees, checked by one conformance suite for all three:
 * - a nonce is bound to the keyid it was issued for and accepted at most once (`consume` is one
 *   atomic check-and-delete, also across processes sharing the store);
 * - it expires after `ttlSeconds`;
 * - an owner (keyid × pool, see {@link NonceIssueOptions.authenticated}) holds at most
 *   `maxOutstanding` unexpired nonces; issuing more evicts that owner's oldest and nobody else's.
 *
 * Trade-off (documented in the README): `GET /nonce` is usually unauthenticated, so anyone who knows
 * a keyid can make the collector issue nonces for it and thereby evict that keyid's oldest
 * *unauthenticated* nonces (never more than the overflow beyond the cap, never another keyid's,
 * never the authenticated pool). Memory stays bounded by agents × 2 × cap. Agents that sign their
 * nonce requests (the agent SDK does) cannot be starved this way.
 * @public
 */
export interface NonceStore {
  /** Issue a new nonce for `keyid`. */
  issue(keyid: string, options?: NonceIssueOptions): Promise<IssuedNonce>;
  /** Atomically check and spend `nonce` for `keyid`. */
  consume(keyid: string, nonce: string): Promise<NonceConsumeResult>;
  /**
   * Marks the signed request `requestId` of `keyid` as used until `until` (the end of the request's
   * acceptance window). Resolves `true` the first time and `false` for every repeat while the mark
   * lasts — one atomic set-if-absent, also across processes sharing the store. This makes a signed
   * `GET /nonce` single-use (SPEC §16): a captured one cannot be replayed to evict its agent's nonces.
   */
  claimRequest(keyid: string, requestId: string, until: Date): Promise<boolean>;
  /**
   * The agent's last accepted position (for the movement plausibility check), or `undefined` when
   * none is kept (never accepted one, or it has lapsed).
   */
  lastPosition(keyid: string): Promise<AcceptedPosition | undefined>;
  /**
   * Compare-and-set of the agent's last accepted position: stores `next` (kept until `until`) only
   * when the current one is still `expected` (`undefined`: none, or lapsed). Resolves `true` when
   * it stored — one atomic step, also across processes sharing the store, so two replicas that
   * accept conflicting positions of one agent at once cannot both pass against the same previous one.
   */
  replacePosition(
    keyid: string,
    expected: AcceptedPosition | undefined,
    next: AcceptedPosition,
    until: Date,
  ): Promise<boolean>;
  /** Sizes and counters. */
  stats(options?: { perAgent?: boolean }): Promise<NonceStoreStats>;
  /** Drop expired nonces, spent-nonce tombstones and lapsed positions; returns how many were removed. */
  cleanup(): Promise<number>;
  /** Release resources. */
  close(): Promise<void>;
}

/**
 * An agent's last accepted location (SPEC §5.3 movement plausibility), kept by the nonce store so
 * that every replica sharing the store sees it.
 * @public
 */
export interface AcceptedPosition {
  /** Latitude, WGS-84 degrees. */
  lat: number;
  /** Longitude, WGS-84 degrees. */
  lon: number;
  /** Accuracy radius in metres (0 when the reading gave none). */
  accuracy: number;
  /** Fix time, milliseconds since the epoch. */
  at: number;
}

/**
 * The stored form of a position; the compare of {@link NonceStore.replacePosition} compares these
 * strings, so one position always encodes the same way (fixed member order, JSON numbers).
 */
export function encodePosition(p: AcceptedPosition): string {
  return JSON.stringify([p.lat, p.lon, p.accuracy, p.at]);
}

/** Inverse of {@link encodePosition}; `undefined` for anything that is not one. */
export function decodePosition(s: string | null | undefined): AcceptedPosition | undefined {
  if (typeof s !== 'string') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v) || v.length !== 4 || !v.every((x) => typeof x === 'number' && Number.isFinite(x)))
    return undefined;
  const [lat, lon, accuracy, at] = v as [number, number, number, number];
  return { lat, lon, accuracy, at };
}

/**
 * Options shared by all nonce stores.
 * @public
 */
export interface NonceStoreOptions {
  /** Lifetime of a nonce in seconds (default 300, `NONCE_TTL_SECONDS`). */
  ttlSeconds?: number;
  /** Unexpired nonces per owner (default 16, `NONCE_MAX_OUTSTANDING`). */
  maxOutstanding?: number;
  /** Clock in milliseconds since the epoch (tests). Replicas sharing a store need synchronised clocks. */
  now?: () => number;
}

/** Resolved options. */
export interface ResolvedNonceOptions {
  ttlMs: number;
  ttlSeconds: number;
  maxOutstanding: number;
  now: () => number;
}

/** Validate and default the common options (throws TypeError with a clear message). */
export function resolveNonceOptions(o: NonceStoreOptions = {}): ResolvedNonceOptions {
  const ttlSeconds = o.ttlSeconds ?? DEFAULT_NONCE_TTL_SECONDS;
  const maxOutstanding = o.maxOutstanding ?? DEFAULT_NONCE_MAX_OUTSTANDING;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 86_400) {
    throw new TypeError(`nonce ttlSeconds must be an integer in 1..86400, got ${ttlSeconds}`);
  }
  if (!Number.isInteger(maxOutstanding) || maxOutstanding < 1 || maxOutstanding > 10_000_000) {
    throw new TypeError(`nonce maxOutstanding must be an integer in 1..10000000, got ${maxOutstanding}`);
  }
  return { ttlSeconds, ttlMs: ttlSeconds * 1000, maxOutstanding, now: o.now ?? Date.now };
}

/** Empty rejection counters. */
export function emptyRejected(): NonceStoreStats['rejected'] {
  return { unknown: 0, expired: 0, reused: 0, wrong_agent: 0 };
}

/** The per-instance counters every store keeps, and the stats it reports from them. */
export class NonceCounters {
  issued = 0;
  consumed = 0;
  evicted = 0;
  readonly rejected = emptyRejected();

  /** Counts one consume outcome. */
  count(r: NonceConsumeResult): void {
    if (r === 'ok') this.consumed++;
    else this.rejected[r]++;
  }

  /** Stats from the store's outstanding nonces per keyid (global) and these counters (local). */
  stats(perKeyid: ReadonlyMap<string, number>, perAgent: boolean | undefined): NonceStoreStats {
    let outstanding = 0;
    for (const n of perKeyid.values()) outstanding += n;
    const out: NonceStoreStats = {
      outstanding,
      agents: perKeyid.size,
      issued: this.issued,
      consumed: this.consumed,
      evicted: this.evicted,
      rejected: { ...this.rejected },
    };
    if (perAgent) out.perAgent = Object.fromEntries(perKeyid);
    return out;
  }
}

// Random bytes are drawn in 4 KiB blocks: one syscall per 128 nonces instead of one per nonce.
const POOL = Buffer.alloc(4096);
let poolOffset = POOL.length;

/**
 * A new nonce: 32 bytes from the CSPRNG, base64url without padding (43 characters).
 * @public
 */
export function generateNonce(): string {
  if (poolOffset + 32 > POOL.length) {
    randomFillSync(POOL);
    poolOffset = 0;
  }
  const s = POOL.toString('base64url', poolOffset, poolOffset + 32);
  // Wipe the used bytes so a later heap dump cannot recover issued nonces from the pool.
  POOL.fill(0, poolOffset, poolOffset + 32);
  poolOffset += 32;
  return s;
}
