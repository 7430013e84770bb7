import type { MetricsPayload } from '@geofence/protocol';
import type { PostgresDatabase } from './postgres.js';
import {
  type AcceptedRecord,
  type RecordHttpSignature,
  type RecordPage,
  type RecordQuery,
  type RecordStore,
  readRecordVerdict,
  type StoredRecord,
} from './record-store.js';

interface Row {
  seq: string;
  id: string;
  agent_name: string;
  keyid: string;
  received_at: Date;
  body: Buffer;
  verdict: unknown;
  headers: Record<string, string>;
  http_signature: RecordHttpSignature | null;
}

function toRecord(r: Row): StoredRecord {
  return {
    seq: Number(r.seq),
    id: r.id,
    agentName: r.agent_name,
    keyid: r.keyid,
    receivedAt: r.received_at.toISOString(),
    payload: JSON.parse(r.body.toString('utf8')) as MetricsPayload,
    rawBody: r.body,
    httpSignature: r.http_signature,
    verdict: readRecordVerdict(r.verdict),
    headers: r.headers,
  };
}

/**
 * PostgreSQL {@link RecordStore} shared by every collector replica. `insert` resolves after the
 * commit, which the server acknowledges only once its WAL is flushed (`synchronous_commit` on, the
 * default): a record answered with 200 survives a crash of the collector or of the server. The
 * paging cursor `seq` is an identity column, increasing in commit-independent insertion order.
 * Every database error is `StoreUnavailableError` (`503 upstream`, `record_store`).
 * @public
 */
export class PostgresRecordStore implements RecordStore {
  /** @param db - the database (shared with the other Postgres stores of the process) */
  constructor(private readonly db: PostgresDatabase) {}

  /** {@inheritDoc RecordStore.insert} */
  async insert(rec: AcceptedRecord): Promise<string> {
    const id = `rec_${crypto.randomUUID()}`;
    await this.db.query(
      'record_store',
      `INSERT INTO geofence_records (id, agent_name, keyid, received_at, body, verdict, headers, http_signature)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        id,
        rec.agentName,
        rec.keyid,
        rec.receivedAt,
        Buffer.from(rec.rawBody.buffer, rec.rawBody.byteOffset, rec.rawBody.byteLength),
        JSON.stringify(rec.verdict),
        JSON.stringify(rec.headers),
        rec.httpSignature ? JSON.stringify(rec.httpSignature) : null,
      ],
    );
    return id;
  }

  /** {@inheritDoc RecordStore.get} */
  async get(id: string): Promise<StoredRecord | undefined> {
    const { rows } = await this.db.query<Row>(
      'record_store',
      'SELECT * FROM geofence_records WHERE id = $1',
      [id],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** {@inheritDoc RecordStore.list} */
  async list(q: RecordQuery): Promise<RecordPage> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.agent) {
      args.push(q.agent);
      where.push(`agent_name = $${args.length}`);
    }
    if (q.since) {
      args.push(q.since);
      where.push(`received_at >= $${args.length}::timestamptz`);
    }
    if (q.after !== undefined) {
      args.push(q.after);
      where.push(`seq > $${args.length}`);
    }
    args.push(q.limit + 1);
    const sql = `SELECT * FROM geofence_records ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq LIMIT $${args.length}`;
    const { rows } = await this.db.query<Row>('record_store', sql, args);
    const page = rows.slice(0, q.limit).map(toRecord);
    const last = page[page.length - 1];
    return { records: page, next: rows.length > q.limit && last ? last.seq : null };
  }

  /** {@inheritDoc RecordStore.count} */
  async count(): Promise<number> {
    const { rows } = await this.db.query<{ n: string }>(
      'record_store',
      'SELECT count(*) AS n FROM geofence_records',
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** {@inheritDoc RecordStore.ping} */
  async ping(): Promise<void> {
    await this.db.query('record_store', 'SELECT 1');
  }

  /** Nothing to release: the database is closed by its owner. */
  async close(): Promise<void> {}
}
