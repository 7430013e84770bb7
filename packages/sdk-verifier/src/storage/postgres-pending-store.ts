import type { PendingEnrollmentRecord, PendingEnrollmentStore, TakeResult } from '../attestation/pending.js';
import type { PostgresDatabase } from './postgres.js';

/**
 * PostgreSQL {@link PendingEnrollmentStore}: `POST /enroll` on one replica and
 * `POST /enroll/{id}/complete` on another. `take` is one statement that marks the row used and
 * clears its secret, so of two replicas completing one id at once exactly one gets the record. Spent
 * and expired ids stay as tombstones (without the secret) until their expiry plus `tombstoneSeconds`,
 * so a replay is reported as `used` rather than `unknown`. Database errors are `503 upstream`.
 * @public
 */
export class PostgresPendingEnrollmentStore implements PendingEnrollmentStore {
  /**
   * @param db - the database (shared with the other Postgres stores of the process)
   * @param tombstoneSeconds - how long spent ids are remembered after their expiry (default 300)
   */
  constructor(
    private readonly db: PostgresDatabase,
    private readonly tombstoneSeconds = 300,
  ) {}

  /** {@inheritDoc PendingEnrollmentStore.put} */
  async put(id: string, record: PendingEnrollmentRecord, expiresAt: Date): Promise<void> {
    // The store is its own janitor: each new enrolment removes tombstones whose time is over.
    await this.db.query('registry', 'DELETE FROM geofence_pending_enrollments WHERE forget_at < now()');
    await this.db.query(
      'registry',
      `INSERT INTO geofence_pending_enrollments (id, record, expires_at, forget_at)
       VALUES ($1, $2, $3, $3::timestamptz + make_interval(secs => $4))`,
      [id, JSON.stringify(record), expiresAt.toISOString(), this.tombstoneSeconds],
    );
  }

  /** {@inheritDoc PendingEnrollmentStore.take} */
  async take(id: string, now: Date): Promise<TakeResult<PendingEnrollmentRecord>> {
    const { rows } = await this.db.query<{ record: PendingEnrollmentRecord; expires_at: Date }>(
      'registry',
      `WITH spent AS (
         SELECT id, record, expires_at FROM geofence_pending_enrollments WHERE id = $1 AND NOT used FOR UPDATE
       )
       UPDATE geofence_pending_enrollments p SET used = true, record = NULL
       FROM spent WHERE p.id = spent.id
       RETURNING spent.record, spent.expires_at`,
      [id],
    );
    const taken = rows[0];
    if (taken) {
      if (now.getTime() > taken.expires_at.getTime() || !taken.record) return { status: 'expired' };
      return { status: 'ok', value: taken.record };
    }
    const seen = await this.db.query('registry', 'SELECT 1 FROM geofence_pending_enrollments WHERE id = $1', [
      id,
    ]);
    return (seen.rowCount ?? 0) > 0 ? { status: 'used' } : { status: 'unknown' };
  }
}
