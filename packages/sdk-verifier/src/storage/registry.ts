/**
 * Registry (allowlist) of agents, SPEC §10: interface, record schema and the shared in-memory index
 * that gives both implementations O(1) lookups by keyid and by agent_name.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { agentNameSchema, keyidSchema, PAYLOAD_ALGORITHMS } from '@geofence/protocol';
import { z } from 'zod';
import { geoPolicySchema } from '../geo.js';

/**
 * Agent lifecycle: `pending` (enrolled, awaiting operator approval), `active`, `revoked`.
 * @public
 */
export const AGENT_STATUSES = Object.freeze(['pending', 'active', 'revoked'] as const);
/**
 * One of {@link AGENT_STATUSES}.
 * @public
 */
export type AgentStatus = (typeof AGENT_STATUSES)[number];

const pem = z
  .string()
  .max(16_384)
  .regex(
    /^-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PUBLIC KEY-----\r?\n?$/,
    'must be an SPKI PEM',
  );
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');
const isoDateTime = z.iso.datetime({ offset: true });

/**
 * keyid of a public key: lowercase hex SHA-256 of its SubjectPublicKeyInfo DER (SPEC §3).
 * @public
 */
export function keyidOfPublicKey(key: KeyObject | string): string {
  const k = typeof key === 'string' ? createPublicKey(key) : key;
  const der = k.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex');
}

/**
 * Agent record (SPEC §10). Validation also checks that `keyid` is the hash of
 * `app_public_key_pem` and that the key type matches `alg`, so a record can never bind a keyid to
 * another key.
 * @public
 */
