/**
 * The delivery loop's nonce pool on a controlled clock, against a counting requester: one request per
 * batch, no nonce handed out twice (also to concurrent takers), none handed out with less than the
 * margin left, and a cleared pool refills.
 */
import type { Signer } from '@geofence/http-sig';
import type { NonceResponse } from '@geofence/protocol';
import { describe, expect, it } from 'vitest';
import { NoncePool } from '../src/nonce-pool.js';
import type { NonceRequester } from '../src/nonce-request.js';

const signer = {} as Signer;

function requester(now: () => number, ttlMs = 300_000) {
  let seq = 0;
  const calls: number[] = [];
  const r = {
    async fetchMany(_keyid: string, _signer: Signer, count: number) {
      calls.push(count);
      await new Promise((res) => setTimeout(res, 5));
      const responses: NonceResponse[] = Array.from({ length: count }, () => ({
        nonce: `n${++seq}`.padEnd(43, 'x'),
        expires_at: new Date(now() + ttlMs).toISOString(),
        expires_in: Math.floor(ttlMs / 1000),
      }));
      return responses;
    },
  };
  return { r: r as unknown as NonceRequester, calls };
}

describe('NoncePool', () => {
  it('fetches one batch per n takes and never hands a nonce out twice', async () => {
    let t = 1_800_000_000_000;
    const { r, calls } = requester(() => t);
    const pool = new NoncePool(r, 4, () => t);
    const got: string[] = [];
    for (let i = 0; i < 8; i++) got.push((await pool.take('k', signer)).nonce);
    expect(calls).toEqual([4, 4]);
    expect(new Set(got).size).toBe(8);
    t += 1;
  });

  it('concurrent takers share one request and each gets its own nonce', async () => {
    const t = 1_800_000_000_000;
    const { r, calls } = requester(() => t);
    const pool = new NoncePool(r, 4, () => t);
    const got = await Promise.all(Array.from({ length: 6 }, () => pool.take('k', signer)));
    expect(new Set(got.map((g) => g.nonce)).size).toBe(6);
    expect(calls).toEqual([4, 4]);
  });

  it('skips pooled nonces with less than the margin left, and refills after clear()', async () => {
    let t = 1_800_000_000_000;
    const { r, calls } = requester(() => t, 60_000);
    const pool = new NoncePool(r, 3, () => t);
    const first = await pool.take('k', signer);
    expect(pool.size).toBe(2);
    t += 50_000; // 10 s left on the pooled ones: below the margin
    const second = await pool.take('k', signer);
    expect(calls).toEqual([3, 3]);
    expect(second.nonce).not.toBe(first.nonce);
    expect(second.expires_in).toBeGreaterThanOrEqual(15);
    pool.clear();
    expect(pool.size).toBe(0);
    await pool.take('k', signer);
    expect(calls).toEqual([3, 3, 3]);
  });

  it('another keyid never gets the pooled nonces of the first', async () => {
    const t = 1_800_000_000_000;
    const { r, calls } = requester(() => t);
    const pool = new NoncePool(r, 4, () => t);
    await pool.take('k1', signer);
    await pool.take('k2', signer);
    expect(calls).toEqual([4, 4]);
  });
});
