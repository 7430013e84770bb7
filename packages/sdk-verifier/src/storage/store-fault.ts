/**
 * Store faults (SPEC §7 `upstream`): a registry, nonce store or record store that cannot answer —
 * Redis down or frozen, a SQLite file locked by another process, read-only or out of space — is a
 * temporary outage of a dependency, not a bug. It is answered `503 upstream` with `Retry-After`,
 * never `500 internal`, and never as an acceptance: every store error surfaces as the one
 * {@link StoreUnavailableError}, which the problem writers serialise like any other GeofenceError.
 */
import { GeofenceError } from '../errors.js';

/**
 * A dependency of a verifier that can be down; named in problem `details.dependency` and in the
 * reference collector's `/ready` body.
 * @public
 */
export type StoreName = 'nonce_store' | 'registry' | 'record_store';

/**
 * `Retry-After` seconds of a store fault: long enough for a Redis reconnect (ioredis retries at most
 * every 2 s) or a competing SQLite writer to finish, short enough that agents resume quickly.
 * @public
 */
export const STORE_RETRY_AFTER_SECONDS = 2;

/**
 * Default SQLite busy timeout of the SQLite stores, in milliseconds. better-sqlite3 waits for a lock
 * synchronously, on the event loop: a long wait stalls every request of the process, so the wait is
 * short and a held lock is reported as {@link StoreUnavailableError} instead.
 * @public
 */
export const DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 500;

const LABEL: Readonly<Record<StoreName, string>> = {
  nonce_store: 'Nonce store',
  registry: 'Registry',
  record_store: 'Record store',
};

/**
 * A store could not answer (connection lost, command timed out, database locked, read-only or
 * full). A GeofenceError `upstream` with status 503, `Retry-After` {@link STORE_RETRY_AFTER_SECONDS}
 * and `details.dependency` naming the store; the underlying error is kept as `cause` for logs only.
 *
 * @example
 * ```ts
 * try { await nonces.consume(keyid, nonce); }
 * catch (err) { if (err instanceof StoreUnavailableError) console.warn(`${err.store} is down`); }
 * ```
 * @public
 */
export class StoreUnavailableError extends GeofenceError {
  /** Which store failed. */
  readonly store: StoreName;

  /**
   * @param store - which store failed
   * @param cause - the driver's error (never serialised into the problem body)
   */
  constructor(store: StoreName, cause?: unknown) {
    super('upstream', `${LABEL[store]} unavailable`, {
      status: 503,
      retryAfter: STORE_RETRY_AFTER_SECONDS,
      details: { dependency: store },
      cause,
    });
    this.name = 'StoreUnavailableError';
    this.store = store;
  }
}

// Result codes meaning "the database cannot serve right now" rather than "this statement is wrong":
// locks held elsewhere, a read-only file or file system, I/O errors, a full disk, a vanished file.
const SQLITE_FAULT = /^SQLITE_(BUSY|LOCKED|READONLY|IOERR|FULL|CANTOPEN|PROTOCOL)(_|$)/;

/**
 * Whether `err` is a better-sqlite3 error that means the database is unavailable (busy, locked,
 * read-only, I/O error, full, cannot open) — as opposed to a constraint violation or a bug.
 * @public
 */
export function isSqliteFault(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && SQLITE_FAULT.test(code);
}

// errno codes meaning the file system cannot take the write now (full, read-only, I/O, quota, busy).
const FILE_FAULT = new Set(['ENOSPC', 'EROFS', 'EIO', 'EDQUOT', 'EBUSY', 'EACCES', 'EPERM']);

/** Whether `err` is a file-system error that makes a file-backed store unavailable. */
export function isFileFault(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && FILE_FAULT.has(code);
}

/**
 * Runs the synchronous calls of one SQLite store. A {@link isSqliteFault | fault} becomes
 * {@link StoreUnavailableError}; other errors pass unchanged. After a fault the guard stops waiting
 * for locks (`busy_timeout = 0`) until a call succeeds again: while another process holds the lock,
 * each queued request fails at once instead of blocking the event loop for the busy timeout in turn.
 * @public
 */
export class SqliteFaultGuard {
  private failing = false;
  /** Which store this guards (named in its errors). */
  readonly store: StoreName;

  /**
   * Sets the connection's busy timeout.
   * @param db - the better-sqlite3 handle (only its `pragma` method is used)
   * @param store - which store this is (named in the error)
   * @param busyTimeoutMs - how long a call waits for a lock while the store is healthy
   */
  constructor(
    private readonly db: { pragma(source: string): unknown },
    store: StoreName,
    private readonly busyTimeoutMs: number = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
  ) {
    this.store = store;
    if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0)
      throw new TypeError('busyTimeoutMs must be a non-negative integer');
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  }

  /** Runs `fn`, mapping database faults to {@link StoreUnavailableError}. */
  run<T>(fn: () => T): T {
    let result: T;
    try {
      result = fn();
    } catch (err) {
      if (!isSqliteFault(err)) throw err;
      if (!this.failing) {
        this.failing = true;
        this.db.pragma('busy_timeout = 0');
      }
      throw new StoreUnavailableError(this.store, err);
    }
    if (this.failing) {
      this.failing = false;
      this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
    }
    return result;
  }
}

/**
 * Awaits a call to a networked store (Redis): any error it raises — connection refused or closed,
 * command timeout, offline queue disabled, an error reply such as `LOADING` or `OOM` — becomes
 * {@link StoreUnavailableError}. The caller cannot know whether the command ran, so it must treat the
 * operation as not done (a consume that may have spent the nonce still rejects the request).
 */
export async function storeCall<T>(store: StoreName, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof GeofenceError) throw err;
    throw new StoreUnavailableError(store, err);
  }
}
