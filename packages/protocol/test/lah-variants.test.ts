/**
 * Field-name variants of the drafts (issue 14 item 5): the workload digest as
 * `target-environment-image-digest` or `workload-identity-agent-image-digest`, the MNO statement as
 * `mno-location` or `mno-endorsement` — one of each at most, and the seal covers the name used.
 */
import { describe, expect, it } from 'vitest';
import { jcsBytes, lahBundleSchema, lahImageDigest, lahQualifyingData, sha256 } from '../src/index.js';

const digest = 'ab'.repeat(32);
const sealed = {
  'tpm-ak': '-----BEGIN PUBLIC KEY-----x-----END PUBLIC KEY-----',
  'geolocation-id-hash': 'A'.repeat(43),
  'geolocation-proof-hash': 'B'.repeat(43),
  'privacy-technique': 'none',
  nonce: 'n'.repeat(43),
  timestamp: 1_800_000_000,
};
const bundle = (extra: Record<string, unknown>) => ({
  ...sealed,
  'geolocation-payload': { lat: 1, lon: 2, accuracy: 3 },
  'tpm-quote-seal': 'AAAA',
  ...extra,
});

describe('lah-bundle field-name variants', () => {
  it('accepts either digest name, refuses both or neither, and at most one MNO statement', () => {
    expect(lahBundleSchema.safeParse(bundle({ 'target-environment-image-digest': digest })).success).toBe(
      true,
    );
    expect(
      lahBundleSchema.safeParse(bundle({ 'workload-identity-agent-image-digest': digest })).success,
    ).toBe(true);
    expect(
      lahBundleSchema.safeParse(
        bundle({ 'target-environment-image-digest': digest, 'workload-identity-agent-image-digest': digest }),
      ).success,
    ).toBe(false);
    expect(lahBundleSchema.safeParse(bundle({})).success).toBe(false);
    const both = bundle({
      'target-environment-image-digest': digest,
      'mno-location': {},
      'mno-endorsement': {},
    });
    expect(lahBundleSchema.safeParse(both).success).toBe(false);
    expect(
      lahBundleSchema.safeParse(bundle({ 'target-environment-image-digest': digest, 'mno-endorsement': {} }))
        .success,
    ).toBe(true);
  });

  it('seals the digest under the name the bundle uses', () => {
    const variant = { ...sealed, 'workload-identity-agent-image-digest': digest };
    expect(lahImageDigest(variant)).toBe(digest);
    expect(Buffer.from(lahQualifyingData(variant))).toEqual(
      Buffer.from(sha256(jcsBytes({ ...sealed, 'workload-identity-agent-image-digest': digest }))),
    );
    const v03 = { ...sealed, 'target-environment-image-digest': digest };
    expect(Buffer.from(lahQualifyingData(v03))).not.toEqual(Buffer.from(lahQualifyingData(variant)));
    expect(lahImageDigest({ ...v03, 'workload-identity-agent-image-digest': digest })).toBeUndefined();
  });
});
