import { chmodSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { AgentError, OutboxFullError } from './errors.js';

/** A queued message: one metric set (`single`) or a batch the caller asked to sign together. */
export interface QueuedMessage {
  /** Position in the queue (monotonic; delivery order). */
  id: number;
  kind: 'single' | 'batch';
  /** The metric set, or the list of metric sets of a batch. */
  metrics: Record<string, unknown> | Array<Record<string, unknown>>;
  /** When it was queued (ms since the epoch). */
  enqueuedAt: number;
  /** Failed delivery attempts so far. */
  attempts: number;
}

/** The message queue the delivery loop drains in order. */
export interface MessageQueue {
  /** Whether messages survive a restart. */
  readonly durable: boolean;
  /** Appends a message; throws {@link OutboxFullError} when the bound is reached. */
  add(kind: QueuedMessage['kind'], metrics: QueuedMessage['metrics']): number;
  /** The oldest `limit` messages, in order. */
  peek(limit: number): QueuedMessage[];
  /** Removes delivered messages. */
  remove(ids: readonly number[]): void;
  /** Moves rejected messages to the dead-letter table (kept for inspection, never resent). */
  deadLetter(ids: readonly number[], reason: string): void;
  /** Counts a failed attempt. */
  markAttempt(ids: readonly number[], error: string): void;
  /** Messages waiting. */
  size(): number;
  /** Messages that were rejected. */
  deadLettered(): number;
  /** Keeps (or with `undefined` forgets) the signed request to resend after a restart. */
  saveResend(r: StoredResend | undefined): void;
  /** The signed request a previous process left for resending. */
  loadResend(): StoredResend | undefined;
  close(): void;
}

/**
 * A signed `POST /metrics` whose answer was lost, kept so the same bytes (same nonce) are sent
 * again — also by the next process after a crash — instead of a newly signed copy.
 */
export interface StoredResend {
  /** Outbox ids of the messages it carries, in order. */
  ids: number[];
  /** Exact body bytes. */
  body: Uint8Array;
  /** Exact headers (including the signature). */
  headers: Record<string, string>;
  /** ms since the epoch until which the collector accepts it. */
  validUntil: number;
}

/** In-memory queue (used when the durable outbox is disabled). */
export class MemoryQueue implements MessageQueue {
  readonly durable = false;
  private items: QueuedMessage[] = [];
  private next = 1;
  private dead = 0;
  constructor(private readonly limit: number) {}
  add(kind: QueuedMessage['kind'], metrics: QueuedMessage['metrics']): number {
    if (this.items.length >= this.limit) throw new OutboxFullError(this.limit);
    const id = this.next++;
    this.items.push({ id, kind, metrics, enqueuedAt: Date.now(), attempts: 0 });
    return id;
  }
  peek(limit: number): QueuedMessage[] {
    return this.items.slice(0, limit);
  }
  remove(ids: readonly number[]): void {
    const set = new Set(ids);
    this.items = this.items.filter((m) => !set.has(m.id));
  }
  deadLetter(ids: readonly number[]): void {
    this.dead += ids.length;
    this.remove(ids);
  }
  markAttempt(ids: readonly number[]): void {
    const set = new Set(ids);
    for (const m of this.items) if (set.has(m.id)) m.attempts++;
  }
  size(): number {
    return this.items.length;
  }
  deadLettered(): number {
    return this.dead;
  }
  saveResend(): void {}
  loadResend(): StoredResend | undefined {
    return undefined;
  }
  close(): void {
    this.items = [];
  }
}

/** Thrown when another live process holds the outbox of the same state directory. */
export class OutboxLockedError extends AgentError<'outbox_locked'> {
  constructor(path: string, pid: number) {
    super('outbox_locked', `outbox ${path} is in use by process ${pid}`);
    this.name = 'OutboxLockedError';
  }
}

/** Outboxes open in this process (the pid lock cannot tell two agents of one process apart). */
const openHere = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The durable outbox: a SQLite database (WAL, `synchronous=FULL`) in the state directory. A
 * message is on disk before `add` returns, so neither a crash nor `SIGKILL` loses it. One process
 * per state directory (a pid lock file), because two deliverers would send messages twice.
 */
export class SqliteOutbox implements MessageQueue {
  readonly durable = true;
  private readonly db: Database.Database;
  private readonly lockPath: string;
  private readonly stmts;
  /**
   * Rows in the outbox table, kept in step with every write of this (the only) writer: the delivery
   * loop asks for the size several times per send, and a `count(*)` each time was a measurable part
   * of a durable send. Changed only after a write committed.
   */
  private rows: number;

  constructor(
    path: string,
    private readonly limit: number,
    private readonly deadLetterLimit = 1000,
  ) {
    this.lockPath = `${path}.lock`;
    this.acquireLock();
    try {
      this.db = new Database(path);
      // Queued metrics are the operator's data: owner-only, like the rest of the state directory
      // (SQLite creates the -wal/-shm files with the database file's mode).
      chmodSync(path, 0o600);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS outbox (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          kind TEXT NOT NULL CHECK (kind IN ('single', 'batch')),
          metrics TEXT NOT NULL,
          enqueued_at INTEGER NOT NULL,
          attempts INTEGER NOT NULL DEFAULT 0,
          last_error TEXT
        );
        CREATE TABLE IF NOT EXISTS dead_letter (
          id INTEGER PRIMARY KEY,
          kind TEXT NOT NULL,
          metrics TEXT NOT NULL,
          enqueued_at INTEGER NOT NULL,
          rejected_at INTEGER NOT NULL,
          reason TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS resend (
          k INTEGER PRIMARY KEY CHECK (k = 1),
          ids TEXT NOT NULL,
          body BLOB NOT NULL,
          headers TEXT NOT NULL,
          valid_until INTEGER NOT NULL
        );`);
    } catch (err) {
      this.releaseLock();
      throw err;
    }
    this.stmts = {
      count: this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM outbox'),
      deadCount: this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM dead_letter'),
      insert: this.db.prepare('INSERT INTO outbox (kind, metrics, enqueued_at) VALUES (?, ?, ?)'),
      peek: this.db.prepare<
        [number],
        { id: number; kind: string; metrics: string; enqueued_at: number; attempts: number }
      >('SELECT id, kind, metrics, enqueued_at, attempts FROM outbox ORDER BY id LIMIT ?'),
      remove: this.db.prepare('DELETE FROM outbox WHERE id = ?'),
      toDead: this.db.prepare(
        'INSERT OR REPLACE INTO dead_letter (id, kind, metrics, enqueued_at, rejected_at, reason) SELECT id, kind, metrics, enqueued_at, ?, ? FROM outbox WHERE id = ?',
      ),
      trimDead: this.db.prepare(
        'DELETE FROM dead_letter WHERE id NOT IN (SELECT id FROM dead_letter ORDER BY id DESC LIMIT ?)',
      ),
      attempt: this.db.prepare('UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?'),
    };
    this.rows = this.stmts.count.get()!.n;
  }

  private acquireLock(): void {
    if (openHere.has(this.lockPath)) throw new OutboxLockedError(this.lockPath, process.pid);
    for (let i = 0; i < 2; i++) {
      try {
        writeFileSync(this.lockPath, String(process.pid), { flag: 'wx', mode: 0o600 });
        openHere.add(this.lockPath);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number.parseInt(readFileSync(this.lockPath, 'utf8'), 10);
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
          throw new OutboxLockedError(this.lockPath, pid);
        }
        // Stale lock of a process that died (e.g. SIGKILL): take it over.
        unlinkSync(this.lockPath);
      }
    }
    throw new Error(`cannot lock ${this.lockPath}`);
  }

  private releaseLock(): void {
    openHere.delete(this.lockPath);
    try {
      if (readFileSync(this.lockPath, 'utf8') === String(process.pid)) unlinkSync(this.lockPath);
    } catch {
      // already gone
    }
  }

  add(kind: QueuedMessage['kind'], metrics: QueuedMessage['metrics']): number {
    const text = JSON.stringify(metrics);
    const insert = this.db.transaction(() => {
      if (this.rows >= this.limit) throw new OutboxFullError(this.limit);
      return Number(this.stmts.insert.run(kind, text, Date.now()).lastInsertRowid);
    });
    const id = insert.immediate();
    this.rows++;
    return id;
  }

  peek(limit: number): QueuedMessage[] {
    return this.stmts.peek.all(limit).map((r) => ({
      id: r.id,
      kind: r.kind as QueuedMessage['kind'],
      metrics: JSON.parse(r.metrics) as QueuedMessage['metrics'],
      enqueuedAt: r.enqueued_at,
      attempts: r.attempts,
    }));
  }

  remove(ids: readonly number[]): void {
    this.rows -= this.db.transaction(() => {
      let removed = 0;
      for (const id of ids) removed += this.stmts.remove.run(id).changes;
      return removed;
    })();
  }

  deadLetter(ids: readonly number[], reason: string): void {
    this.rows -= this.db.transaction(() => {
      const now = Date.now();
      let removed = 0;
      for (const id of ids) {
        this.stmts.toDead.run(now, reason, id);
        removed += this.stmts.remove.run(id).changes;
      }
      this.stmts.trimDead.run(this.deadLetterLimit);
      return removed;
    })();
  }

  markAttempt(ids: readonly number[], error: string): void {
    this.db.transaction(() => {
      for (const id of ids) this.stmts.attempt.run(error.slice(0, 500), id);
    })();
  }

  size(): number {
    return this.rows;
  }

  deadLettered(): number {
    return this.stmts.deadCount.get()!.n;
  }

  saveResend(r: StoredResend | undefined): void {
    if (!r) {
      this.db.prepare('DELETE FROM resend').run();
      return;
    }
    this.db
      .prepare('INSERT OR REPLACE INTO resend (k, ids, body, headers, valid_until) VALUES (1, ?, ?, ?, ?)')
      .run(JSON.stringify(r.ids), Buffer.from(r.body), JSON.stringify(r.headers), r.validUntil);
  }

  loadResend(): StoredResend | undefined {
    const row = this.db.prepare('SELECT ids, body, headers, valid_until FROM resend WHERE k = 1').get() as
      | { ids: string; body: Buffer; headers: string; valid_until: number }
      | undefined;
    if (!row) return undefined;
    return {
      ids: JSON.parse(row.ids) as number[],
      body: new Uint8Array(row.body),
      headers: JSON.parse(row.headers) as Record<string, string>,
      validUntil: row.valid_until,
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
    this.releaseLock();
  }
}
