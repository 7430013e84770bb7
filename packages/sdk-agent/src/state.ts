import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { AgentError } from './errors.js';

/** Algorithms an agent's application signing key (AppSK) can use (SPEC §3). */
export type AppKeyAlgorithm = 'ecc-p256' | 'rsa-2048';

/**
 * A TPM key as plain data, structurally identical to `TpmKey` of `@geofence/native-tpm`
 * (`public` = TPM2B_PUBLIC, `name` = TPM object Name, `blob` = loadable private/public blob,
 * `handle` = persistent or loaded handle).
 */
export interface StoredTpmKey {
  /** TPM2B_PUBLIC bytes. */
  public: Uint8Array;
  /** TPM object Name (nameAlg id ‖ H(TPMT_PUBLIC)). */
  name: Uint8Array;
  /** Opaque blob that `Tpm.loadKey` accepts (absent for persistent keys). */
  blob?: Uint8Array;
  /** Persistent handle (or a transient handle after loading; never stored). */
  handle?: number;
}

/**
 * The part of `Tpm` (from `@geofence/native-tpm`) that {@link AgentState.loadOrCreateAppKey} needs.
 * Declared structurally so the state module stays usable with any conforming TPM wrapper.
 */
export interface AppKeyTpm {
  /** Creates an unrestricted signing key under the storage hierarchy. */
  createSigningKey(opts: { alg: AppKeyAlgorithm; persistAt?: number }): Promise<StoredTpmKey> | StoredTpmKey;
  /** Loads a key from its stored blob, returning it with a live handle. */
  loadKey(blob: Uint8Array): Promise<StoredTpmKey> | StoredTpmKey;
}

/** Stable error codes of {@link AgentStateError}. */
export type AgentStateErrorCode =
  | 'invalid_name'
  | 'not_a_directory'
  | 'corrupt_state'
  | 'key_alg_mismatch'
  | 'unloadable_key';

/** A problem with the agent's state directory or a file in it. */
export class AgentStateError extends AgentError<AgentStateErrorCode> {
  constructor(code: AgentStateErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AgentStateError';
  }
}

const APP_KEY_FILE = 'app-key.json';
const ENROLLMENT_FILE = 'enrollment.json';
const AGENT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Default state directory of an agent: `~/.geofence/<agentName>/` (SPEC §3).
 * The name must be a single safe path segment (letters, digits, `.`, `_`, `-`; not starting with a dot).
 */
export function defaultStateDir(agentName: string): string {
  if (!AGENT_NAME_RE.test(agentName)) {
    throw new AgentStateError(
      'invalid_name',
      `agent name ${JSON.stringify(agentName)} is not a safe path segment`,
    );
  }
  return join(homedir(), '.geofence', agentName);
}

/**
 * JSON encoding for state files: `Uint8Array` values become `{ "$base64": "…" }` so keys and
 * enrolment results (which carry binary TPM structures) round-trip exactly.
 */
function replacer(this: unknown, key: string, value: unknown): unknown {
  // Read the holder's original value: JSON.stringify has already applied Buffer#toJSON to `value`.
  const original = (this as Record<string, unknown>)[key];
  if (original instanceof Uint8Array) return { $base64: Buffer.from(original).toString('base64') };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    typeof (value as { $base64?: unknown }).$base64 === 'string'
  ) {
    return new Uint8Array(Buffer.from((value as { $base64: string }).$base64, 'base64'));
  }
  return value;
}

interface AppKeyFile {
  version: 1;
  alg: AppKeyAlgorithm;
  created_at: string;
  key: StoredTpmKey;
}

function isStoredKey(v: unknown): v is StoredTpmKey {
  if (v === null || typeof v !== 'object') return false;
  const k = v as Record<string, unknown>;
  return (
    k.public instanceof Uint8Array &&
    k.name instanceof Uint8Array &&
    (k.blob === undefined || k.blob instanceof Uint8Array) &&
    (k.handle === undefined || (typeof k.handle === 'number' && Number.isInteger(k.handle)))
  );
}

/**
 * The agent's on-disk state: a directory (mode 0700) holding the AppSK key blob, the enrolment
 * result and the outbox database. Files are written atomically (temp file + rename, mode 0600).
 *
 * @example
 * ```ts
 * const state = AgentState.open(defaultStateDir('agent-001'));
 * const key = await state.loadOrCreateAppKey(tpm, 'ecc-p256');
 * ```
 */
export class AgentState {
  /** Absolute path of the state directory. */
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Opens (creating if needed) a state directory. An existing directory readable by group or
   * others is tightened to 0700, because it holds key material references and enrolment results.
   */
  static open(dir: string): AgentState {
    const abs = resolve(dir);
    mkdirSync(abs, { recursive: true, mode: 0o700 });
    const st = lstatSync(abs);
    if (!st.isDirectory()) {
      throw new AgentStateError('not_a_directory', `state path ${abs} is not a directory`);
    }
    if ((st.mode & 0o077) !== 0) chmodSync(abs, 0o700);
    return new AgentState(abs);
  }

  /** Path of a file inside the state directory (e.g. the outbox database). */
  path(file: string): string {
    return join(this.dir, file);
  }

