/**
 * Pending enrolments between `POST /enroll` and `POST /enroll/{id}/complete`: kept until they
 * expire (default 5 minutes) and usable once. A used or expired id is remembered until its expiry
 * plus the TTL so that a replay is reported as a replay rather than as an unknown id.
 */

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
    this.sweep(now);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
    const expiresAt = now + this.ttlMs;
    this.entries.set(id, { value, expiresAt, used: false });
    return new Date(expiresAt);
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
