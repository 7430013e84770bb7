import { type PostgresDatabase, type PostgresSubscription, REGISTRY_CHANNEL } from './postgres.js';
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

/**
 * Options of {@link PostgresRegistry.open}.
 * @public
 */
export interface PostgresRegistryOptions {
  /** The database (shared with the other Postgres stores of the process). */
  db: PostgresDatabase;
  /** Called when a stored row fails validation (the row is ignored, never trusted) or the listener fails. */
  onError?: (err: Error) => void;
  /** Clock (tests). */
  now?: () => Date;
  /** Delay before reconnecting a lost listener, in ms (default 500). */
  reconnectDelayMs?: number;
}

/** First key of the advisory locks that serialise writers of one agent name. */
const WRITE_LOCK_CLASS = 0x67656f67;

interface Row {
  record: unknown;
}

/**
 * PostgreSQL registry for fleets. Lookups hit an in-memory index kept current by `LISTEN/NOTIFY`: a
 * trigger on the table notifies every replica of each committed change (by this class, another replica
 * or an operator's SQL), and the replica re-reads that agent before its next lookup of it — a revoke on
 * one replica is enforced by all within the notification's delivery time. A name or keyid the index
 * does not know is looked up in the database, so an agent enrolled at one replica is known at once by
 * all. While the listening
 * connection is down (a Postgres restart) the index may be stale, so lookups go to the database until
 * the listener is back and a full reload has run. Writes are transactions holding a per-name advisory
 * lock, so the enrolment compare-and-set ({@link Registry.putIfMatch}) is atomic across replicas. Every
 * database error is `StoreUnavailableError` (`503 upstream`, `registry`).
 * @public
 */
export class PostgresRegistry implements Registry {
  private readonly index = new RecordIndex();
  private listener: PostgresSubscription | undefined;
  private live = false;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Per agent name, the re-read that a notification started (lookups of that agent wait for it). */
  private readonly reloading = new Map<string, Promise<void>>();

  private constructor(private readonly opts: PostgresRegistryOptions) {}

  /** Opens the registry: starts listening, then loads every record. */
  static async open(options: PostgresRegistryOptions): Promise<PostgresRegistry> {
    const reg = new PostgresRegistry(options);
    await reg.connectListener();
    return reg;
  }

  private get db(): PostgresDatabase {
    return this.opts.db;
  }

