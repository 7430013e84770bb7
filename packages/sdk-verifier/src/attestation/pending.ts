/**
 * Pending enrolments between `POST /enroll` and `POST /enroll/{id}/complete`: kept until they
 * expire (default 5 minutes) and usable once. A used or expired id is remembered until its expiry
 * plus the TTL so that a replay is reported as a replay rather than as an unknown id.
 */

import type { EnrollRequest } from '@geofence/protocol';

/**
 * What the collector remembers between the two enrolment round trips. Plain JSON, so a shared
 * store (e.g. Redis with GETDEL) can hold it for several collector replicas.
 * @public
 */
export interface PendingEnrollmentRecord {
  /** The validated `POST /enroll` body (keys are re-parsed from it at completion). */
  request: EnrollRequest;
  /** lowercase hex SHA-256 of the EK SPKI DER. */
  ek_hash: string;
  /** Subject of the EK CA that issued the EK certificate, when one was verified. */
  ek_cert_issuer?: string;
  /** The credential secret, base64url. Secret: never log or expose it. */
  secret: string;
  /** The challenge nonce, base64url. */
  nonce: string;
}

/**
 * Storage of pending enrolments. `take` must be atomic and single-use: the first call for an id
 * returns the record (or `expired`), every later call `used` (until the store forgets the id, then
 * `unknown`). The default is {@link MemoryPendingEnrollmentStore} (one process); several replicas
 * behind a gateway need a shared implementation or sticky routing of `/enroll*`.
 * @public
 */
export interface PendingEnrollmentStore {
  /** Stores a new pending enrolment until `expiresAt`. */
  put(id: string, record: PendingEnrollmentRecord, expiresAt: Date): Promise<void>;
  /** Takes it, once. */
  take(id: string, now: Date): Promise<TakeResult<PendingEnrollmentRecord>>;
}

/**
 * Result of {@link PendingEnrollments.take}.
 * @public
 */
export type TakeResult<T> =
  | { status: 'ok'; value: T }
  | { status: 'expired' }
  | { status: 'used' }
  | { status: 'unknown' };

interface Entry<T> {
  value: T | undefined;
  expiresAt: number;
  used: boolean;
}

/**
 * In-memory, single-process store of pending enrolments with expiry and single use. Bounded:
 * beyond `maxEntries` the oldest entries are dropped, so unauthenticated `POST /enroll` floods
 * cannot exhaust memory (they can only make the oldest pending enrolments restart).
 * @public
 */
export class PendingEnrollments<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;

  /**
   * @param ttlSeconds - lifetime of a pending enrolment (default 300)
   * @param maxEntries - capacity (default 10 000)
   */
  constructor(ttlSeconds = 300, maxEntries = 10_000) {
    if (!(ttlSeconds > 0)) throw new TypeError('pending enrolment TTL must be positive');
    this.ttlMs = ttlSeconds * 1000;
    this.maxEntries = maxEntries;
  }

  /** Lifetime of new entries in milliseconds. */
  get ttlMilliseconds(): number {
    return this.ttlMs;
  }

  /** Stores `value` under `id` and returns its expiry time. */
  put(id: string, value: T, now: number = Date.now()): Date {
    const expiresAt = now + this.ttlMs;
    this.putUntil(id, value, expiresAt, now);
    return new Date(expiresAt);
  }

  /** Stores `value` under `id` until `expiresAt` (ms since the epoch). */
  putUntil(id: string, value: T, expiresAt: number, now: number = Date.now()): void {
    this.sweep(now);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(id, { value, expiresAt, used: false });
  }

  /**
   * Takes the entry for `id` exactly once. Whatever the caller then decides, the entry is spent;
   * only its tombstone remains (without the value, so secrets do not linger).
   */
  take(id: string, now: number = Date.now()): TakeResult<T> {
    const e = this.entries.get(id);
    if (!e) return { status: 'unknown' };
    if (e.used) return { status: 'used' };
    e.used = true;
    const value = e.value;
    e.value = undefined;
    if (now > e.expiresAt || value === undefined) return { status: 'expired' };
    return { status: 'ok', value };
  }

  /** Number of entries held (pending and tombstones). */
  get size(): number {
    return this.entries.size;
  }

  /** Drops entries whose tombstone period (expiry + TTL) is over. */
  sweep(now: number = Date.now()): void {
    // Insertion order is expiry order (one TTL for all), so stop at the first live entry.
    for (const [id, e] of this.entries) {
      if (now <= e.expiresAt) break;
      if (now > e.expiresAt + this.ttlMs) this.entries.delete(id);
      else e.value = undefined;
    }
  }
}

/**
 * In-process {@link PendingEnrollmentStore} (bounded, with replay tombstones).
 * @public
 */
export class MemoryPendingEnrollmentStore implements PendingEnrollmentStore {
  private readonly inner: PendingEnrollments<PendingEnrollmentRecord>;

  /**
   * @param ttlSeconds - how long tombstones of spent ids are kept after their expiry (default 300)
   * @param maxEntries - capacity (default 10 000)
   */
  constructor(ttlSeconds = 300, maxEntries = 10_000) {
    this.inner = new PendingEnrollments(ttlSeconds, maxEntries);
  }

  async put(id: string, record: PendingEnrollmentRecord, expiresAt: Date): Promise<void> {
    this.inner.putUntil(id, record, expiresAt.getTime());
  }

  async take(id: string, now: Date): Promise<TakeResult<PendingEnrollmentRecord>> {
    return this.inner.take(id, now.getTime());
  }
}
