import {
  type AgentRecord,
  type AgentRecordInput,
  type AgentStatus,
  checkExpectation,
  RecordIndex,
  type Registry,
  RegistryError,
  type RegistryExpectation,
  stampRecord,
  validateAgentRecord,
  withStatus,
} from './registry.js';
import { openSqlite, type SqliteDatabase, type SqliteStatement } from './sqlite.js';
import { SqliteFaultGuard, StoreUnavailableError } from './store-fault.js';

/**
 * Options of {@link SqliteRegistry.open}.
 * @public
 */
export interface SqliteRegistryOptions {
  /** Database file (created when missing). `:memory:` for tests. */
  path: string;
  /** Called when a stored row fails validation on load (the row is ignored, never trusted). */
  onError?: (err: Error) => void;
  /** Clock (tests). */
  now?: () => Date;
  /**
   * How long a call waits for a lock held by another connection, in milliseconds (default
   * `DEFAULT_SQLITE_BUSY_TIMEOUT_MS`, 500); then the call fails with {@link StoreUnavailableError}.
   */
  busyTimeoutMs?: number;
}

/**
 * SQLite registry (default). Lookups hit an in-memory index (O(1)); before each lookup one cheap
 * `PRAGMA data_version` tells whether another connection (for example `geofence agents approve` in
 * another process) committed a change, in which case the index is rebuilt — hot reload without
 * polling or restart. Writes are transactions in WAL mode with synchronous=FULL. A locked, read-only
 * or failing database raises {@link StoreUnavailableError} (`503 upstream`), never a raw SQLite error.
 * @public
 */
export class SqliteRegistry implements Registry {
  private readonly index = new RecordIndex();
  private dataVersion = -1;
  private closed = false;
  private readonly guard: SqliteFaultGuard;
  private readonly stmts: {
    version: SqliteStatement;
    all: SqliteStatement;
    one: SqliteStatement;
    upsert: SqliteStatement;
    del: SqliteStatement;
  };

  private constructor(
    private readonly db: SqliteDatabase,
    private readonly opts: SqliteRegistryOptions,
  ) {
    this.guard = new SqliteFaultGuard(db, 'registry', opts.busyTimeoutMs);
    db.exec(`CREATE TABLE IF NOT EXISTS geofence_agents (
      agent_name TEXT PRIMARY KEY,
      keyid TEXT NOT NULL UNIQUE,
      status TEXT NOT NULL,
      record TEXT NOT NULL,
      updated_at TEXT NOT NULL
    ) STRICT`);
    this.stmts = {
      version: db.prepare('PRAGMA data_version').pluck(),
      all: db.prepare('SELECT record FROM geofence_agents'),
      one: db.prepare('SELECT record FROM geofence_agents WHERE agent_name = ?').pluck(),
      upsert: db.prepare(
        `INSERT INTO geofence_agents (agent_name, keyid, status, record, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(agent_name) DO UPDATE SET keyid = excluded.keyid, status = excluded.status,
           record = excluded.record, updated_at = excluded.updated_at`,
      ),
      del: db.prepare('DELETE FROM geofence_agents WHERE agent_name = ?'),
    };
  }

  /** Open (and create) a registry database. */
  static async open(options: SqliteRegistryOptions): Promise<SqliteRegistry> {
    const reg = new SqliteRegistry(await openSqlite(options.path), options);
    reg.refresh();
    return reg;
  }

  /** Rebuild the index when another connection committed since the last look. */
  private refresh(force = false): void {
    if (this.closed) throw new RegistryError('unavailable', 'registry is closed');
    const v = Number(this.guard.run(() => this.stmts.version.get()));
    if (!force && v === this.dataVersion) return;
    const records: AgentRecord[] = [];
    const rows = this.guard.run(() => this.stmts.all.all()) as Array<{ record: string }>;
    for (const row of rows) {
      try {
        records.push(validateAgentRecord(JSON.parse(row.record)));
      } catch (err) {
        this.opts.onError?.(err as Error);
      }
    }
    this.index.replaceAll(records);
    this.dataVersion = v;
  }

  /** {@inheritDoc Registry.getByKeyid} */
  async getByKeyid(keyid: string): Promise<AgentRecord | undefined> {
    this.refresh();
    return this.index.byKey(keyid);
  }

  /** {@inheritDoc Registry.getByName} */
  async getByName(agentName: string): Promise<AgentRecord | undefined> {
    this.refresh();
    return this.index.byAgent(agentName);
  }

  /** {@inheritDoc Registry.list} */
  async list(filter?: { status?: AgentStatus }): Promise<AgentRecord[]> {
    this.refresh();
    const all = this.index.all();
    return filter?.status ? all.filter((r) => r.status === filter.status) : all;
  }

  /** {@inheritDoc Registry.put} */
  async put(input: AgentRecordInput): Promise<AgentRecord> {
    return this.write(input.agent_name, () => input);
  }

  /** {@inheritDoc Registry.putIfMatch} */
  async putIfMatch(input: AgentRecordInput, expected: RegistryExpectation | null): Promise<AgentRecord> {
    return this.write(input.agent_name, (current) => {
      checkExpectation(input.agent_name, current, expected);
      return input;
    });
  }

  /** {@inheritDoc Registry.setStatus} */
  async setStatus(agentName: string, status: AgentStatus): Promise<AgentRecord> {
    // Decided on the row as it is inside the transaction.
    return this.write(agentName, withStatus(agentName, status));
  }

  /**
   * One write transaction (BEGIN IMMEDIATE: it holds the write lock from the read on, across
   * processes): reads the stored row, lets `decide` check it and return the record to write
   * (derived from it, for `setStatus`), validates and writes.
   */
  private write(
    agentName: string,
    decide: (current: AgentRecord | undefined) => AgentRecordInput,
  ): AgentRecord {
    this.refresh();
    const now = (this.opts.now ?? (() => new Date()))();
    let record: AgentRecord;
    try {
      record = this.guard.run(() =>
        this.db
          .transaction(() => {
            const row = this.stmts.one.get(agentName) as string | undefined;
            const current = row === undefined ? undefined : validateAgentRecord(JSON.parse(row));
            const input = decide(current);
            const next = validateAgentRecord(stampRecord(input, current, now));
            this.stmts.upsert.run(
              next.agent_name,
              next.keyid,
              next.status,
              JSON.stringify(next),
              next.updated_at,
            );
            return next;
          })
          .immediate(),
      );
    } catch (err) {
      if (err instanceof RegistryError || err instanceof StoreUnavailableError) throw err;
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        this.refresh(true);
        throw new RegistryError('keyid_conflict', `keyid of ${agentName} is already registered`, err);
      }
      throw new RegistryError('storage', 'registry write failed', err);
    }
    // data_version does not change for this connection's own commits, so the index stays current
    // and a concurrent commit by another process is still detected on the next lookup.
    this.index.set(record);
    return record;
  }

  /** {@inheritDoc Registry.delete} */
  async delete(agentName: string): Promise<boolean> {
    this.refresh();
    const { changes } = this.guard.run(() => this.stmts.del.run(agentName));
    this.index.delete(agentName);
    return changes > 0;
  }

  /** {@inheritDoc Registry.reload} */
  async reload(): Promise<void> {
    this.refresh(true);
  }

  /** {@inheritDoc Registry.close} */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
