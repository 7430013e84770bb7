import { createSecretKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  algorithmForKey,
  assertKeyMatchesAlg,
  importSigningKey,
  importVerificationKey,
  signBytes,
  verifyBytes,
} from '../src/algorithms.js';
import {
  createSigner,
  isLowS,
  type SignatureAlgorithm,
  signRequest,
  toLowS,
  verifyRequest,
} from '../src/index.js';
import { codeOf } from './helpers.js';

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });

describe('key import and caching', () => {
  it('returns the same KeyObject for the same JWK / PEM / private KeyObject', () => {
    const jwk = ec.publicKey.export({ format: 'jwk' });
    const a = importVerificationKey(jwk);
    expect(importVerificationKey(jwk)).toBe(a);
    expect(a.equals(ec.publicKey)).toBe(true);
    const pem = ec.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    expect(importVerificationKey(pem)).toBe(importVerificationKey(pem));
    const fromPrivate = importVerificationKey(ec.privateKey);
    expect(fromPrivate.type).toBe('public');
    expect(importVerificationKey(ec.privateKey)).toBe(fromPrivate);
    expect(importVerificationKey(ec.publicKey)).toBe(ec.publicKey);
  });

  it('imports oct JWKs as HMAC secrets and rejects garbage as unknown_key', () => {
    const secret = importVerificationKey({ kty: 'oct', k: Buffer.alloc(32, 9).toString('base64url') });
    expect(secret.type).toBe('secret');
    expect(codeOf(() => importVerificationKey({ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }))).toBe(
      'unknown_key',
    );
    expect(
      codeOf(() => importVerificationKey('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----')),
    ).toBe('unknown_key');
    expect(codeOf(() => importVerificationKey(42 as unknown as string))).toBe('unknown_key');
    expect(codeOf(() => importSigningKey('not a key'))).toBe('malformed');
    expect(codeOf(() => importSigningKey(ec.publicKey))).toBe('alg_mismatch');
  });
});

describe('key type ↔ algorithm', () => {
  it('refuses weak or mis-typed keys', () => {
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const pss256 = generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha256' });
    const pss512 = generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha512' });
    const ed = generateKeyPairSync('ed25519');
    expect(codeOf(() => assertKeyMatchesAlg(rsa1024.publicKey, 'rsa-v1_5-sha256'))).toBe('alg_mismatch');
    expect(codeOf(() => assertKeyMatchesAlg(pss256.publicKey, 'rsa-pss-sha512'))).toBe('alg_mismatch');
    expect(codeOf(() => assertKeyMatchesAlg(pss512.publicKey, 'rsa-pss-sha512'))).toBe('none');
    expect(codeOf(() => assertKeyMatchesAlg(pss512.publicKey, 'rsa-v1_5-sha256'))).toBe('alg_mismatch');
    expect(codeOf(() => assertKeyMatchesAlg(ed.publicKey, 'ecdsa-p256-sha256'))).toBe('alg_mismatch');
    expect(codeOf(() => assertKeyMatchesAlg(createSecretKey(Buffer.alloc(31)), 'hmac-sha256'))).toBe(
      'alg_mismatch',
    );
    expect(algorithmForKey(ec.publicKey)).toBe('ecdsa-p256-sha256');
    expect(algorithmForKey(ed.publicKey)).toBe('ed25519');
    expect(algorithmForKey(pss512.publicKey)).toBe('rsa-pss-sha512');
    expect(algorithmForKey(rsa1024.publicKey)).toBeUndefined();
    expect(algorithmForKey(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey)).toBeUndefined();
  });

  it('produces wire-format signatures of the documented lengths and rejects other lengths', () => {
    const data = new TextEncoder().encode('base');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ed = generateKeyPairSync('ed25519');
    const hmac = createSecretKey(Buffer.alloc(32, 1));
    const cases: [SignatureAlgorithm, KeyObject, KeyObject, number][] = [
      ['ecdsa-p256-sha256', ec.privateKey, ec.publicKey, 64],
      ['rsa-v1_5-sha256', rsa.privateKey, rsa.publicKey, 256],
      ['rsa-pss-sha512', rsa.privateKey, rsa.publicKey, 256],
      ['ed25519', ed.privateKey, ed.publicKey, 64],
      ['hmac-sha256', hmac, hmac, 32],
    ];
    for (const [alg, priv, pub, length] of cases) {
      const sig = signBytes(alg, priv, data);
      expect(sig.length, alg).toBe(length);
      expect(verifyBytes(alg, pub, data, sig), alg).toBe(true);
      expect(verifyBytes(alg, pub, data, sig.subarray(1)), alg).toBe(false);
      expect(verifyBytes(alg, pub, new TextEncoder().encode('other'), sig), alg).toBe(false);
    }
  });
});

describe('ECDSA low-s', () => {
  const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
  const twinOf = (sig: Uint8Array) => {
    const s = BigInt(`0x${Buffer.from(sig.subarray(32)).toString('hex')}`);
    return new Uint8Array(
      Buffer.concat([
        Buffer.from(sig.subarray(0, 32)),
        Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex'),
      ]),
    );
  };

  it('createSigner always produces low-s; requireLowS refuses the (r, n − s) twin that plain RFC 9421 accepts', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signer = createSigner({ key: privateKey, alg: 'ecdsa-p256-sha256', keyid: 'k' });
    for (let i = 0; i < 16; i++) {
      const message = { method: 'GET', url: `https://example.com/x?i=${i}`, headers: {} };
      const h = await signRequest(message, {
        signer,
        components: ['@method', '@path', '@query'],
        created: 1,
      });
      const raw = Buffer.from(/=:([^:]+):/.exec(h.signature)![1]!, 'base64');
      expect(isLowS(raw)).toBe(true);
      const twin = {
        ...message,
        headers: {
          ...h,
          signature: h.signature.replace(/=:[^:]+:/, `=:${Buffer.from(twinOf(raw)).toString('base64')}:`),
        },
      };
      const opts = { keyLookup: async () => publicKey, now: 2 };
      await expect(verifyRequest(twin, opts)).resolves.toBeDefined();
      await expect(verifyRequest(twin, { ...opts, requireLowS: true })).rejects.toMatchObject({
        code: 'bad_signature',
      });
      await expect(
        verifyRequest({ ...message, headers: { ...h } }, { ...opts, requireLowS: true }),
      ).resolves.toBeDefined();
    }
  });

  it('toLowS is idempotent and leaves malformed input alone', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const sig = new Uint8Array(
      sign('sha256', Buffer.from('x'), { key: privateKey, dsaEncoding: 'ieee-p1363' }),
    );
    const low = toLowS(sig);
    expect(isLowS(low)).toBe(true);
    expect(toLowS(low)).toEqual(low);
    expect(toLowS(twinOf(low))).toEqual(low);
    expect(isLowS(new Uint8Array(63))).toBe(false);
    expect(isLowS(new Uint8Array(64))).toBe(false); // s = 0
  });
});
