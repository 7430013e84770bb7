/**
 * Durable store of accepted records (SPEC §10): the raw request body exactly as received, the verdict,
 * the verifying headers and the receive time, in SQLite (WAL, `synchronous=FULL`). `insertDurable`
 * resolves only after the transaction is committed, so a record acknowledged with 200 survives a
 * crash; its commits run on a worker thread (records-writer.ts), off the service's event loop.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DEFAULT_SQLITE_BUSY_TIMEOUT_MS, SqliteFaultGuard } from '@geofence/verifier';
import Database from 'better-sqlite3';
import { RecordWriterThread } from './records-thread.js';

/** One stored record. */
export interface StoredRecord {
  /** Record id returned to the agent as `record_id`. */
  id: string;
  agentName: string;
  keyid: string;
  /** ISO-8601 time the collector received and accepted the message. */
  receivedAt: string;
  /** Raw request body bytes, exactly as received (for offline re-verification). */
  body: Buffer;
  /** Verification verdict at ingestion time (checks run, rejected_by none, mode). */
  verdict: Record<string, unknown>;
  /** Signature-related request headers as received (signature-input, signature, content-digest, workload-geo-id). */
  headers: Record<string, string>;
}

/** Input of {@link RecordStore.insert}. */
export type NewRecord = Omit<StoredRecord, 'id' | 'receivedAt'> & { receivedAt?: string };

/** Query of {@link RecordStore.list}. */
export interface RecordQuery {
  agent?: string | undefined;
  /** Only records received at or after this ISO time. */
  since?: string | undefined;
  /** Page cursor: only records with a sequence number greater than this (from `next`). */
  after?: number | undefined;
  /** Page size (1–1000). */
  limit: number;
}

interface Row {
  seq: number;
  id: string;
  agent_name: string;
  keyid: string;
  received_at: string;
  body: Buffer;
  verdict: string;
  headers: string;
}

function toRecord(r: Row): StoredRecord & { seq: number } {
  return {
    seq: r.seq,
    id: r.id,
    agentName: r.agent_name,
    keyid: r.keyid,
    receivedAt: r.received_at,
    body: r.body,
    verdict: JSON.parse(r.verdict) as Record<string, unknown>,
    headers: JSON.parse(r.headers) as Record<string, string>,
  };
}

/**
 * SQLite-backed record store; safe for several processes on one file (WAL, busy timeout). A locked,
 * read-only or full database raises `StoreUnavailableError` (503 `upstream`, `record_store`).
 */
export class RecordStore {
  private readonly db: Database.Database;
  private readonly guard: SqliteFaultGuard;
  private readonly insertStmt: Database.Statement;
  private readonly byIdStmt: Database.Statement;
  private readonly countStmt: Database.Statement;
  private readonly writer: RecordWriterThread;

  /**
   * Opens (creating when needed) the store at `path`.
   * @param options - `busyTimeoutMs`: how long a write waits for another process's lock (default 500)
   */
  constructor(path: string, options: { busyTimeoutMs?: number | undefined } = {}) {
    this.writer = new RecordWriterThread({
      path,
      busyTimeoutMs: options.busyTimeoutMs ?? DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
    });
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
      headers TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS records_agent ON records(agent_name, seq);
    CREATE INDEX IF NOT EXISTS records_time ON records(received_at);`);
    this.insertStmt = this.db.prepare(
      'INSERT INTO records (id, agent_name, keyid, received_at, body, verdict, headers) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.byIdStmt = this.db.prepare('SELECT * FROM records WHERE id = ?');
    this.countStmt = this.db.prepare('SELECT COUNT(*) AS n FROM records');
  }

  /**
   * Stores a record durably with group commit on the writer thread: records submitted while the
   * previous commit was being fsynced are written in one transaction (one fsync for the group).
   * Resolves only after the commit, so a caller that acknowledges on resolution never acknowledges a
   * record a crash can lose; meanwhile this thread keeps serving requests. A database fault, or a
   * writer thread that died, rejects with `StoreUnavailableError` (503 `upstream`, `record_store`).
   */
  async insertDurable(rec: NewRecord): Promise<StoredRecord> {
    const record: StoredRecord = {
      ...rec,
      id: `rec_${crypto.randomUUID()}`,
      receivedAt: rec.receivedAt ?? new Date().toISOString(),
    };
    await this.writer.write({
      id: record.id,
      agentName: record.agentName,
      keyid: record.keyid,
      receivedAt: record.receivedAt,
      body: record.body,
      verdict: JSON.stringify(record.verdict),
      headers: JSON.stringify(record.headers),
    });
    return record;
  }

  /** Stores a record durably (its own transaction) and returns it with its id. */
  insert(rec: NewRecord): StoredRecord {
    return this.guard.run(() => this.insertRow(rec));
  }

  private insertRow(rec: NewRecord): StoredRecord {
    const id = `rec_${crypto.randomUUID()}`;
    const receivedAt = rec.receivedAt ?? new Date().toISOString();
    this.insertStmt.run(
      id,
      rec.agentName,
      rec.keyid,
      receivedAt,
      rec.body,
      JSON.stringify(rec.verdict),
      JSON.stringify(rec.headers),
    );
    return { ...rec, id, receivedAt };
  }

  /** Looks a record up by id. */
  get(id: string): StoredRecord | undefined {
    const row = this.guard.run(() => this.byIdStmt.get(id)) as Row | undefined;
    return row ? toRecord(row) : undefined;
  }

  /** Pages through records in insertion order; `next` is the cursor for the following page. */
  list(q: RecordQuery): { records: Array<StoredRecord & { seq: number }>; next: number | null } {
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

  /** Number of stored records. */
  count(): number {
    return (this.guard.run(() => this.countStmt.get()) as { n: number }).n;
  }

  /**
   * Readiness check used by `/ready`: takes and releases the write lock, so a database another
   * process holds locked, or one that became read-only, reports not ready (a record cannot be stored).
   */
  ping(): boolean {
    this.guard.run(() => {
      this.db.exec('BEGIN IMMEDIATE');
      this.db.exec('ROLLBACK');
    });
    return true;
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