  /** LISTEN first, then load: a change committed between the two is seen by the load or notified. */
  private async connectListener(): Promise<void> {
    let sub: PostgresSubscription | undefined;
    sub = await this.db.listen(
      REGISTRY_CHANNEL,
      (name) => {
        if (name) this.reloadAgent(name);
      },
      (err) => {
        if (this.listener !== sub) return;
        this.listener = undefined;
        this.live = false;
        if (err) this.opts.onError?.(err);
        this.scheduleReconnect();
      },
    );
    if (this.closed) {
      await sub.close();
      return;
    }
    this.listener = sub;
    try {
      await this.loadAll();
      this.live = true;
    } catch (err) {
      this.listener = undefined;
      await sub.close();
      throw err;
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connectListener().catch(() => this.scheduleReconnect());
    }, this.opts.reconnectDelayMs ?? 500);
    this.reconnectTimer.unref();
  }

  private async loadAll(): Promise<void> {
    const { rows } = await this.db.query<Row>('registry', 'SELECT record FROM geofence_agents');
    this.index.replaceAll(this.validRows(rows));
  }

  private validRows(rows: Row[]): AgentRecord[] {
    const out: AgentRecord[] = [];
    for (const row of rows) {
      try {
        out.push(validateAgentRecord(row.record));
      } catch (err) {
        this.opts.onError?.(err as Error);
      }
    }
    return out;
  }

  /** Re-reads one agent after a notification; re-reads of one name run in order. */
  private reloadAgent(name: string): void {
    const previous = this.reloading.get(name) ?? Promise.resolve();
    const next = previous
      .then(async () => {
        const { rows } = await this.db.query<Row>(
          'registry',
          'SELECT record FROM geofence_agents WHERE agent_name = $1',
          [name],
        );
        const [record] = this.validRows(rows);
        if (record) this.index.set(record);
        else this.index.delete(name);
      })
      .catch((err: unknown) => {
        // The index entry cannot be trusted: serve this process from the database until a full reload.
        this.live = false;
        this.opts.onError?.(err as Error);
        const l = this.listener;
        this.listener = undefined;
        void l?.close();
        this.scheduleReconnect();
      })
      .finally(() => {
        if (this.reloading.get(name) === next) this.reloading.delete(name);
      });
    this.reloading.set(name, next);
  }

  private async settled(name: string | undefined): Promise<void> {
    const p = name === undefined ? undefined : this.reloading.get(name);
    if (p) await p;
  }

  private async fromDb(where: string, arg: string): Promise<AgentRecord | undefined> {
    const { rows } = await this.db.query<Row>(
      'registry',
      `SELECT record FROM geofence_agents WHERE ${where} = $1`,
      [arg],
    );
    return this.validRows(rows)[0];
  }

  /** {@inheritDoc Registry.getByKeyid} */
  async getByKeyid(keyid: string): Promise<AgentRecord | undefined> {
    this.assertOpen();
    if (!this.live) return this.fromDb('keyid', keyid);
    await this.settled(this.index.byKey(keyid)?.agent_name);
    const known = this.reloading.size > 0 ? undefined : this.index.byKey(keyid);
    // A miss may be an agent another replica enrolled a moment ago (its notification still on the
    // way), or a notified re-key moving this keyid between agents: the database decides.
    return known ?? this.missed(await this.fromDb('keyid', keyid));
  }

  /** A record read from the database after an index miss joins the index (a fresh read). */
  private missed(record: AgentRecord | undefined): AgentRecord | undefined {
    if (record && this.live && !this.reloading.has(record.agent_name)) this.index.set(record);
    return record;
  }

  /** {@inheritDoc Registry.getByName} */
  async getByName(agentName: string): Promise<AgentRecord | undefined> {
    this.assertOpen();
    if (!this.live) return this.fromDb('agent_name', agentName);
    await this.settled(agentName);
    return this.index.byAgent(agentName) ?? this.missed(await this.fromDb('agent_name', agentName));
  }

  /** {@inheritDoc Registry.list} */
  async list(filter?: { status?: AgentStatus }): Promise<AgentRecord[]> {
    this.assertOpen();
    let all: AgentRecord[];
    if (this.live) {
      await Promise.all(this.reloading.values());
      all = this.index.all();
    } else {
      const { rows } = await this.db.query<Row>(
        'registry',
        'SELECT record FROM geofence_agents ORDER BY agent_name',
      );
      all = this.validRows(rows);
    }
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
    return this.write(agentName, withStatus(agentName, status));
  }

  /**
   * One transaction: the per-name advisory lock (the row may not exist yet, so a row lock would not
   * stop two first enrolments), the stored row, `decide`, validation, the upsert. A keyid held by
   * another agent is `keyid_conflict`.
   */
  private async write(
    agentName: string,
    decide: (current: AgentRecord | undefined) => AgentRecordInput,
  ): Promise<AgentRecord> {
    this.assertOpen();
    const now = (this.opts.now ?? (() => new Date()))();
    const record = await this.db.transaction(
      'registry',
      async (q) => {
        await q('SELECT pg_advisory_xact_lock($1, hashtext($2))', [WRITE_LOCK_CLASS, agentName]);
        const { rows } = await q<Row>('SELECT record FROM geofence_agents WHERE agent_name = $1', [
          agentName,
        ]);
        const current = rows[0] ? validateAgentRecord(rows[0].record) : undefined;
        const next = validateAgentRecord(stampRecord(decide(current), current, now));
        await q(
          `INSERT INTO geofence_agents (agent_name, keyid, status, record, updated_at)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (agent_name) DO UPDATE SET keyid = excluded.keyid, status = excluded.status,
             record = excluded.record, updated_at = excluded.updated_at`,
          [next.agent_name, next.keyid, next.status, JSON.stringify(next), next.updated_at],
        );
        return next;
      },
      (err) =>
        (err as { code?: string }).code === '23505'
          ? new RegistryError('keyid_conflict', `keyid of ${agentName} is already registered`, err)
          : undefined,
    );
    this.index.set(record);
    return record;
  }

  /** {@inheritDoc Registry.delete} */
  async delete(agentName: string): Promise<boolean> {
    this.assertOpen();
    const { rowCount } = await this.db.query(
      'registry',
      'DELETE FROM geofence_agents WHERE agent_name = $1',
      [agentName],
    );
    this.index.delete(agentName);
    return (rowCount ?? 0) > 0;
  }

  /** {@inheritDoc Registry.reload} */
  async reload(): Promise<void> {
    this.assertOpen();
    await this.loadAll();
  }

  private assertOpen(): void {
    if (this.closed) throw new RegistryError('unavailable', 'registry is closed');
  }

  /** Stops listening (the database is closed by its owner). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.live = false;
    clearTimeout(this.reconnectTimer);
    const l = this.listener;
    this.listener = undefined;
    await l?.close();
  }
}
