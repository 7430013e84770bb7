/**
 * The console's in-memory feed: replay and resume (`Last-Event-ID`), bounds against a flood of
 * invented agent names, defensive reading of rejected bodies, and seeding from the record store.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AcceptedRecord, LocationReading } from '@geofence/verifier';
import { GeofenceError } from '@geofence/verifier';
import { describe, expect, it } from 'vitest';
import { ConsoleFeed } from '../src/console/feed.js';
import { SqliteRecordStore } from '../src/records.js';
import { acceptedRecord } from './helpers/records.js';

const geo = new GeofenceError('geolocation_policy', 'Geolocation verification failed');
const body = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

function accepted(agentName: string, location?: LocationReading): AcceptedRecord {
  const payload = {
    geographic_region: { region: 'US', state: 'California' },
    ...(location ? { location } : {}),
  };
  return acceptedRecord(body(payload), { agentName, keyid: 'a'.repeat(64) });
}

describe('ConsoleFeed', () => {
  it('replays buffered events to a new subscriber and resumes after a Last-Event-ID', () => {
    const feed = new ConsoleFeed();
    const seen: number[] = [];
    const stop = feed.subscribe((e) => seen.push(e.seq));
    const a = feed.accepted(accepted('agent-1'), 'rec_1');
    const b = feed.rejected(geo, body({ agent_name: 'agent-1' }), 'collector');
    stop();
    feed.accepted(accepted('agent-1'), 'rec_2');
    expect(seen).toEqual([a.seq, b.seq]);
    expect(feed.since().map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(feed.since(a.seq).map((e) => e.record_id ?? e.validation_type)).toEqual([
      'geolocation_policy',
      'rec_2',
    ]);
  });

  it('keeps the last accepted location when a rejection carries none', () => {
    const feed = new ConsoleFeed();
    feed.accepted(accepted('agent-1', { lat: 37.35, lon: -121.95, accuracy: 30, quality: 'GNSS' }), 'rec_1');
    feed.rejected(geo, body({ agent_name: 'agent-1', geographic_region: { region: 'DE' } }), 'collector');
    expect(feed.activityOf('agent-1')).toMatchObject({
      last_verdict: 'rejected',
      last_location: { lat: 37.35, lon: -121.95, accuracy: 30 },
      last_place: { region: 'DE' },
      last_rejection: { validation_type: 'geolocation_policy' },
    });
  });

  it('reads rejected bodies defensively and bounds what a flood can grow', () => {
    const feed = new ConsoleFeed();
    const odd = [
      feed.rejected(geo, new TextEncoder().encode('not json'), 'collector'),
      feed.rejected(geo, body([1, 2]), 'collector'),
      feed.rejected(geo, body({ agent_name: 7, location: { lat: 91, lon: 0 } }), 'collector'),
      feed.rejected(geo, body({ agent_name: 'x'.repeat(5000), pad: 'y'.repeat(20_000) }), 'collector'),
      feed.rejected(geo, body({ agent_name: 'x'.repeat(5000) }), 'collector'),
    ];
    expect(odd.slice(0, 4).map((e) => e.agent_name)).toEqual([undefined, undefined, undefined, undefined]);
    expect(odd[2]?.location).toBeUndefined();
    expect(odd[4]?.agent_name).toHaveLength(256);
    for (let i = 0; i < 12_000; i++) feed.rejected(geo, body({ agent_name: `invented-${i}` }), 'collector');
    expect(feed.since()).toHaveLength(500);
    expect(feed.activityOf('invented-0')).toEqual({});
    expect(feed.activityOf('invented-11999').last_verdict).toBe('rejected');
  });

  it('seeds each agent from the records of the last 24 h', async () => {
    const store = new SqliteRecordStore(join(mkdtempSync(join(tmpdir(), 'gf-feed-')), 'records.db'));
    const rec = (agentName: string, receivedAt: string, payload: unknown) =>
      store.insert(acceptedRecord(body(payload), { agentName, keyid: 'b'.repeat(64), receivedAt }));
    const old = new Date(Date.now() - 3 * 86_400_000).toISOString();
    const recent = new Date(Date.now() - 60_000).toISOString();
    await rec('agent-old', old, { location: { lat: 1, lon: 1 } });
    await rec('agent-new', recent, {
      geographic_region: { region: 'US' },
      location: { lat: 48.1, lon: 11.6, accuracy: 5 },
    });
    const feed = new ConsoleFeed();
    await feed.seed(store);
    await store.close();
    expect(feed.activityOf('agent-old')).toEqual({});
    expect(feed.activityOf('agent-new')).toMatchObject({
      last_seen: recent,
      last_verdict: 'accepted',
      last_location: { lat: 48.1, lon: 11.6, accuracy: 5 },
      last_place: { region: 'US' },
    });
    expect(feed.since()).toEqual([]);
  });
});
