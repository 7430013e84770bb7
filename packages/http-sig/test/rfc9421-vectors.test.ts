import { createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  contentDigest,
  createSignatureBase,
  createSigner,
  type HttpMessage,
  HttpSigError,
  type SignatureAlgorithm,
  signRequest,
  verifyContentDigest,
  verifyRequest,
} from '../src/index.js';
import { fixture, parseHttpText } from './helpers.js';

const CREATED = 1618884473;
const secret = createSecretKey(Buffer.from(fixture('test-shared-secret').trim(), 'base64'));

interface Vector {
  id: string;
  label: string;
  message: string;
  alg: SignatureAlgorithm;
  publicKey: KeyObject;
  privateKey: KeyObject;
}

const rsaPssPub = createPublicKey(fixture('test-key-rsa-pss.pub'));
const rsaPssPriv = createPrivateKey(fixture('test-key-rsa-pss.key'));
const vectors: Vector[] = [
  {
    id: 'b21',
    label: 'sig-b21',
    message: 'request',
    alg: 'rsa-pss-sha512',
    publicKey: rsaPssPub,
    privateKey: rsaPssPriv,
  },
  {
    id: 'b22',
    label: 'sig-b22',
    message: 'request',
    alg: 'rsa-pss-sha512',
    publicKey: rsaPssPub,
    privateKey: rsaPssPriv,
  },
  {
    id: 'b23',
    label: 'sig-b23',
    message: 'request',
    alg: 'rsa-pss-sha512',
    publicKey: rsaPssPub,
    privateKey: rsaPssPriv,
  },
  {
    id: 'b24',
    label: 'sig-b24',
    message: 'response',
    alg: 'ecdsa-p256-sha256',
    publicKey: createPublicKey(fixture('test-key-ecc-p256.pub')),
    privateKey: createPrivateKey(fixture('test-key-ecc-p256.key')),
  },
  {
    id: 'b25',
    label: 'sig-b25',
    message: 'request',
    alg: 'hmac-sha256',
    publicKey: secret,
    privateKey: secret,
  },
  {
    id: 'b26',
    label: 'sig-b26',
    message: 'request',
    alg: 'ed25519',
    publicKey: createPublicKey(fixture('test-key-ed25519.pub')),
    privateKey: createPrivateKey(fixture('test-key-ed25519.key')),
  },
];

function signedMessage(v: Vector): HttpMessage & { headers: Record<string, string[]> } {
  return parseHttpText(fixture(`${v.id}_${v.message}_signed.txt`));
}

function unsignedMessage(v: Vector): HttpMessage & { headers: Record<string, string[]> } {
  return parseHttpText(fixture(`rfc-test-${v.message}.txt`));
}

/** Components of the vector's Signature-Input, in the API form signRequest takes. */
function componentsOf(signatureInput: string): string[] {
  const list = signatureInput.slice(signatureInput.indexOf('(') + 1, signatureInput.indexOf(')'));
  return list === '' ? [] : list.split(' ').map((c) => c.replace(/^"([^"]+)"/, '$1'));
}

