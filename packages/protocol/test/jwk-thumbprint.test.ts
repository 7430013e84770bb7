/**
 * `jwkThumbprint` is the `cnf.jkt` the collector binds a credential to (it computes it with jose):
 * both must give the same value for every key type an AppSK can have, and for the RFC 7638 example.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { jwkThumbprint } from '../src/index.js';

describe('jwkThumbprint', () => {
  it('matches the RFC 7638 §3.1 example', () => {
    const key = createPublicKey({
      format: 'jwk',
      key: {
        kty: 'RSA',
        n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
        e: 'AQAB',
      },
    });
    expect(jwkThumbprint(key)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  it('equals jose calculateJwkThumbprint for EC P-256, RSA-2048 and Ed25519 keys, from KeyObject and PEM', async () => {
    const pairs = [
      generateKeyPairSync('ec', { namedCurve: 'P-256' }),
      generateKeyPairSync('rsa', { modulusLength: 2048 }),
      generateKeyPairSync('ed25519'),
    ];
    for (const { publicKey } of pairs) {
      const expected = await calculateJwkThumbprint(await exportJWK(publicKey), 'sha256');
      expect(jwkThumbprint(publicKey)).toBe(expected);
      expect(jwkThumbprint(publicKey.export({ type: 'spki', format: 'pem' }) as string)).toBe(expected);
    }
  });
});
