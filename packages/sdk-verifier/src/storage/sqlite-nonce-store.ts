import {
  type AcceptedPosition,
  decodePosition,
  encodePosition,
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
import { openSqlite, type SqliteDatabase, type SqliteStatement } from './sqlite.js';
import { SqliteFaultGuard, StoreUnavailableError } from './store-fault.js';

/**
 * Options of {@link SqliteNonceStore.open}.
 * @public
 */
export interface SqliteNonceStoreOptions extends NonceStoreOptions {
  /** Database file (created when missing); may be the registry's file. */
  path: string;
  /** Run {@link NonceStore.cleanup} after this many issues (default 1000; 0 disables). */
  cleanupEvery?: number;
  /**
   * How long a call waits for a lock held by another connection, in milliseconds (default
   * `DEFAULT_SQLITE_BUSY_TIMEOUT_MS`, 500); then the call fails with `StoreUnavailableError`.
   */
  busyTimeoutMs?: number;
}

/**
 * SQLite nonce store: issued and spent nonces survive a restart, and several processes on one host
 * may share the file. `consume` is a single conditional `UPDATE … WHERE consumed_at IS NULL`, which
 * SQLite executes under its write lock, so exactly one caller across all processes sees a change.
 * `issue` runs in a `BEGIN IMMEDIATE` transaction (count, evict the owner's oldest, insert). A locked,
 * read-only or failing database raises `StoreUnavailableError` (`503 upstream`): a consume that
 * cannot run is never reported as done.
 * @public
 */
export class SqliteNonceStore implements NonceStore {
  private readonly o: ResolvedNonceOptions;
  private readonly counters = new NonceCounters();
  private sinceCleanup = 0;
  private closed = false;
  private readonly guard: SqliteFaultGuard;
  private readonly s: Record<
    | 'count'
    | 'evict'
    | 'insert'
    | 'spend'
    | 'lookup'
    | 'cleanup'
    | 'stats'
    | 'claim'
    | 'cleanupClaims'
    | 'position'
    | 'placeFirst'
    | 'replacePosition'
    | 'cleanupPositions',
    SqliteStatement
  >;
  private readonly issueTx: (keyid: string, pool: number, nonce: string, now: number) => number;

  private constructor(
    private readonly db: SqliteDatabase,
    private readonly opts: SqliteNonceStoreOptions,
  ) {
    this.o = resolveNonceOptions(opts);
    this.guard = new SqliteFaultGuard(db, 'nonce_store', opts.busyTimeoutMs);
    db.exec(`CREATE TABLE IF NOT EXISTS geofence_nonces (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      nonce TEXT NOT NULL UNIQUE,
      keyid TEXT NOT NULL,
      pool INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      consumed_at INTEGER
    ) STRICT;
    CREATE INDEX IF NOT EXISTS geofence_nonces_owner ON geofence_nonces (keyid, pool, consumed_at, expires_at);
    CREATE INDEX IF NOT EXISTS geofence_nonces_expiry ON geofence_nonces (expires_at);
    CREATE TABLE IF NOT EXISTS geofence_nonce_requests (
      request TEXT PRIMARY KEY,
      expires_at INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS geofence_positions (
      keyid TEXT PRIMARY KEY,
      position TEXT NOT NULL,
      expires_at INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;`);
    const outstanding = 'keyid = ? AND pool = ? AND consumed_at IS NULL AND expires_at > ?';
    this.s = {
      count: db.prepare(`SELECT count(*) FROM geofence_nonces WHERE ${outstanding}`).pluck(),
      evict: db.prepare(
        `DELETE FROM geofence_nonces WHERE id IN
           (SELECT id FROM geofence_nonces WHERE ${outstanding} ORDER BY id LIMIT ?)`,
      ),
      insert: db.prepare('INSERT INTO geofence_nonces (nonce, keyid, pool, expires_at) VALUES (?, ?, ?, ?)'),
      spend: db.prepare(
        `UPDATE geofence_nonces SET consumed_at = ?
           WHERE nonce = ? AND keyid = ? AND consumed_at IS NULL AND expires_at > ?`,
      ),
      lookup: db.prepare('SELECT keyid, expires_at, consumed_at FROM geofence_nonces WHERE nonce = ?'),
      cleanup: db.prepare('DELETE FROM geofence_nonces WHERE expires_at <= ?'),
      // Inserted, or taking over an expired mark: one statement under the write lock, so exactly one
      // of any number of processes claiming the same request sees a change.
      claim: db.prepare(
        `INSERT INTO geofence_nonce_requests (request, expires_at) VALUES (?, ?)
           ON CONFLICT (request) DO UPDATE SET expires_at = excluded.expires_at
           WHERE geofence_nonce_requests.expires_at <= ?`,
      ),
      cleanupClaims: db.prepare('DELETE FROM geofence_nonce_requests WHERE expires_at <= ?'),
      position: db
        .prepare('SELECT position FROM geofence_positions WHERE keyid = ? AND expires_at > ?')
        .pluck(),
      // Compare-and-set as one statement under the write lock (like `claim`): the first position
      // of an agent, or one replacing a lapsed position …
      placeFirst: db.prepare(
        `INSERT INTO geofence_positions (keyid, position, expires_at) VALUES (?, ?, ?)
           ON CONFLICT (keyid) DO UPDATE SET position = excluded.position, expires_at = excluded.expires_at
           WHERE geofence_positions.expires_at <= ?`,
      ),
      // … or one replacing exactly the position the caller checked against.
      replacePosition: db.prepare(
        `UPDATE geofence_positions SET position = ?, expires_at = ?
           WHERE keyid = ? AND position = ? AND expires_at > ?`,
      ),
      cleanupPositions: db.prepare('DELETE FROM geofence_positions WHERE expires_at <= ?'),
      stats: db.prepare(
        'SELECT keyid, count(*) AS n FROM geofence_nonces WHERE consumed_at IS NULL AND expires_at > ? GROUP BY keyid',
      ),
    };
    const tx = db.transaction((keyid: string, pool: number, nonce: string, now: number): number => {
      const n = Number(this.s.count.get(keyid, pool, now));
      let evicted = 0;
      if (n >= this.o.maxOutstanding) {
        evicted = this.s.evict.run(keyid, pool, now, n - this.o.maxOutstanding + 1).changes;
      }
      this.s.insert.run(nonce, keyid, pool, now + this.o.ttlMs);
      return evicted;
    });
    this.issueTx = (...a) => tx.immediate(...a);
  }

  /** Open (and create) the store. */
  static async open(options: SqliteNonceStoreOptions): Promise<SqliteNonceStore> {
    return new SqliteNonceStore(await openSqlite(options.path), options);
  }

  private check(): void {
    if (this.closed) throw new Error('nonce store is closed');
  }

  /** {@inheritDoc NonceStore.issue} */
  async issue(keyid: string, options?: NonceIssueOptions): Promise<IssuedNonce> {
    this.check();
    const now = this.o.now();
    const nonce = generateNonce();
    const pool = options?.authenticated ? 1 : 0;
    this.counters.evicted += this.guard.run(() => this.issueTx(keyid, pool, nonce, now));
    this.counters.issued++;
    const every = this.opts.cleanupEvery ?? 1000;
    if (every > 0 && ++this.sinceCleanup >= every) {
      this.sinceCleanup = 0;
      try {
        this.guard.run(() => {
          this.s.cleanup.run(now);
          this.s.cleanupClaims.run(now);
        });
      } catch (err) {
        // Housekeeping only: the nonce above is issued; a locked database is cleaned next time.
        if (!(err instanceof StoreUnavailableError)) throw err;
      }
    }
    return { nonce, expiresAt: new Date(now + this.o.ttlMs), expiresIn: this.o.ttlSeconds };
  }

  /** {@inheritDoc NonceStore.consume} */
  async consume(keyid: string, nonce: string): Promise<NonceConsumeResult> {
    this.check();
    const r = this.guard.run(() => this.spend(keyid, nonce));
    this.counters.count(r);
    return r;
  }

  private spend(keyid: string, nonce: string): NonceConsumeResult {
    if (typeof nonce !== 'string') return 'unknown';
    const now = this.o.now();
    if (this.s.spend.run(now, nonce, keyid, now).changes === 1) return 'ok';
    // Not spent by us: classify why (only the reason can race, never the acceptance).
    const row = this.s.lookup.get(nonce) as
      | { keyid: string; expires_at: number; consumed_at: number | null }
      | undefined;
    if (!row) return 'unknown';
    if (row.keyid !== keyid) return 'wrong_agent';
    if (row.consumed_at !== null) return 'reused';
    return 'expired';
  }

  /** {@inheritDoc NonceStore.stats} */
  async stats(options?: { perAgent?: boolean }): Promise<NonceStoreStats> {
    this.check();
    const rows = this.guard.run(() => this.s.stats.all(this.o.now())) as Array<{ keyid: string; n: number }>;
    return this.counters.stats(new Map(rows.map((r) => [r.keyid, r.n])), options?.perAgent);
  }

  /** {@inheritDoc NonceStore.cleanup} */
  async cleanup(): Promise<number> {
    this.check();
    const now = this.o.now();
    return this.guard.run(
      () =>
        this.s.cleanup.run(now).changes +
        this.s.cleanupClaims.run(now).changes +
        this.s.cleanupPositions.run(now).changes,
    );
  }

  /** {@inheritDoc NonceStore.lastPosition} */
  async lastPosition(keyid: string): Promise<AcceptedPosition | undefined> {
    this.check();
    return decodePosition(
      this.guard.run(() => this.s.position.get(keyid, this.o.now())) as string | undefined,
    );
  }

  /** {@inheritDoc NonceStore.replacePosition} */
  async replacePosition(
    keyid: string,
    expected: AcceptedPosition | undefined,
    next: AcceptedPosition,
    until: Date,
  ): Promise<boolean> {
    this.check();
    const now = this.o.now();
    const value = encodePosition(next);
    const t = until.getTime();
    return this.guard.run(
      () =>
        (expected === undefined
          ? this.s.placeFirst.run(keyid, value, t, now)
          : this.s.replacePosition.run(value, t, keyid, encodePosition(expected), now)
        ).changes === 1,
    );
  }

  /** {@inheritDoc NonceStore.claimRequest} */
  async claimRequest(keyid: string, requestId: string, until: Date): Promise<boolean> {
    this.check();
    return this.guard.run(
      () => this.s.claim.run(`${keyid} ${requestId}`, until.getTime(), this.o.now()).changes === 1,
    );
  }

  /** {@inheritDoc NonceStore.close} */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