export const agentRecordSchema = z
  .strictObject({
    agent_name: agentNameSchema,
    keyid: keyidSchema,
    alg: z.enum(PAYLOAD_ALGORITHMS),
    app_public_key_pem: pem,
    ak_public_pem: pem.optional(),
    ek_public_hash: hex64.optional(),
    ek_cert_issuer: z.string().max(1024).optional(),
    workload_digest: z.string().max(256).optional(),
    pcr_policy: z.record(z.string(), z.unknown()).optional(),
    sensor_id_hash: hex64.optional(),
    geo_policy: geoPolicySchema,
    status: z.enum(AGENT_STATUSES),
    enrolled_at: isoDateTime,
    updated_at: isoDateTime,
    /** Free-form, non-secret extension data (for example enrolment details). */
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .superRefine((r, ctx) => {
    let key: KeyObject;
    try {
      key = createPublicKey(r.app_public_key_pem);
    } catch {
      ctx.addIssue({ code: 'custom', path: ['app_public_key_pem'], message: 'not a parseable public key' });
      return;
    }
    if (keyidOfPublicKey(key) !== r.keyid) {
      ctx.addIssue({
        code: 'custom',
        path: ['keyid'],
        message: 'keyid is not the SHA-256 of app_public_key_pem',
      });
    }
    const ok =
      r.alg === 'ecdsa-p256-sha256'
        ? key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
        : key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048;
    if (!ok) ctx.addIssue({ code: 'custom', path: ['alg'], message: `key type does not match ${r.alg}` });
  });
/**
 * An agent record.
 * @public
 */
export type AgentRecord = z.infer<typeof agentRecordSchema>;
/**
 * Input of {@link Registry.put}: timestamps are optional (set by the registry).
 * @public
 */
export type AgentRecordInput = Omit<AgentRecord, 'enrolled_at' | 'updated_at'> &
  Partial<Pick<AgentRecord, 'enrolled_at' | 'updated_at'>>;

/**
 * Stable codes of {@link RegistryError}.
 * @public
 */
export type RegistryErrorCode =
  | 'invalid_record'
  | 'keyid_conflict'
  | 'conflict'
  | 'not_found'
  | 'storage'
  | 'unavailable';

/**
 * Registry failure with a stable `code`.
 * @public
 */
export class RegistryError extends Error {
  /** Stable code. */
  readonly code: RegistryErrorCode;
  /** @param code - stable code; @param message - description; @param cause - underlying error */
  constructor(code: RegistryErrorCode, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'RegistryError';
    this.code = code;
  }
}

/**
 * Registry (allowlist) of agents. Implementations: {@link SqliteRegistry} (default, durable, shared
 * by processes on one host) and {@link JsonFileRegistry} (operator-edited file, hot-reloaded).
 * Lookups are O(1) (in-memory index kept in sync with the storage); every write is validated.
 * Records returned are frozen; replace them with {@link Registry.put}.
 * @public
 */
export interface Registry {
  /** Record whose AppSK keyid is `keyid`. */
  getByKeyid(keyid: string): Promise<AgentRecord | undefined>;
  /** Record of `agentName`. */
  getByName(agentName: string): Promise<AgentRecord | undefined>;
  /** All records, optionally filtered by status, ordered by agent_name. */
  list(filter?: { status?: AgentStatus }): Promise<AgentRecord[]>;
  /** Insert or replace the record of `record.agent_name` (validated; keyid must stay unique). */
  put(record: AgentRecordInput): Promise<AgentRecord>;
  /**
   * Compare-and-set: writes `record` only when the stored record of `record.agent_name` still is
   * what the caller read — none when `expected` is `null`, otherwise one with the expected keyid
   * and EK hash — checked and written atomically against every writer of the storage (other
   * processes included). Throws {@link RegistryError} `conflict` otherwise. Enrolment writes through
   * this, so two racing enrolments for one name cannot both succeed.
   */
  putIfMatch(record: AgentRecordInput, expected: RegistryExpectation | null): Promise<AgentRecord>;
  /** Change an agent's status. Throws `not_found`. */
  setStatus(agentName: string, status: AgentStatus): Promise<AgentRecord>;
  /** Delete an agent; true when it existed. */
  delete(agentName: string): Promise<boolean>;
  /** Re-read the storage now (changes are also picked up automatically). */
  reload(): Promise<void>;
  /** Release resources (file watchers, database handles). */
  close(): Promise<void>;
}

/**
 * The identity a compare-and-set write ({@link Registry.putIfMatch}) expects the stored record to
 * still have.
 * @public
 */
export interface RegistryExpectation {
  /** keyid of the stored record. */
  readonly keyid: string;
  /** EK hash of the stored record; `undefined` when it has no EK binding. */
  readonly ek_public_hash: string | undefined;
}

/**
 * The expectation that matches `record` as it is now (for {@link Registry.putIfMatch}).
 * @public
 */
export function expectationOf(record: AgentRecord | undefined): RegistryExpectation | null {
  return record ? { keyid: record.keyid, ek_public_hash: record.ek_public_hash } : null;
}

/** Throws `conflict` unless `current` is what `expected` describes. */
export function checkExpectation(
  agentName: string,
  current: AgentRecord | undefined,
  expected: RegistryExpectation | null,
): void {
  const ok =
    expected === null
      ? current === undefined
      : current !== undefined &&
        current.keyid === expected.keyid &&
        current.ek_public_hash === expected.ek_public_hash;
  if (!ok) {
    throw new RegistryError(
      'conflict',
      `the record of ${agentName} changed since it was read (another enrolment or an operator wrote it)`,
    );
  }
}

/**
 * Validate a record (throws {@link RegistryError} `invalid_record` with the zod issues in the message).
 * @public
 */
export function validateAgentRecord(record: unknown): AgentRecord {
  const parsed = agentRecordSchema.safeParse(record);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join('.') || '(record)'}: ${i.message}`).join('; ');
    throw new RegistryError('invalid_record', `invalid agent record: ${msg}`, parsed.error);
  }
  return deepFreeze(parsed.data);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * The decision of every registry's `setStatus`: the record as stored, with `status`; applied to the
 * row as the write sees it, so a status change never writes back a key a concurrent re-enrolment
 * has just replaced. An agent that is not registered is `not_found`.
 */
export function withStatus(
  agentName: string,
  status: AgentStatus,
): (current: AgentRecord | undefined) => AgentRecordInput {
  return (current) => {
    if (!current) throw new RegistryError('not_found', `agent ${agentName} is not registered`);
    return { ...current, status };
  };
}

/** Fill timestamps of a record being written, keeping `enrolled_at` of an existing record. */
export function stampRecord(input: AgentRecordInput, existing: AgentRecord | undefined, now: Date): unknown {
  return {
    ...input,
    enrolled_at: input.enrolled_at ?? existing?.enrolled_at ?? now.toISOString(),
    updated_at: now.toISOString(),
  };
}

/**
 * Two hash maps (agent_name → record, keyid → record) rebuilt atomically: readers never see a
 * half-applied reload.
 */
export class RecordIndex {
  private byName = new Map<string, AgentRecord>();
  private byKeyid = new Map<string, AgentRecord>();

  /** Replace the whole content; throws keyid_conflict when two records share a keyid. */
  replaceAll(records: Iterable<AgentRecord>): void {
    const byName = new Map<string, AgentRecord>();
    const byKeyid = new Map<string, AgentRecord>();
    for (const r of records) {
      const other = byKeyid.get(r.keyid);
      if (other && other.agent_name !== r.agent_name) {
        throw new RegistryError(
          'keyid_conflict',
          `keyid of ${r.agent_name} is already used by ${other.agent_name}`,
        );
      }
      byName.set(r.agent_name, r);
      byKeyid.set(r.keyid, r);
    }
    this.byName = byName;
    this.byKeyid = byKeyid;
  }

  /** Throws keyid_conflict when `r.keyid` belongs to another agent. */
  checkUnique(r: AgentRecord): void {
    const other = this.byKeyid.get(r.keyid);
    if (other && other.agent_name !== r.agent_name) {
      throw new RegistryError(
        'keyid_conflict',
        `keyid of ${r.agent_name} is already used by ${other.agent_name}`,
      );
    }
  }

  set(r: AgentRecord): void {
    const old = this.byName.get(r.agent_name);
    if (old && old.keyid !== r.keyid) this.byKeyid.delete(old.keyid);
    this.byName.set(r.agent_name, r);
    this.byKeyid.set(r.keyid, r);
  }

  delete(agentName: string): boolean {
    const old = this.byName.get(agentName);
    if (!old) return false;
    this.byName.delete(agentName);
    this.byKeyid.delete(old.keyid);
    return true;
  }

  byKey(keyid: string): AgentRecord | undefined {
    return this.byKeyid.get(keyid);
  }

  byAgent(name: string): AgentRecord | undefined {
    return this.byName.get(name);
  }

  all(): AgentRecord[] {
    return [...this.byName.values()].sort((a, b) => (a.agent_name < b.agent_name ? -1 : 1));
  }
}

const keyCache = new WeakMap<AgentRecord, KeyObject>();

/**
 * The AppSK public key of a record as a KeyObject, parsed once per record object (records are
 * immutable, so the cache never serves a stale key).
 * @public
 */
export function recordPublicKey(record: AgentRecord): KeyObject {
  let k = keyCache.get(record);
  if (!k) {
    k = createPublicKey(record.app_public_key_pem);
    keyCache.set(record, k);
  }
  return k;
}
