/**
 * PostgreSQL for fleets: one bounded connection pool shared by the registry, record and pending
 * enrolment stores of a process, the schema migrations they need (run at open, idempotent, serialised
 * across replicas starting together), and the one rule by which a database error becomes SPEC §7:
 * anything the driver or the server raises is `503 upstream` with `Retry-After`, never `500`.
 *
 * `pg` is an optional peer dependency, loaded only when a Postgres store is opened (pure JavaScript;
 * the verifier stays free of native code).
 */
import type * as Pg from 'pg';
import { type StoreName, StoreUnavailableError } from './store-fault.js';

/**
 * Options of {@link PostgresDatabase.open}.
 * @public
 */
export interface PostgresOptions {
  /** `postgres://user:password@host:port/database` (`DATABASE_URL`). */
  url: string;
  /** Most connections the pool opens (default 10, `DATABASE_POOL_MAX`); the registry's listener is one more. */
  poolMax?: number;
  /** A connection attempt is abandoned after this long, in ms (default 2000): an outage answers 503 at once. */
  connectTimeoutMs?: number;
  /** A statement without a reply after this long fails, in ms (default 5000): a frozen server answers 503. */
  statementTimeoutMs?: number;
  /** Receives errors of idle connections (a server restart); without it they are ignored. */
  onError?: (err: Error) => void;
}

/**
 * Rows of a statement (the part of the driver's result the stores use; no driver types in this API).
 * @public
 */
export interface PostgresRows<R> {
  /** The rows returned. */
  rows: R[];
  /** Rows the statement affected or returned. */
  rowCount: number | null;
}

/**
 * Runs one statement inside {@link PostgresDatabase.transaction}.
 * @public
 */
export type PostgresQuery = <R extends object>(sql: string, params?: unknown[]) => Promise<PostgresRows<R>>;

/**
 * An active `LISTEN` (see {@link PostgresDatabase.listen}).
 * @public
 */
export interface PostgresSubscription {
  /** Stops listening and closes its connection. */
  close(): Promise<void>;
}

/** Schema versions, applied in order once each; never edit one that has shipped, append a new one. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE geofence_agents (
     agent_name text PRIMARY KEY,
     keyid text NOT NULL UNIQUE,
     status text NOT NULL,
     record jsonb NOT NULL,
     updated_at timestamptz NOT NULL
   );
   CREATE FUNCTION geofence_agents_notify() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     PERFORM pg_notify('geofence_registry', COALESCE(NEW.agent_name, OLD.agent_name));
     RETURN NULL;
   END $$;
   CREATE TRIGGER geofence_agents_changed AFTER INSERT OR UPDATE OR DELETE ON geofence_agents
     FOR EACH ROW EXECUTE FUNCTION geofence_agents_notify();
   CREATE TABLE geofence_records (
     seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     id text NOT NULL UNIQUE,
     agent_name text NOT NULL,
     keyid text NOT NULL,
     received_at timestamptz NOT NULL,
     body bytea NOT NULL,
     verdict jsonb NOT NULL,
     headers jsonb NOT NULL,
     http_signature jsonb
   );
   CREATE INDEX geofence_records_agent ON geofence_records (agent_name, seq);
   CREATE INDEX geofence_records_time ON geofence_records (received_at);
   CREATE TABLE geofence_pending_enrollments (
     id text PRIMARY KEY,
     record jsonb,
     expires_at timestamptz NOT NULL,
     forget_at timestamptz NOT NULL,
     used boolean NOT NULL DEFAULT false
   );
   CREATE INDEX geofence_pending_forget ON geofence_pending_enrollments (forget_at);`,
  // Operator pre-registrations (the `agents` of an EnrollmentPolicy), shared by a fleet's replicas;
  // each change notifies every replica, which re-reads the list.
  `CREATE TABLE geofence_preregistrations (
     agent_name text PRIMARY KEY,
     entry jsonb NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE FUNCTION geofence_preregistrations_notify() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     PERFORM pg_notify('geofence_preregistrations', '');
     RETURN NULL;
   END $$;
   CREATE TRIGGER geofence_preregistrations_changed AFTER INSERT OR UPDATE OR DELETE ON geofence_preregistrations
     FOR EACH STATEMENT EXECUTE FUNCTION geofence_preregistrations_notify();`,
];

/** Advisory lock key held while migrating, so replicas starting together migrate one at a time. */
const MIGRATION_LOCK = 0x67656f66; // "geof"

/** The channel the registry trigger notifies on (payload: the agent name). */
export const REGISTRY_CHANNEL = 'geofence_registry';

let driver: Promise<typeof Pg> | undefined;

/** Loads `pg` once (optional peer dependency). */
export async function loadPg(): Promise<typeof Pg> {
  driver ??= import('pg').then(
    (m) => ((m as unknown as { default?: typeof Pg }).default ?? m) as typeof Pg,
    (err: unknown) => {
      driver = undefined;
      throw new Error('The PostgreSQL stores need the optional peer dependency pg (npm i pg).', {
        cause: err,
      });
    },
  );
  return driver;
}

/**
 * A pool of connections to one PostgreSQL database, shared by the Postgres stores of a process.
 * Opening it runs the schema migrations. Calls made through it turn every driver or server error into
 * {@link StoreUnavailableError} for the calling store.
 * @public
 */
export class PostgresDatabase {
  private closed = false;

