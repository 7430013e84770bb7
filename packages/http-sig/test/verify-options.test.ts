import { createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  contentDigest,
  createSigner,
  type HttpMessage,
  HttpSigError,
  type Signer,
  type SignRequestOptions,
  signRequest,
  type VerifyRequestOptions,
  verifyRequest,
} from '../src/index.js';

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const NOW = 1_800_000_000;
const COMPONENTS = ['@method', '@path', 'content-type', 'content-digest', 'workload-geo-id'];

function message(body = '{"a":1}'): HttpMessage & { headers: Record<string, string> } {
  return {
    method: 'POST',
    url: 'https://collector.example/metrics?x=1',
    headers: {
      'content-type': 'application/json',
      'content-digest': contentDigest(body),
      'workload-geo-id': 'US/California/Santa Clara',
    },
    body,
  };
}

async function signed(
  overrides: Partial<SignRequestOptions> = {},
  msg = message(),
): Promise<HttpMessage & { headers: Record<string, string> }> {
  const out = await signRequest(msg, {
    signer: createSigner({ key: ec.privateKey, alg: 'ecdsa-p256-sha256', keyid: 'k1' }),
    components: COMPONENTS,
    label: 'geo',
    created: NOW,
    expires: NOW + 300,
    nonce: 'n-123',
    tag: 'geofence/v1',
    ...overrides,
  });
  msg.headers['signature-input'] = out['signature-input'];
  msg.headers.signature = out.signature;
  return msg;
}

function opts(overrides: Partial<VerifyRequestOptions> = {}): VerifyRequestOptions {
  return { keyLookup: async () => ec.publicKey, now: NOW, ...overrides };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof HttpSigError) return err.code;
    throw err;
  }
  return 'none';
}

describe('signRequest', () => {
  it('writes the SPEC §6.3 profile', async () => {
    const out = await signRequest(message(), {
      signer: createSigner({ key: ec.privateKey, alg: 'ecdsa-p256-sha256', keyid: 'k1' }),
      components: COMPONENTS,
      label: 'geo',
      created: new Date(NOW * 1000),
      expires: NOW + 300,
      nonce: 'n-123',
      tag: 'geofence/v1',
    });
    expect(out['signature-input']).toBe(
      'geo=("@method" "@path" "content-type" "content-digest" "workload-geo-id");created=1800000000;expires=1800000300;keyid="k1";alg="ecdsa-p256-sha256";nonce="n-123";tag="geofence/v1"',
    );
    expect(out.signature).toMatch(/^geo=:[A-Za-z0-9+/]{86}==:$/);
    expect(Buffer.from(out.signature.slice(5, -1), 'base64')).toHaveLength(64);
  });

  it('accepts an async (TPM-like) signer and checks its output length', async () => {
    const soft = createSigner({ key: ec.privateKey, alg: 'ecdsa-p256-sha256', keyid: 'tpm' });
    const slow: Signer = {
      keyid: 'tpm',
      alg: 'ecdsa-p256-sha256',
      sign: (data) => new Promise((resolve) => setTimeout(() => resolve(soft.sign(data)), 20)),
    };
    const msg = await signed({ signer: slow });
    await expect(verifyRequest(msg, opts())).resolves.toMatchObject({
      keyid: 'tpm',
      alg: 'ecdsa-p256-sha256',
    });
    const der: Signer = { keyid: 'tpm', alg: 'ecdsa-p256-sha256', sign: async () => new Uint8Array(71) };
    expect(await codeOf(signed({ signer: der }))).toBe('malformed');
  });

  it('refuses keys that do not match alg', () => {
    const mk = (key: KeyObject, alg: 'ecdsa-p256-sha256' | 'ed25519' | 'rsa-v1_5-sha256' | 'hmac-sha256') => {
      try {
        createSigner({ key, alg, keyid: 'x' });
        return 'none';
      } catch (err) {
        return (err as HttpSigError).code;
      }
    };
    expect(mk(rsa.privateKey, 'ecdsa-p256-sha256')).toBe('alg_mismatch');
    expect(mk(ec384.privateKey, 'ecdsa-p256-sha256')).toBe('alg_mismatch');
    expect(mk(ec.publicKey, 'ecdsa-p256-sha256')).toBe('alg_mismatch');
    expect(mk(ed.privateKey, 'rsa-v1_5-sha256')).toBe('alg_mismatch');
    expect(mk(createSecretKey(Buffer.alloc(16, 1)), 'hmac-sha256')).toBe('alg_mismatch');
    expect(mk(ec.privateKey, 'ed25519')).toBe('alg_mismatch');
  });

  it('accepts PEM and JWK keys', async () => {
    const pem = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const jwk = ec.privateKey.export({ format: 'jwk' });
    for (const key of [pem, jwk]) {
      const msg = await signed({ signer: createSigner({ key, alg: 'ecdsa-p256-sha256', keyid: 'k1' }) });
      await expect(verifyRequest(msg, opts())).resolves.toMatchObject({ keyid: 'k1' });
    }
    const msg = await signed();
    const pubPem = ec.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await expect(verifyRequest(msg, opts({ keyLookup: async () => pubPem }))).resolves.toBeTruthy();
    await expect(
      verifyRequest(msg, opts({ keyLookup: async () => ec.publicKey.export({ format: 'jwk' }) })),
    ).resolves.toBeTruthy();
  });

  it('refuses to sign a stale Content-Digest or bad parameters', async () => {
    const msg = message();
    msg.body = '{"a":2}';
    expect(await codeOf(signed({}, msg))).toBe('digest_mismatch');
    expect(await codeOf(signed({ label: 'Geo' }))).toBe('malformed');
    expect(await codeOf(signed({ nonce: 'a\nb' }))).toBe('malformed');
    expect(await codeOf(signed({ created: NOW, expires: NOW - 1 }))).toBe('malformed');
    expect(await codeOf(signed({ created: 1.5 }))).toBe('malformed');
    expect(await codeOf(signed({ components: ['@method', '@method'] }))).toBe('malformed');
    expect(await codeOf(signed({ components: ['x-absent'] }))).toBe('missing_component');
  });
});