  /**
   * Returns the AppSK: on first use creates it in the TPM with `createSigningKey({ alg })` and
   * stores the key blob; afterwards reloads it from the stored blob (`loadKey`), or uses the stored
   * persistent handle. The key is never silently replaced: a stored key of another algorithm, or a
   * blob the TPM refuses (e.g. a different TPM or a cleared owner hierarchy), is an error, because a
   * new key means a new identity that has to be enrolled again.
   *
   * Two processes racing on a fresh directory end up with the same key: the file is published with
   * an exclusive `link`, and the loser reloads the winner's key.
   */
  async loadOrCreateAppKey(tpm: AppKeyTpm, alg: AppKeyAlgorithm): Promise<StoredTpmKey> {
    const existing = this.readAppKeyFile();
    if (existing) return this.reload(tpm, existing, alg);
    const created = await tpm.createSigningKey({ alg });
    const file: AppKeyFile = {
      version: 1,
      alg,
      created_at: new Date().toISOString(),
      key: { public: created.public, name: created.name, ...(created.blob ? { blob: created.blob } : {}) },
    };
    if (!created.blob && created.handle !== undefined) file.key.handle = created.handle;
    if (this.publishExclusive(APP_KEY_FILE, file)) return created;
    const winner = this.readAppKeyFile();
    if (!winner) throw new AgentStateError('corrupt_state', 'app key file vanished while publishing');
    return this.reload(tpm, winner, alg);
  }

  /** The stored AppSK record without touching the TPM (public part, name, blob), or `null`. */
  storedAppKey(): { alg: AppKeyAlgorithm; key: StoredTpmKey; createdAt: string } | null {
    const f = this.readAppKeyFile();
    return f ? { alg: f.alg, key: f.key, createdAt: f.created_at } : null;
  }

  /** Stores the enrolment result (any JSON-serialisable object; `Uint8Array` values are preserved). */
  saveEnrollment(obj: object): void {
    this.writeAtomic(ENROLLMENT_FILE, obj);
  }

  /** The stored enrolment result, or `null` when the agent has not enrolled. */
  enrollment<T = Record<string, unknown>>(): T | null {
    const v = this.readJson(ENROLLMENT_FILE);
    if (v === undefined) return null;
    if (v === null || typeof v !== 'object') {
      throw new AgentStateError('corrupt_state', `${this.path(ENROLLMENT_FILE)} does not hold an object`);
    }
    return v as T;
  }

  /** Removes the stored enrolment result (e.g. after the collector revoked the agent). */
  clearEnrollment(): void {
    try {
      unlinkSync(this.path(ENROLLMENT_FILE));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  private async reload(tpm: AppKeyTpm, file: AppKeyFile, alg: AppKeyAlgorithm): Promise<StoredTpmKey> {
    if (file.alg !== alg) {
      throw new AgentStateError(
        'key_alg_mismatch',
        `state ${this.dir} holds a ${file.alg} app key but ${alg} was requested; use another stateDir to create a new identity`,
      );
    }
    if (!file.key.blob) return file.key;
    try {
      const loaded = await tpm.loadKey(file.key.blob);
      return { ...loaded, public: file.key.public, name: file.key.name, blob: file.key.blob };
    } catch (err) {
      throw new AgentStateError(
        'unloadable_key',
        `the TPM refused the stored app key of ${this.dir} (different TPM or cleared hierarchy?)`,
        { cause: err },
      );
    }
  }

  private readAppKeyFile(): AppKeyFile | null {
    const v = this.readJson(APP_KEY_FILE);
    if (v === undefined) return null;
    const f = v as Partial<AppKeyFile>;
    if (
      f === null ||
      typeof f !== 'object' ||
      f.version !== 1 ||
      (f.alg !== 'ecc-p256' && f.alg !== 'rsa-2048') ||
      typeof f.created_at !== 'string' ||
      !isStoredKey(f.key) ||
      (f.key.blob === undefined && f.key.handle === undefined)
    ) {
      throw new AgentStateError('corrupt_state', `${this.path(APP_KEY_FILE)} is not a valid app key file`);
    }
    return f as AppKeyFile;
  }

  private readJson(file: string): unknown {
    let text: string;
    try {
      text = readFileSync(this.path(file), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return JSON.parse(text, reviver);
    } catch (err) {
      throw new AgentStateError('corrupt_state', `${this.path(file)} is not valid JSON`, { cause: err });
    }
  }

  private tempPath(file: string): string {
    return this.path(`.${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  }

  private writeAtomic(file: string, value: unknown): void {
    const tmp = this.tempPath(file);
    writeFileSync(tmp, `${JSON.stringify(value, replacer, 2)}\n`, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, this.path(file));
  }

  /** Publishes `file` only if it does not exist yet; returns false when another writer won. */
  private publishExclusive(file: string, value: unknown): boolean {
    const tmp = this.tempPath(file);
    writeFileSync(tmp, `${JSON.stringify(value, replacer, 2)}\n`, { mode: 0o600, flag: 'wx' });
    try {
      linkSync(tmp, this.path(file));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    } finally {
      unlinkSync(tmp);
    }
  }
}