  private constructor(
    private readonly pg: typeof Pg,
    private readonly pool: Pg.Pool,
    private readonly options: PostgresOptions,
  ) {}

  /**
   * Connects, applies missing migrations and returns the database. Throws an `Error` naming the
   * server (never the password) when it cannot be reached.
   */
  static async open(options: PostgresOptions): Promise<PostgresDatabase> {
    const pg = await loadPg();
    const poolMax = options.poolMax ?? 10;
    if (!Number.isInteger(poolMax) || poolMax < 1) throw new TypeError('poolMax must be a positive integer');
    const pool = new pg.Pool({
      connectionString: options.url,
      max: poolMax,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 2000,
      statement_timeout: options.statementTimeoutMs ?? 5000,
      query_timeout: (options.statementTimeoutMs ?? 5000) + 1000,
      idleTimeoutMillis: 30_000,
    });
    // An idle connection the server closes emits 'error' on the pool: unhandled, it would end the process.
    pool.on('error', (err) => options.onError?.(err));
    const db = new PostgresDatabase(pg, pool, options);
    try {
      await db.migrate();
    } catch (err) {
      await pool.end().catch(() => {});
      throw new Error(
        `cannot open PostgreSQL at ${urlWithoutPassword(options.url)}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    return db;
  }

  private async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query(
        'CREATE TABLE IF NOT EXISTS geofence_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const { rows } = await client.query<{ v: number | null }>(
        'SELECT max(version) AS v FROM geofence_schema',
      );
      const current = rows[0]?.v ?? 0;
      if (current > MIGRATIONS.length) {
        // A newer release migrated this database: an older one must not write a schema it does not know.
        throw new Error(
          `database schema version ${current} is newer than this release knows (${MIGRATIONS.length})`,
        );
      }
      for (let v = current + 1; v <= MIGRATIONS.length; v++) {
        await client.query(MIGRATIONS[v - 1] as string);
        await client.query('INSERT INTO geofence_schema (version) VALUES ($1)', [v]);
      }
      await client.query('COMMIT');
      client.release();
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      client.release(true);
      throw err;
    }
  }

  /** Schema version after the migrations (the number of migrations this release knows). */
  static get schemaVersion(): number {
    return MIGRATIONS.length;
  }

  /** Runs one statement for `store`; any failure is {@link StoreUnavailableError}. */
  async query<R extends object>(
    store: StoreName,
    sql: string,
    params: unknown[] = [],
  ): Promise<PostgresRows<R>> {
    this.assertOpen(store);
    try {
      return await this.pool.query<R & Pg.QueryResultRow>(sql, params);
    } catch (err) {
      throw new StoreUnavailableError(store, err);
    }
  }

  /**
   * Runs `fn` in one transaction on one connection, committed when it resolves. An error `fn` throws
   * on purpose (a `RegistryError`) passes unchanged after the rollback;
   * `map` may turn a database error into one (a unique violation into a conflict); everything else
   * is {@link StoreUnavailableError}.
   */
  async transaction<T>(
    store: StoreName,
    fn: (q: PostgresQuery) => Promise<T>,
    map?: (err: unknown) => Error | undefined,
  ): Promise<T> {
    this.assertOpen(store);
    let client: Pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw new StoreUnavailableError(store, err);
    }
    const dbErrors = new WeakSet<object>();
    const q = async <R extends object>(sql: string, params: unknown[] = []): Promise<PostgresRows<R>> => {
      try {
        return await client.query<R & Pg.QueryResultRow>(sql, params);
      } catch (err) {
        if (err && typeof err === 'object') dbErrors.add(err);
        throw err;
      }
    };
    let broken = false;
    try {
      await q('BEGIN');
      const result = await fn(q);
      await q('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      if (err && typeof err === 'object' && dbErrors.has(err)) {
        const mapped = map?.(err);
        if (mapped) throw mapped;
        throw new StoreUnavailableError(store, err);
      }
      throw err;
    } finally {
      // A connection whose rollback failed is in an unknown state: destroy it rather than reuse it.
      client.release(broken);
    }
  }

  /**
   * Listens on `channel` on a dedicated connection outside the pool (a `LISTEN` holds its
   * connection): `onNotify` receives each notification's payload; `onLost` is called once when the
   * connection fails or ends (the subscription is then over; subscribe again to resume).
   */
  async listen(
    channel: string,
    onNotify: (payload: string) => void,
    onLost: (err?: Error) => void,
  ): Promise<PostgresSubscription> {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new TypeError(`invalid channel name ${channel}`);
    this.assertOpen('registry');
    const client = new this.pg.Client({
      connectionString: this.options.url,
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 2000,
    });
    let over = false;
    const end = async () => {
      over = true;
      client.removeAllListeners('notification');
      await client.end().catch(() => {});
    };
    const lost = (err?: Error) => {
      if (over) return;
      void end();
      onLost(err);
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (n) => {
      if (!over && n.channel === channel) onNotify(n.payload ?? '');
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${channel}`);
    } catch (err) {
      await end();
      throw new StoreUnavailableError('registry', err);
    }
    return { close: end };
  }

  private assertOpen(store: StoreName): void {
    if (this.closed) throw new StoreUnavailableError(store, new Error('database is closed'));
  }

  /** Closes the pool (waits for checked-out connections to be released). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

/**
 * A connection URL (PostgreSQL, Redis, …) without its password, for messages and logs: the URL is a
 * secret when it carries one.
 * @public
 */
export function urlWithoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}
