/**
 * Lazy loader of better-sqlite3: the only native dependency of this package, optional, and loaded
 * only when a SQLite-backed class is opened. A pure verifier (memory/Redis nonces, JSON registry)
 * never loads native code.
 */
import type BetterSqlite3 from 'better-sqlite3';

/** A better-sqlite3 database handle. */
export type SqliteDatabase = BetterSqlite3.Database;
/** A prepared statement. */
export type SqliteStatement = BetterSqlite3.Statement;

let ctor: Promise<typeof BetterSqlite3> | undefined;

/** Open a database with the durability settings every SQLite store here uses. */
export async function openSqlite(path: string): Promise<SqliteDatabase> {
  ctor ??= import('better-sqlite3').then(
    (m) => (m as unknown as { default: typeof BetterSqlite3 }).default,
    (err: unknown) => {
      ctor = undefined;
      throw new Error(
        'The SQLite stores need the optional dependency better-sqlite3 (npm i better-sqlite3); ' +
          'use the memory/Redis nonce store or the JSON registry otherwise.',
        { cause: err },
      );
    },
  );
  const Database = await ctor;
  const db = new Database(path);
  // WAL + synchronous=FULL: an acknowledged write survives a crash or power loss (SPEC §10).
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  // The busy timeout is set by each store's SqliteFaultGuard (short: the wait blocks the event loop).
  db.pragma('foreign_keys = ON');
  return db;
}
