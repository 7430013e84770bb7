/**
 * Pending enrolments (between `POST /enroll` and `POST /enroll/{id}/complete`) in a SQLite file of
 * the data directory, so every process on the host sees them: the worker processes of a collector
 * (`--workers`) take connections in turn, and the completion of an enrolment may reach another
 * worker than its start. Same rules as the verifier's in-memory store: usable once, until expiry;
 * a spent or expired id is remembered (without its secret) until expiry plus the TTL, so a replay is
 * reported as a replay; bounded, so a flood of unauthenticated `POST /enroll` cannot fill the disk
 * (it only makes the oldest pending enrolments restart).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type PendingEnrollmentRecord,
  type PendingEnrollmentStore,
  SqliteFaultGuard,
  type TakeResult,
} from '@geofence/verifier';
import Database from 'better-sqlite3';

interface Row {
  record: string | null;
  expires_at: number;
  used: number;
}

/** SQLite-backed {@link PendingEnrollmentStore} shared by the processes of one host. */
export class SqlitePendingEnrollmentStore implements PendingEnrollmentStore {
  private readonly db: Database.Database;
  private readonly guard: SqliteFaultGuard;
  private readonly putTx: (id: string, record: string, expiresAt: number, now: number) => void;
  private readonly takeTx: (id: string, now: number) => TakeResult<PendingEnrollmentRecord>;

  /**
   * Opens (creating when needed) the store at `path`.
   * @param options - `ttlSeconds`: how long tombstones outlive their expiry (default 300);
   * `maxEntries`: capacity including tombstones (default 10 000); `busyTimeoutMs`: lock wait
   */
  constructor(
    path: string,
    options: { ttlSeconds?: number; maxEntries?: number; busyTimeoutMs?: number | undefined } = {},
  ) {
    const ttlMs = (options.ttlSeconds ?? 300) * 1000;
    const maxEntries = options.maxEntries ?? 10_000;
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // A pending enrolment lost to a power cut is only restarted by its agent: no fsync per write.
    this.db.pragma('synchronous = NORMAL');
    // Enrolment state: an outage is reported as the registry's (503 upstream), which enrolment needs too.
    this.guard = new SqliteFaultGuard(this.db, 'registry', options.busyTimeoutMs);
    this.db.exec(`CREATE TABLE IF NOT EXISTS pending_enrollments (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      record TEXT,
      expires_at INTEGER NOT NULL,
      used INTEGER NOT NULL DEFAULT 0
    )`);
    const sweepGone = this.db.prepare('DELETE FROM pending_enrollments WHERE expires_at < ?');
    const sweepSecrets = this.db.prepare(
      'UPDATE pending_enrollments SET record = NULL WHERE expires_at < ? AND record IS NOT NULL',
    );
    const count = this.db.prepare('SELECT COUNT(*) AS n FROM pending_enrollments');
    const dropOldest = this.db.prepare(
      'DELETE FROM pending_enrollments WHERE seq IN (SELECT seq FROM pending_enrollments ORDER BY seq LIMIT ?)',
    );
    const insert = this.db.prepare(
      'INSERT OR REPLACE INTO pending_enrollments (id, record, expires_at, used) VALUES (?, ?, ?, 0)',
    );
    const get = this.db.prepare('SELECT record, expires_at, used FROM pending_enrollments WHERE id = ?');
    const spend = this.db.prepare('UPDATE pending_enrollments SET used = 1, record = NULL WHERE id = ?');
    const put = this.db.transaction((id: string, record: string, expiresAt: number, now: number) => {
      sweepGone.run(now - ttlMs);
      sweepSecrets.run(now);
      const n = (count.get() as { n: number }).n;
      if (n >= maxEntries) dropOldest.run(n - maxEntries + 1);
      insert.run(id, record, expiresAt);
    });
    const take = this.db.transaction((id: string, now: number): TakeResult<PendingEnrollmentRecord> => {
      const row = get.get(id) as Row | undefined;
      if (!row) return { status: 'unknown' };
      if (row.used) return { status: 'used' };
      spend.run(id);
      if (now > row.expires_at || row.record === null) return { status: 'expired' };
      return { status: 'ok', value: JSON.parse(row.record) as PendingEnrollmentRecord };
    });
    // IMMEDIATE: the read and the spend of a take are one step for every process on the file.
    this.putTx = (...a) => put.immediate(...a);
    this.takeTx = (...a) => take.immediate(...a);
  }

  /** {@inheritDoc @geofence/verifier#PendingEnrollmentStore.put} */
  async put(id: string, record: PendingEnrollmentRecord, expiresAt: Date): Promise<void> {
    this.guard.run(() => this.putTx(id, JSON.stringify(record), expiresAt.getTime(), Date.now()));
  }

  /** {@inheritDoc @geofence/verifier#PendingEnrollmentStore.take} */
  async take(id: string, now: Date): Promise<TakeResult<PendingEnrollmentRecord>> {
    return this.guard.run(() => this.takeTx(id, now.getTime()));
  }

  /** Closes the database. */
  close(): void {
    this.db.close();
  }
}
