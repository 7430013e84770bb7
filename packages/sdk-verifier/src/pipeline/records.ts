import { randomUUID } from 'node:crypto';
import type { AcceptedRecord, RecordSink } from './types.js';

/**
 * An in-memory record sink: keeps the newest `max` accepted records (default 10 000).
 * @public
 */
export interface MemoryRecordSink {
  /** The sink to pass as `onAccept`. */
  onAccept: RecordSink;
  /** Stored records with their ids, oldest first. */
  records(): Array<AcceptedRecord & { id: string }>;
}

/**
 * Create an in-memory record sink (the default `onAccept` of the collector). Records are lost on
 * restart: production deployments pass a durable sink (the reference server stores to SQLite).
 * @public
 */
export function createMemoryRecordSink(options: { max?: number } = {}): MemoryRecordSink {
  const max = options.max ?? 10_000;
  const stored: Array<AcceptedRecord & { id: string }> = [];
  return {
    onAccept(record) {
      const id = randomUUID();
      stored.push({ ...record, id });
      if (stored.length > max) stored.splice(0, stored.length - max);
      return id;
    },
    records: () => [...stored],
  };
}