describe('verifyRequest', () => {
  it('returns what was signed', async () => {
    const msg = await signed();
    const v = await verifyRequest(msg, opts({ label: 'geo', tag: 'geofence/v1' }));
    const value = /^geo=:([^:]+):$/.exec(String(msg.headers.signature))![1]!;
    expect(Buffer.from(v.signature).toString('base64')).toBe(value);
    expect({ ...v, signature: undefined }).toEqual({
      label: 'geo',
      keyid: 'k1',
      alg: 'ecdsa-p256-sha256',
      created: NOW,
      expires: NOW + 300,
      nonce: 'n-123',
      tag: 'geofence/v1',
      components: COMPONENTS,
      signature: undefined,
    });
  });

  it('reports missing and malformed signature headers', async () => {
    const msg = message();
    expect(await codeOf(verifyRequest(msg, opts()))).toBe('missing_signature');
    const s = await signed();
    delete (s.headers as Record<string, string | undefined>).signature;
    expect(await codeOf(verifyRequest(s, opts()))).toBe('missing_signature');
    const t = await signed();
    t.headers.signature = 'geo=abc';
    expect(await codeOf(verifyRequest(t, opts()))).toBe('malformed');
    const u = await signed();
    u.headers['signature-input'] = 'geo="not-a-list"';
    expect(await codeOf(verifyRequest(u, opts()))).toBe('malformed');
  });

  it('rejects duplicate components in short and long lists', async () => {
    const msg = await signed();
    const many = Array.from({ length: 40 }, (_, i) => `"x-h${i}"`);
    for (const list of [
      ['"@method"', '"@path"', '"@method"'],
      [...many, '"x-h3"'],
    ]) {
      msg.headers['signature-input'] = `geo=(${list.join(' ')});created=${NOW};keyid="k1"`;
      expect(await codeOf(verifyRequest(msg, opts()))).toBe('malformed');
    }
  });

  it('enforces required components and params', async () => {
    const msg = await signed({ components: ['@method', '@path'], nonce: undefined as unknown as string });
    expect(
      await codeOf(verifyRequest(msg, opts({ requiredComponents: ['@method', 'content-digest'] }))),
    ).toBe('missing_component');
    expect(await codeOf(verifyRequest(msg, opts({ requiredParams: ['created', 'nonce'] })))).toBe(
      'missing_param',
    );
    await expect(
      verifyRequest(
        msg,
        opts({ requiredComponents: ['"@method"', '@path'], requiredParams: ['created', 'alg'] }),
      ),
    ).resolves.toBeTruthy();
    const noKeyid = await signed({
      signer: createSigner({ key: ec.privateKey, alg: 'ecdsa-p256-sha256', keyid: 'k1' }),
    });
    noKeyid.headers['signature-input'] = noKeyid.headers['signature-input']!.replace('keyid="k1";', '');
    expect(await codeOf(verifyRequest(noKeyid, opts()))).toBe('missing_param');
  });

  it('selects by label and tag', async () => {
    const msg = await signed();
    const second = await signRequest(msg, {
      signer: createSigner({ key: ed.privateKey, alg: 'ed25519', keyid: 'k2' }),
      components: ['@method'],
      label: 'other',
      created: NOW,
      tag: 'other/v1',
    });
    msg.headers['signature-input'] = `${second['signature-input']}, ${msg.headers['signature-input']}`;
    msg.headers.signature = `${second.signature}, ${msg.headers.signature}`;
    const lookup = async (keyid: string) => (keyid === 'k1' ? ec.publicKey : ed.publicKey);
    await expect(verifyRequest(msg, opts({ keyLookup: lookup }))).resolves.toMatchObject({ label: 'other' });
    await expect(verifyRequest(msg, opts({ keyLookup: lookup, tag: 'geofence/v1' }))).resolves.toMatchObject({
      label: 'geo',
    });
    await expect(verifyRequest(msg, opts({ keyLookup: lookup, label: 'geo' }))).resolves.toMatchObject({
      keyid: 'k1',
    });
    expect(await codeOf(verifyRequest(msg, opts({ keyLookup: lookup, label: 'geo', tag: 'other/v1' })))).toBe(
      'tag_mismatch',
    );
    expect(await codeOf(verifyRequest(msg, opts({ keyLookup: lookup, tag: 'nope' })))).toBe('tag_mismatch');
    expect(await codeOf(verifyRequest(msg, opts({ keyLookup: lookup, label: 'missing' })))).toBe(
      'missing_signature',
    );
  });

  it('enforces the time window with clock skew', async () => {
    const msg = await signed();
    const at = (now: number, extra: Partial<VerifyRequestOptions> = {}) =>
      codeOf(verifyRequest(msg, opts({ now, ...extra })));
    expect(await at(NOW - 60)).toBe('none');
    expect(await at(NOW - 61)).toBe('not_yet_valid');
    expect(await at(NOW - 10, { clockSkewSeconds: 0 })).toBe('not_yet_valid');
    expect(await at(NOW + 360)).toBe('none');
    expect(await at(NOW + 361)).toBe('expired');
    expect(await at(NOW + 301, { clockSkewSeconds: 0 })).toBe('expired');
    expect(await at(NOW + 100, { maxAgeSeconds: 30, clockSkewSeconds: 0 })).toBe('expired');
    expect(await at(NOW + 30, { maxAgeSeconds: 30, clockSkewSeconds: 0 })).toBe('none');
    await expect(verifyRequest(msg, opts({ now: new Date((NOW + 5) * 1000) }))).resolves.toBeTruthy();
    const noCreated = await signed({ created: null, expires: NOW + 10 });
    expect(await codeOf(verifyRequest(noCreated, opts({ maxAgeSeconds: 10 })))).toBe('missing_param');
  });

  it('calls the nonce callback only after the signature verified', async () => {
    const seen: string[] = [];
    const nonce = async (value: string) => {
      seen.push(value);
      return value === 'n-123' && seen.length === 1;
    };
    const msg = await signed();
    await expect(verifyRequest(msg, opts({ nonce }))).resolves.toMatchObject({ nonce: 'n-123' });
    expect(await codeOf(verifyRequest(msg, opts({ nonce })))).toBe('nonce_rejected');
    const forged = await signed();
    forged.headers['workload-geo-id'] = 'FR/Paris';
    const before = seen.length;
    expect(await codeOf(verifyRequest(forged, opts({ nonce })))).toBe('bad_signature');
    expect(seen.length).toBe(before);
    const noNonce = await signed({ nonce: undefined as unknown as string });
    expect(await codeOf(verifyRequest(noNonce, opts({ nonce })))).toBe('missing_param');
  });

  it('checks key type against alg and pins', async () => {
    const msg = await signed();
    expect(await codeOf(verifyRequest(msg, opts({ keyLookup: async () => rsa.publicKey })))).toBe(
      'alg_mismatch',
    );
    expect(await codeOf(verifyRequest(msg, opts({ keyLookup: async () => ec384.publicKey })))).toBe(
      'alg_mismatch',
    );
    expect(
      await codeOf(
        verifyRequest(msg, opts({ keyLookup: async () => ({ key: ec.publicKey, alg: 'ed25519' }) })),
      ),
    ).toBe('alg_mismatch');
    expect(await codeOf(verifyRequest(msg, opts({ algorithms: ['ed25519'] })))).toBe('alg_mismatch');
    expect(await codeOf(verifyRequest(msg, opts({ keyLookup: async () => undefined })))).toBe('unknown_key');
    expect(await codeOf(verifyRequest(msg, opts({ keyLookup: async () => 'not a pem' })))).toBe(
      'unknown_key',
    );
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(await codeOf(verifyRequest(msg, opts({ keyLookup: async () => other.publicKey })))).toBe(
      'bad_signature',
    );
    const unknownAlg = await signed();
    unknownAlg.headers['signature-input'] = unknownAlg.headers['signature-input']!.replace(
      'ecdsa-p256-sha256',
      'ecdsa-p384-sha384',
    );
    expect(await codeOf(verifyRequest(unknownAlg, opts()))).toBe('unsupported');
  });

  it('passes the keyid and alg to keyLookup and propagates its errors', async () => {
    const msg = await signed();
    const calls: unknown[] = [];
    await verifyRequest(
      msg,
      opts({
        keyLookup: async (keyid, alg) => {
          calls.push([keyid, alg]);
          return ec.publicKey;
        },
      }),
    );
    expect(calls).toEqual([['k1', 'ecdsa-p256-sha256']]);
    const boom = new Error('db down');
    await expect(verifyRequest(msg, opts({ keyLookup: async () => Promise.reject(boom) }))).rejects.toBe(
      boom,
    );
  });

  it('checks Content-Digest against the body when given', async () => {
    const msg = await signed();
    msg.body = '{"a":2}';
    expect(await codeOf(verifyRequest(msg, opts()))).toBe('digest_mismatch');
    await expect(verifyRequest(msg, opts({ checkContentDigest: false }))).resolves.toBeTruthy();
    delete msg.body;
    await expect(verifyRequest(msg, opts())).resolves.toBeTruthy();
  });

  it('verifies all five algorithms end to end', async () => {
    const rsaPss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
    const hmac = createSecretKey(Buffer.alloc(32, 7));
    const cases = [
      { alg: 'ecdsa-p256-sha256', priv: ec.privateKey, pub: ec.publicKey },
      { alg: 'rsa-v1_5-sha256', priv: rsa.privateKey, pub: rsa.publicKey },
      { alg: 'rsa-pss-sha512', priv: rsa.privateKey, pub: rsa.publicKey },
      { alg: 'rsa-pss-sha512', priv: rsaPss.privateKey, pub: rsaPss.publicKey },
      { alg: 'ed25519', priv: ed.privateKey, pub: ed.publicKey },
      { alg: 'hmac-sha256', priv: hmac, pub: hmac },
    ] as const;
    for (const c of cases) {
      const msg = await signed({ signer: createSigner({ key: c.priv, alg: c.alg, keyid: 'k' }) });
      await expect(verifyRequest(msg, opts({ keyLookup: async () => c.pub }))).resolves.toMatchObject({
        alg: c.alg,
      });
    }
    // rsa-v1_5 signature presented as rsa-pss (alg swapped) must fail.
    const v15 = await signed({
      signer: createSigner({ key: rsa.privateKey, alg: 'rsa-v1_5-sha256', keyid: 'k' }),
    });
    v15.headers['signature-input'] = v15.headers['signature-input']!.replace(
      'rsa-v1_5-sha256',
      'rsa-pss-sha512',
    );
    expect(await codeOf(verifyRequest(v15, opts({ keyLookup: async () => rsa.publicKey })))).toBe(
      'bad_signature',
    );
    // HMAC keys are never taken from strings (a PEM public key must not become an HMAC secret).
    const h = await signed({ signer: createSigner({ key: hmac, alg: 'hmac-sha256', keyid: 'k' }) });
    const pem = ec.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    expect(await codeOf(verifyRequest(h, opts({ keyLookup: async () => pem })))).toBe('alg_mismatch');
  });
});