describe('RFC 9421 Appendix B.2 vectors', () => {
  for (const v of vectors) {
    describe(v.id, () => {
      const signed = signedMessage(v);
      const signatureInput = signed.headers['signature-input']![0]!;

      it('reproduces the signature base byte for byte', () => {
        const base = createSignatureBase(signed, signatureInput, v.label);
        expect(
          Buffer.from(base, 'latin1').equals(Buffer.from(fixture(`${v.id}_${v.message}_sigbase.txt`))),
        ).toBe(true);
        expect(base).toBe(fixture(`${v.id}_${v.message}_sigbase.txt`));
      });

      it('verifies the published signature with its key', async () => {
        const verified = await verifyRequest(signed, {
          keyLookup: async (keyid, alg) => {
            expect(keyid).toBe(`test-${v.alg === 'hmac-sha256' ? 'shared-secret' : keyid.slice(5)}`);
            expect(alg).toBeUndefined();
            return { key: v.publicKey, alg: v.alg };
          },
          label: v.label,
          now: CREATED + 5,
        });
        expect(verified.label).toBe(v.label);
        expect(verified.alg).toBe(v.alg);
        expect(verified.created).toBe(CREATED);
        expect(verified.components).toEqual(componentsOf(signatureInput));
      });

      it('rejects the published signature under another key or a changed message', async () => {
        const wrongKey = v.id === 'b26' ? vectors[3]! : vectors[5]!;
        // Key type does not fit the vector's algorithm → alg_mismatch, before any crypto.
        await expect(
          verifyRequest(signed, {
            keyLookup: async () => ({ key: wrongKey.publicKey, alg: v.alg }),
            label: v.label,
            now: CREATED,
          }),
        ).rejects.toMatchObject({ code: 'alg_mismatch' });
        // Without alg the algorithm follows the (wrong) key, and the signature does not verify.
        await expect(
          verifyRequest(signed, { keyLookup: async () => wrongKey.publicKey, label: v.label, now: CREATED }),
        ).rejects.toMatchObject({ code: 'bad_signature' });
        const tampered = signedMessage(v);
        tampered.headers['signature-input'] = [signatureInput.replace(String(CREATED), String(CREATED + 1))];
        await expect(
          verifyRequest(tampered, {
            keyLookup: async () => ({ key: v.publicKey, alg: v.alg }),
            label: v.label,
            now: CREATED,
          }),
        ).rejects.toMatchObject({ code: 'bad_signature' });
      });

      it('signRequest reproduces Signature-Input and a verifiable signature', async () => {
        const message = unsignedMessage(v);
        const out = await signRequest(message, {
          signer: createSigner({
            key: v.privateKey,
            alg: v.alg,
            keyid: /keyid="([^"]+)"/.exec(signatureInput)![1]!,
          }),
          components: componentsOf(signatureInput),
          label: v.label,
          created: CREATED,
          includeAlg: false,
          ...(/nonce="([^"]+)"/.exec(signatureInput)
            ? { nonce: /nonce="([^"]+)"/.exec(signatureInput)![1]! }
            : {}),
          ...(/tag="([^"]+)"/.exec(signatureInput) ? { tag: /tag="([^"]+)"/.exec(signatureInput)![1]! } : {}),
        });
        expect(`${out['signature-input']}`).toBe(signatureInput);
        if (v.id === 'b25' || v.id === 'b26') {
          // Deterministic algorithms: the Signature value must be byte-identical.
          expect(out.signature).toBe(signed.headers.signature![0]);
        }
        message.headers['signature-input'] = [out['signature-input']];
        message.headers.signature = [out.signature];
        const verified = await verifyRequest(message, {
          keyLookup: async () => ({ key: v.publicKey, alg: v.alg }),
          now: CREATED,
        });
        expect(verified.label).toBe(v.label);
      });
    });
  }

  it('infers the algorithm from unambiguous key types and refuses plain RSA without alg', async () => {
    const b26 = signedMessage(vectors[5]!);
    await expect(
      verifyRequest(b26, { keyLookup: async () => vectors[5]!.publicKey, now: CREATED }),
    ).resolves.toMatchObject({ alg: 'ed25519' });
    const b23 = signedMessage(vectors[2]!);
    await expect(
      verifyRequest(b23, { keyLookup: async () => rsaPssPub, now: CREATED }),
    ).rejects.toMatchObject({
      code: 'alg_mismatch',
    });
    // Pinning rsa-v1_5-sha256 to the RSA-PSS vector fails cryptographically, never silently succeeds.
    await expect(
      verifyRequest(b23, {
        keyLookup: async () => ({ key: rsaPssPub, alg: 'rsa-v1_5-sha256' }),
        now: CREATED,
      }),
    ).rejects.toBeInstanceOf(HttpSigError);
  });
});

describe('RFC 9530 Appendix D examples', () => {
  const body = '{"hello": "world"}';
  it('computes sha-256 and sha-512 Content-Digest values', () => {
    expect(contentDigest(body, 'sha-256')).toBe('sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:');
    expect(contentDigest(new TextEncoder().encode(body), 'sha-512')).toBe(
      'sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:',
    );
    expect(contentDigest(body)).toBe(contentDigest(body, 'sha-256'));
  });

  it('verifies the examples and the request/response vectors', () => {
    verifyContentDigest('sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', body);
    const request = parseHttpText(fixture('rfc-test-request.txt'));
    verifyContentDigest(request.headers['content-digest']![0]!, request.body);
    const response = parseHttpText(fixture('rfc-test-response.txt'));
    verifyContentDigest(response.headers['content-digest']![0]!, response.body);
    // Unknown algorithms are ignored next to a known one.
    verifyContentDigest('md5=:AAAA:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', body);
  });

  it('rejects mismatches and garbage with typed errors', () => {
    const code = (f: () => void) => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(HttpSigError);
        return (err as HttpSigError).code;
      }
      return 'none';
    };
    expect(code(() => verifyContentDigest(contentDigest(body), `${body} `))).toBe('digest_mismatch');
    expect(code(() => verifyContentDigest(`sha-512=:${Buffer.alloc(64).toString('base64')}:`, body))).toBe(
      'digest_mismatch',
    );
    expect(
      code(() =>
        verifyContentDigest(`sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:AAAA:`, body),
      ),
    ).toBe('digest_mismatch');
    expect(code(() => verifyContentDigest('sha-256=X48E', body))).toBe('malformed');
    expect(code(() => verifyContentDigest('not a dictionary (', body))).toBe('malformed');
    expect(code(() => verifyContentDigest('md5=:AAAA:', body))).toBe('unsupported');
  });
});
