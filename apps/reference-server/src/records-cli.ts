/**
 * `geofence records list|show`: the durable record store read on the local data directory, through
 * the record store API (the same rows `GET /metrics/records` pages).
 */
import type { Config } from './config.js';
import { err, type OutputFormat, printJson, printTable } from './output.js';
import { type RecordJson, recordJson } from './record-json.js';
import { openRecords } from './runtime.js';

/** Filters of `records list`. */
export interface RecordsListOptions {
  agent?: string | undefined;
  /** ISO 8601 time: only records received at or after it. */
  since?: string | undefined;
  /** Page cursor printed by a previous listing (`next`). */
  after?: number | undefined;
  limit: number;
}

function place(r: RecordJson): string {
  const g = (r.payload as { geographic_region?: Record<string, unknown> } | null)?.geographic_region;
  return g ? [g.region, g.state, g.city].filter((x) => typeof x === 'string').join('/') : '-';
}

/**
 * Prints one page of records, oldest first: a table (and the cursor of the next page on stderr), or
 * (`json`) `{records: [...], next}` as `GET /metrics/records` answers. 2 for an invalid `since`.
 */
export async function recordsList(
  cfg: Config,
  o: RecordsListOptions,
  format: OutputFormat = 'table',
): Promise<number> {
  if (o.since !== undefined && Number.isNaN(Date.parse(o.since))) {
    err(`--since must be an ISO 8601 time, not ${JSON.stringify(o.since)}`);
    return 2;
  }
  const records = await openRecords(cfg);
  try {
    const page = await records.list({
      agent: o.agent,
      since: o.since === undefined ? undefined : new Date(o.since).toISOString(),
      after: o.after,
      limit: o.limit,
    });
    const rows = page.records.map(recordJson);
    const next = page.next === null ? null : String(page.next);
    if (format === 'json') {
      printJson({ records: rows, next });
      return 0;
    }
    printTable([
      ['record_id', 'agent_name', 'received_at', 'place'],
      ...rows.map((r) => [r.record_id, r.agent_name, r.received_at, place(r)]),
    ]);
    if (next !== null) process.stderr.write(`geofence: more records: --after ${next}\n`);
    return 0;
  } finally {
    await records.close();
  }
}

/** Prints one record (fields as a two-column table, or the JSON of `records list`). 2 when unknown. */
export async function recordsShow(cfg: Config, id: string, format: OutputFormat = 'table'): Promise<number> {
  const records = await openRecords(cfg);
  try {
    const rec = await records.get(id);
    if (!rec) {
      err(`record ${id} not found`);
      return 2;
    }
    const r = recordJson(rec);
    if (format === 'json') {
      printJson(r);
      return 0;
    }
    const p = (r.payload ?? {}) as Record<string, unknown>;
    printTable([
      ['record_id', r.record_id],
      ['agent_name', r.agent_name],
      ['keyid', r.keyid],
      ['received_at', r.received_at],
      ['timestamp', String(p.timestamp ?? '-')],
      ['place', place(r)],
      ['location', p.location ? JSON.stringify(p.location) : '-'],
      ['metrics', JSON.stringify(p.metrics ?? null)],
      ['verdict', JSON.stringify(r.verdict)],
    ]);
    return 0;
  } finally {
    await records.close();
  }
}
