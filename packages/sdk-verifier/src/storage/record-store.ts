/**
 * The accepted record (SPEC §10 data provenance) and the port of the stores that keep it: one
 * camelCase type from the collector pipeline through every store to the API that serves it.
 */
import type { MetricsPayload } from '@geofence/protocol';
import type { GeoMatch } from '../geo.js';

/**
 * Facts of the RFC 9421 signature a record was accepted with.
 * @public
 */
export interface RecordHttpSignature {
  /** `keyid` parameter (the AppSK keyid). */
  keyid: string;
  /** Algorithm the signature was verified with. */
  alg: string;
  /** `created` parameter, seconds since the epoch. */
  created?: number | undefined;
  /** `expires` parameter, seconds since the epoch. */
  expires?: number | undefined;
  /** Covered components, in order. */
  components: string[];
}

/**
 * What the collector decided at acceptance.
 * @public
 */
export interface RecordVerdict {
  /** The checks that ran and passed, in order. */
  checks: string[];
  /**
   * Per geo policy evaluated (agent's, then global), the allow entry that matched, in the policy's
   * spelling (the canonical name, not the agent's string).
   */
  geo?: GeoMatch[] | undefined;
  /** Accuracy radius (metres) of the payload's reading, when it has one (wire name: stored and served as JSON). */
  accuracy_m?: number | undefined;
  /** Fix time of the payload's reading (ISO 8601), when it has one. */
  fix_time?: string | undefined;
}

/**
 * An accepted `POST /metrics`, as handed to the record sink and kept by a {@link RecordStore}.
 * @public
 */
export interface AcceptedRecord {
  /** Agent name from the registry record. */
  agentName: string;
  /** AppSK keyid. */
  keyid: string;
  /** ISO 8601 time the collector accepted the message. */
  receivedAt: string;
  /** The parsed payload (the same bytes as `rawBody`). */
  payload: MetricsPayload;
  /** The body bytes exactly as received (re-verifiable offline). */
  rawBody: Uint8Array;
  /** Header signature facts, or `null` when an enforcing gateway stripped the signature. */
  httpSignature: RecordHttpSignature | null;
  /** Which checks ran and passed. */
  verdict: RecordVerdict;
  /**
   * The request's `content-type`, `content-digest`, `workload-geo-id`, `signature-input` and
   * `signature` fields as received (those present): with `rawBody`, everything needed to re-verify
   * the HTTP signature offline, not only the payload signature.
   */
  headers: Record<string, string>;
}

/**
 * An accepted record as a store returns it.
 * @public
 */
export interface StoredRecord extends AcceptedRecord {
  /** Record id (the `record_id` answered to the agent). */
  id: string;
  /** Insertion sequence number of the store: the paging cursor of {@link RecordStore.list}. */
  seq: number;
}

/**
 * Query of {@link RecordStore.list}.
 * @public
 */
export interface RecordQuery {
  /** Only this agent's records. */
  agent?: string | undefined;
  /** Only records received at or after this ISO 8601 time. */
  since?: string | undefined;
  /** Page cursor: only records with a `seq` greater than this (a previous page's `next`). */
  after?: number | undefined;
  /** Page size (1–1000). */
  limit: number;
}

/**
 * One page of {@link RecordStore.list}, in insertion order.
 * @public
 */
export interface RecordPage {
  /** The records of this page. */
  records: StoredRecord[];
  /** Cursor of the next page (pass as `after`), `null` on the last page. */
  next: number | null;
}

/**
 * Durable store of accepted records. `insert` resolves only once the record is durable (a collector
 * answers 200 after it, so an acknowledged record survives a crash); an unavailable store rejects with
 * `StoreUnavailableError` (`503 upstream`, `record_store`).
 * @public
 */
export interface RecordStore {
  /** Stores a record durably and returns its new id. */
  insert(record: AcceptedRecord): Promise<string>;
  /** The record with this id. */
  get(id: string): Promise<StoredRecord | undefined>;
  /** Pages through records in insertion order. */
  list(query: RecordQuery): Promise<RecordPage>;
  /** Number of stored records. */
  count(): Promise<number>;
  /** Readiness: resolves when a record could be stored now, rejects otherwise. */
  ping(): Promise<void>;
  /** Releases the store's resources. */
  close(): Promise<void>;
}

/**
 * The `verdict` as a store kept it, read back: the checks, geo matches, accuracy and fix time
 * (older rows may hold more).
 * @public
 */
export function readRecordVerdict(stored: unknown): RecordVerdict {
  const v = (stored ?? {}) as { checks?: unknown; geo?: unknown; accuracy_m?: unknown; fix_time?: unknown };
  const checks = Array.isArray(v.checks) ? v.checks.filter((c): c is string => typeof c === 'string') : [];
  return {
    checks,
    ...(Array.isArray(v.geo) ? { geo: v.geo as GeoMatch[] } : {}),
    ...(typeof v.accuracy_m === 'number' ? { accuracy_m: v.accuracy_m } : {}),
    ...(typeof v.fix_time === 'string' ? { fix_time: v.fix_time } : {}),
  };
}
