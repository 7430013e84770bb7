/**
 * In-memory {@link RecordStore}: the collector's default record sink, and a reference for the
 * store contract. Records are lost on restart.
 */
import { randomUUID } from 'node:crypto';
import type { RecordSink } from '../pipeline/types.js';
import type { AcceptedRecord, RecordPage, RecordQuery, RecordStore, StoredRecord } from './record-store.js';

/**
 * An in-memory record store that keeps the newest `max` accepted records (default 10 000).
 * @public
 */
export interface MemoryRecordSink extends RecordStore {
  /** The sink to pass as `onAccept` (bound to this store). */
  onAccept: RecordSink;
  /** Stored records with their ids, oldest first. */
  records(): StoredRecord[];
}

/**
 * Create an in-memory record store (the default `onAccept` of the collector). Production
 * deployments pass a durable store's `insert` (the reference server stores to SQLite or PostgreSQL).
 * @public
 */
export function createMemoryRecordSink(options: { max?: number } = {}): MemoryRecordSink {
  const max = options.max ?? 10_000;
  const stored: StoredRecord[] = [];
  let seq = 0;
  const insert = async (record: AcceptedRecord): Promise<string> => {
    const id = randomUUID();
    seq += 1;
    stored.push({ ...record, id, seq });
    if (stored.length > max) stored.splice(0, stored.length - max);
    return id;
  };
  return {
    onAccept: insert,
    insert,
    records: () => [...stored],
    get: async (id) => stored.find((r) => r.id === id),
    async list(q: RecordQuery): Promise<RecordPage> {
      const since = q.since === undefined ? undefined : Date.parse(q.since);
      const match = stored.filter(
        (r) =>
          (q.agent === undefined || r.agentName === q.agent) &&
          (since === undefined || Date.parse(r.receivedAt) >= since) &&
          (q.after === undefined || r.seq > q.after),
      );
      const page = match.slice(0, q.limit);
      const last = page[page.length - 1];
      return { records: page, next: match.length > q.limit && last ? last.seq : null };
    },
    count: async () => stored.length,
    ping: async () => {},
    close: async () => {},
  };
}
