import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeQuoteSeal,
  encodeQuoteSeal,
  enrollmentQualifyingData,
  expectedWorkloadPcr,
  geolocationIdHash,
  geolocationProofHash,
  lahQualifyingData,
} from '../src/index.js';

const FIX = join(import.meta.dirname, '../../tpm-wire/test/fixtures');
const fixture = (name: string) => new Uint8Array(readFileSync(join(FIX, name)));
const hex = (b: Uint8Array | Buffer) => Buffer.from(b).toString('hex');

describe('V-PEA evidence constructions', () => {
  it('geolocation-proof-hash is SHA-256 of the JCS of {lat, lon, accuracy, fix_time}', () => {
    const fix = '2026-11-28T21:00:00.000Z';
    const expected = createHash('sha256')
      .update(`{"accuracy":8.5,"fix_time":"${fix}","lat":37.354,"lon":-121.955}`)
      .digest('base64url');
    expect(geolocationProofHash({ lon: -121.955, accuracy: 8.5, lat: 37.354, fix_time: fix })).toBe(expected);
    // The fix time is committed: another time, another hash.
    expect(
      geolocationProofHash({
        lon: -121.955,
        accuracy: 8.5,
        lat: 37.354,
        fix_time: '2026-11-28T21:00:01.000Z',
      }),
    ).not.toBe(expected);
  });

  it('geolocation-id-hash is SHA-256(AK DER ‖ serial ‖ type/model)', () => {
    const der = new Uint8Array([1, 2, 3]);
    const expected = createHash('sha256').update(der).update('SN42gnss/u-blox M8').digest('base64url');
    expect(geolocationIdHash(der, { type: 'gnss', model: 'u-blox M8', serial: 'SN42' })).toBe(expected);
    expect(geolocationIdHash(der, undefined)).toBe(createHash('sha256').update(der).digest('base64url'));
  });

  it('qualifying data covers exactly the sealed members, in JCS order', () => {
    const fields = {
      'tpm-ak': 'PEM',
      'geolocation-id-hash': 'id',
      'geolocation-proof-hash': 'proof',
      'privacy-technique': 'none',
      nonce: 'n',
      timestamp: 1,
      'target-environment-image-digest': 'd',
    };
    const text =
      '{"geolocation-id-hash":"id","geolocation-proof-hash":"proof","nonce":"n","privacy-technique":"none",' +
      '"target-environment-image-digest":"d","timestamp":1,"tpm-ak":"PEM"}';
    expect(hex(lahQualifyingData({ ...fields, extra: 'ignored' } as typeof fields))).toBe(
      createHash('sha256').update(text).digest('hex'),
    );
    expect(hex(lahQualifyingData({ ...fields, timestamp: 2 }))).not.toBe(hex(lahQualifyingData(fields)));
  });

  it('tpm-quote-seal round-trips and rejects malformed input without throwing', () => {
    const attest = fixture('quote-ak-ecc.attest');
    const sig = fixture('quote-ak-ecc.sig');
    const d = decodeQuoteSeal(encodeQuoteSeal(attest, sig));
    expect(d && hex(d.attest)).toBe(hex(attest));
    expect(d && hex(d.signature)).toBe(hex(sig));
    expect(decodeQuoteSeal('AAA=')).toBeUndefined();
    expect(decodeQuoteSeal('AAAA')).toBeUndefined();
    fc.assert(
      fc.property(fc.string({ maxLength: 64 }), (s) => {
        const r = decodeQuoteSeal(s);
        if (r) expect(r.attest.byteLength).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });
});

describe('enrolment and workload constructions', () => {
  it('enrolment qualifying data is SHA-256 of the JCS of {enrollment_id, nonce, request}', () => {
    const request = {
      agent_name: 'agent-001',
      ek: { public: 'AAAA' },
      ak: { public: 'BBBB' },
      app_key: { public: 'CCCC' },
      workload: { name: 'w', version: '1', image_digest: 'd'.repeat(64) },
      platform: { os: 'linux', kernel: '6.1' },
    };
    const text =
      '{"enrollment_id":"e1","nonce":"n1","request":{"agent_name":"agent-001","ak":{"public":"BBBB"},' +
      '"app_key":{"public":"CCCC"},"ek":{"public":"AAAA"},"platform":{"kernel":"6.1","os":"linux"},' +
      `"workload":{"image_digest":"${'d'.repeat(64)}","name":"w","version":"1"}}}`;
    expect(hex(enrollmentQualifyingData('e1', 'n1', request))).toBe(
      createHash('sha256').update(text).digest('hex'),
    );
  });

  it('the workload PCR is one extend of the image digest from zero, and only hex SHA-256 is accepted', () => {
    const digest = 'ab'.repeat(32);
    const expected = createHash('sha256')
      .update(Buffer.alloc(32))
      .update(Buffer.from(digest, 'hex'))
      .digest('hex');
    expect(hex(expectedWorkloadPcr(digest))).toBe(expected);
    expect(() => expectedWorkloadPcr('AB'.repeat(32))).toThrow(TypeError);
    expect(() => expectedWorkloadPcr('ab'.repeat(20))).toThrow(TypeError);
  });
});
