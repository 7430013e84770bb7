/**
 * Pending enrolments on disk: what one process (a collector worker) stores, another takes, once.
 * Two stores on one file stand for two worker processes: SQLite sees them as two connections either way.
 */
import { join } from 'node:path';
import type { PendingEnrollmentRecord } from '@geofence/verifier';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlitePendingEnrollmentStore } from '../src/pending-enrollments.js';
import { testDataDir } from './helpers/env.js';

const record = (n: number) =>
  ({
    request: { n },
    ek_hash: 'e'.repeat(64),
    secret: `secret-${n}`,
    nonce: `nonce-${n}`,
  }) as unknown as PendingEnrollmentRecord;
const inFiveMinutes = () => new Date(Date.now() + 300_000);

let a: SqlitePendingEnrollmentStore;
let b: SqlitePendingEnrollmentStore;
let dir: string;

beforeAll(async () => {
  dir = (await testDataDir('pending')).dir;
  a = new SqlitePendingEnrollmentStore(join(dir, 'pending.db'));
  b = new SqlitePendingEnrollmentStore(join(dir, 'pending.db'));
});

afterAll(() => {
  a?.close();
  b?.close();
});

describe('SqlitePendingEnrollmentStore', () => {
  it('hands a pending enrolment stored by one process to another, once', async () => {
    await a.put('enr-1', record(1), inFiveMinutes());
    expect(await b.take('enr-1', new Date())).toEqual({ status: 'ok', value: record(1) });
    expect(await a.take('enr-1', new Date())).toEqual({ status: 'used' });
    expect(await b.take('enr-1', new Date())).toEqual({ status: 'used' });
    expect(await a.take('enr-unknown', new Date())).toEqual({ status: 'unknown' });
  });

  it('reports an expired enrolment as expired, and only once', async () => {
    await a.put('enr-2', record(2), new Date(Date.now() + 1000));
    expect(await b.take('enr-2', new Date(Date.now() + 2000))).toEqual({ status: 'expired' });
    expect(await b.take('enr-2', new Date(Date.now() + 2000))).toEqual({ status: 'used' });
  });

  it('lets exactly one of many takes through the two connections win', async () => {
    await a.put('enr-3', record(3), inFiveMinutes());
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).take('enr-3', new Date())),
    );
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'used')).toHaveLength(19);
  });

  it('is bounded: beyond capacity the oldest entries are dropped', async () => {
    const small = new SqlitePendingEnrollmentStore(join(dir, 'small.db'), { maxEntries: 3 });
    for (let i = 0; i < 5; i++) await small.put(`enr-s${i}`, record(i), inFiveMinutes());
    expect((await small.take('enr-s0', new Date())).status).toBe('unknown');
    expect((await small.take('enr-s1', new Date())).status).toBe('unknown');
    expect(await small.take('enr-s4', new Date())).toEqual({ status: 'ok', value: record(4) });
    small.close();
  });
});
