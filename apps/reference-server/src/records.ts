/**
 * Durable store of accepted records (SPEC §10): the raw request body exactly as received, the verdict,
 * the verifying headers and the receive time, in SQLite (WAL, `synchronous=FULL`). `insert` resolves
 * only after the transaction is committed, so a record acknowledged with 200 survives a crash; its
 * commits run on a worker thread (records-writer.ts), off the service's event loop.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type AcceptedRecord,
  DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
  type MetricsPayload,
  type RecordHttpSignature,
  type RecordPage,
  type RecordQuery,
  type RecordStore,
  readRecordVerdict,
  SqliteFaultGuard,
  type StoredRecord,
} from '@geofence/verifier';
import Database from 'better-sqlite3';
import { RecordWriterThread } from './records-thread.js';

interface Row {
  seq: number;
  id: string;
  agent_name: string;
  keyid: string;
  received_at: string;
  body: Buffer;
  verdict: string;
  headers: string;
  http_signature: string | null;
}

function toRecord(r: Row): StoredRecord {
  return {
    seq: r.seq,
    id: r.id,
    agentName: r.agent_name,
    keyid: r.keyid,
    receivedAt: r.received_at,
    payload: JSON.parse(r.body.toString('utf8')) as MetricsPayload,
    rawBody: r.body,
    httpSignature: r.http_signature ? (JSON.parse(r.http_signature) as RecordHttpSignature) : null,
    verdict: readRecordVerdict(JSON.parse(r.verdict)),
    headers: JSON.parse(r.headers) as Record<string, string>,
  };
}

/**
 * SQLite-backed {@link @geofence/verifier#RecordStore} (the default); safe for several processes on
 * one file (WAL, busy timeout). A locked, read-only or full database raises `StoreUnavailableError`
 * (503 `upstream`, `record_store`).
 */
export class SqliteRecordStore implements RecordStore {
  private readonly db: Database.Database;
  private readonly guard: SqliteFaultGuard;
  private readonly byIdStmt: Database.Statement;
  private readonly countStmt: Database.Statement;
  private readonly writer: RecordWriterThread;

  /**
   * Opens (creating when needed) the store at `path`.
   * @param options - `busyTimeoutMs`: how long a write waits for another process's lock (default 500)
   */
  constructor(path: string, options: { busyTimeoutMs?: number | undefined } = {}) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // FULL: the WAL is fsynced at every commit, so an acknowledged record survives power loss too.
    this.db.pragma('synchronous = FULL');
    this.guard = new SqliteFaultGuard(this.db, 'record_store', options.busyTimeoutMs);
    this.db.exec(`CREATE TABLE IF NOT EXISTS records (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      agent_name TEXT NOT NULL,
      keyid TEXT NOT NULL,
      received_at TEXT NOT NULL,
      body BLOB NOT NULL,
      verdict TEXT NOT NULL,
      headers TEXT NOT NULL,
      http_signature TEXT
    );
    CREATE INDEX IF NOT EXISTS records_agent ON records(agent_name, seq);
    CREATE INDEX IF NOT EXISTS records_time ON records(received_at);`);
    // Files written before the record kept its signature facts lack the column; their rows read as null.
    const columns = this.db.prepare('PRAGMA table_info(records)').all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'http_signature')) {
      this.db.exec('ALTER TABLE records ADD COLUMN http_signature TEXT');
    }
    this.byIdStmt = this.db.prepare('SELECT * FROM records WHERE id = ?');
    this.countStmt = this.db.prepare('SELECT COUNT(*) AS n FROM records');
    // After the schema exists (and is migrated): the thread prepares its INSERT against it.
    this.writer = new RecordWriterThread({
      path,
      busyTimeoutMs: options.busyTimeoutMs ?? DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
    });
  }

  /**
   * Stores a record durably with group commit on the writer thread: records submitted while the
   * previous commit was being fsynced are written in one transaction (one fsync for the group).
   * Resolves only after the commit, so a caller that acknowledges on resolution never acknowledges a
   * record a crash can lose; meanwhile this thread keeps serving requests. A database fault, or a
   * writer thread that died, rejects with `StoreUnavailableError` (503 `upstream`, `record_store`).
   */
  async insert(rec: AcceptedRecord): Promise<string> {
    const id = `rec_${crypto.randomUUID()}`;
    await this.writer.write({
      id,
      agentName: rec.agentName,
      keyid: rec.keyid,
      receivedAt: rec.receivedAt,
      body: rec.rawBody,
      verdict: JSON.stringify(rec.verdict),
      headers: JSON.stringify(rec.headers),
      httpSignature: rec.httpSignature ? JSON.stringify(rec.httpSignature) : null,
    });
    return id;
  }

  /** {@inheritDoc @geofence/verifier#RecordStore.get} */
  async get(id: string): Promise<StoredRecord | undefined> {
    const row = this.guard.run(() => this.byIdStmt.get(id)) as Row | undefined;
    return row ? toRecord(row) : undefined;
  }

  /** {@inheritDoc @geofence/verifier#RecordStore.list} */
  async list(q: RecordQuery): Promise<RecordPage> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.agent) {
      where.push('agent_name = ?');
      args.push(q.agent);
    }
    if (q.since) {
      where.push('received_at >= ?');
      args.push(q.since);
    }
    if (q.after !== undefined) {
      where.push('seq > ?');
      args.push(q.after);
    }
    const sql = `SELECT * FROM records ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq LIMIT ?`;
    const rows = this.guard.run(() => this.db.prepare(sql).all(...args, q.limit + 1)) as Row[];
    const page = rows.slice(0, q.limit).map(toRecord);
    const last = page[page.length - 1];
    return { records: page, next: rows.length > q.limit && last ? last.seq : null };
  }

  /** {@inheritDoc @geofence/verifier#RecordStore.count} */
  async count(): Promise<number> {
    return (this.guard.run(() => this.countStmt.get()) as { n: number }).n;
  }

  /**
   * Readiness check used by `/ready`: takes and releases the write lock, so a database another
   * process holds locked, or one that became read-only, reports not ready (a record cannot be stored).
   */
  async ping(): Promise<void> {
    this.guard.run(() => {
      this.db.exec('BEGIN IMMEDIATE');
      this.db.exec('ROLLBACK');
    });
  }

  /**
   * Closes the database; the writer thread commits what it was given, then ends (resolves when it
   * has). Nothing may be inserted after close.
   */
  close(): Promise<void> {
    this.db.close();
    return this.writer.close();
  }
}
