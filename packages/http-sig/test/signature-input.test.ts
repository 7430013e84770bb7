/**
 * parseSignatureInput: the one reader of Signature-Input outside verification. It agrees with what
 * signRequest writes and verifyRequest reads, and refuses anything else with a typed error.
 */
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSigner, HttpSigError, parseSignatureInput, signRequest, verifyRequest } from '../src/index.js';
import { codeOf, fixture, parseHttpText } from './helpers.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signer = createSigner({ key: privateKey, keyid: 'k1', alg: 'ecdsa-p256-sha256' });

describe('parseSignatureInput', () => {
  it('reads what signRequest wrote, as verifyRequest reads it', async () => {
    const message = { method: 'GET', url: 'https://h.example/nonce?public_key_hash=a', headers: {} };
    const h = await signRequest(message, {
      signer,
      components: ['@method', '@path', '@query'],
      label: 'geo',
      tag: 'geofence/v1',
      created: 1_796_000_000,
      expires: 1_796_000_060,
      nonce: 'n-1',
    });
    const [member, ...rest] = parseSignatureInput(h['signature-input']);
    expect(rest).toEqual([]);
    expect(member).toEqual({
      label: 'geo',
      components: ['@method', '@path', '@query'],
      created: 1_796_000_000,
      expires: 1_796_000_060,
      keyid: 'k1',
      alg: 'ecdsa-p256-sha256',
      nonce: 'n-1',
      tag: 'geofence/v1',
    });
    const v = await verifyRequest(
      { ...message, headers: { ...h } },
      { keyLookup: async () => publicKey, now: 1_796_000_010 },
    );
    expect({ created: v.created, expires: v.expires, keyid: v.keyid, components: v.components }).toEqual({
      created: member!.created,
      expires: member!.expires,
      keyid: member!.keyid,
      components: member!.components,
    });
  });

  it('reads the RFC 9421 Appendix B members, several per header, in order', () => {
    const m = parseHttpText(fixture('b21_request_signed.txt'));
    const members = parseSignatureInput(String(m.headers['signature-input']));
    expect(members.length).toBeGreaterThan(0);
    expect(members[0]!.keyid).toBe('test-key-rsa-pss');
    const two = parseSignatureInput(
      'a=("@method");keyid="x", b=("content-digest" "@query-param";name="q");created=1',
    );
    expect(two.map((x) => [x.label, x.components, x.keyid, x.created])).toEqual([
      ['a', ['@method'], 'x', undefined],
      ['b', ['content-digest', '@query-param;name="q"'], undefined, 1],
    ]);
  });

  it('does not read a keyid out of another parameter (what a regular expression did)', () => {
    const kid = 'a'.repeat(64);
    const [m] = parseSignatureInput(`geo=("@method");tag="keyid=\\"${kid}\\""`);
    expect(m!.keyid).toBeUndefined();
    expect(m!.tag).toBe(`keyid="${kid}"`);
  });

  it('refuses malformed values with a typed error', () => {
    for (const bad of [
      'geo=',
      'geo=("@method";created=x',
      'geo=();created="1"',
      'geo=:AAAA:',
      'geo=();keyid=1',
      'geo=("@nope")',
    ]) {
      expect(['malformed', 'unsupported'], bad).toContain(codeOf(() => parseSignatureInput(bad)));
    }
  });

  it('never throws anything but HttpSigError (fuzzed)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parseSignatureInput(text);
        } catch (err) {
          expect(err).toBeInstanceOf(HttpSigError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
