import { sign as cryptoSign, verify as cryptoVerify, generateKeyPairSync } from 'node:crypto';
import { appendSignature, createSignature, verifySignature } from 'http-message-sig';
import { httpbis } from 'http-message-signatures';
import { describe, expect, it } from 'vitest';
import {
  contentDigest,
  createSigner,
  messageFromFetchRequest,
  signRequest,
  verifyRequest,
} from '../src/index.js';

/**
 * Interoperability with independent RFC 9421 implementations:
 * - `http-message-sig` 0.3.0 (a second, strict RFC 9421 implementation; fetch `Request` based), both directions;
 * - `http-message-signatures` 1.0.6 (the library this package builds on) verifying our output.
 */
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const COMPONENTS = ['@method', '@path', 'content-type', 'content-digest', 'workload-geo-id'];
const body = JSON.stringify({ version: 1, metrics: { cpu: 0.5 } });

function fetchRequest(extra: Record<string, string> = {}): Request {
  return new Request('https://collector.example:8443/metrics?batch=1', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'content-digest': contentDigest(body),
      'workload-geo-id': 'US/California/Santa Clara',
      ...extra,
    },
    body,
  });
}

const p256Verifier = {
  algorithm: 'ecdsa-p256-sha256',
  verify: (data: Uint8Array, signature: Uint8Array) =>
    cryptoVerify('sha256', data, { key: ec.publicKey, dsaEncoding: 'ieee-p1363' }, signature),
};

describe('cross-implementation checks', () => {
  it('our P-256 signature verifies with http-message-sig', async () => {
    const now = Math.floor(Date.now() / 1000);
    const request = fetchRequest();
    const headers = await signRequest(await messageFromFetchRequest(request), {
      signer: createSigner({ key: ec.privateKey, alg: 'ecdsa-p256-sha256', keyid: 'agent-key' }),
      // (@request-target is left out: http-message-sig derives it only from its own descriptors, not a Request.)
      components: [...COMPONENTS, '@authority', '@query', '@target-uri', '@scheme'],
      label: 'geo',
      created: now,
      expires: now + 300,
      nonce: 'bm9uY2U',
      tag: 'geofence/v1',
    });
    const signed = new Request(request, {
      headers: appendSignature(request.headers, {
        signature: headers.signature,
        signatureInput: headers['signature-input'],
      }),
    });
    const verified = await verifySignature(signed, {
      label: 'geo',
      policy: {
        algorithms: ['ecdsa-p256-sha256'],
        requiredComponents: COMPONENTS,
        requiredParameters: ['created', 'expires', 'keyid', 'alg', 'nonce', 'tag'],
        maxAge: 300,
      },
      resolveVerifier: (candidate) => {
        expect(candidate.parameters.keyid).toBe('agent-key');
        return p256Verifier;
      },
    });
    expect(verified.label).toBe('geo');
    expect(verified.parameters.nonce).toBe('bm9uY2U');

    // And a tampered header is rejected by the other implementation too.
    const tampered = new Request(signed, { headers: new Headers(signed.headers) });
    tampered.headers.set('workload-geo-id', 'FR/Paris');
    await expect(
      verifySignature(tampered, {
        label: 'geo',
        policy: { algorithms: ['ecdsa-p256-sha256'], requiredComponents: [], requiredParameters: [] },
        resolveVerifier: () => p256Verifier,
      }),
    ).rejects.toThrow();
  });

  it('http-message-sig output verifies with verifyRequest', async () => {
    const now = Math.floor(Date.now() / 1000);
    const request = fetchRequest();
    const fields = await createSignature(request, {
      label: 'sig1',
      components: [...COMPONENTS, '@authority', '@target-uri'],
      parameters: {
        created: now,
        keyid: 'agent-key',
        alg: 'ecdsa-p256-sha256',
        nonce: 'abc',
        tag: 'geofence/v1',
      },
      signer: {
        algorithm: 'ecdsa-p256-sha256',
        sign: (data) => cryptoSign('sha256', data, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }),
      },
    });
    const signed = new Request(request, { headers: appendSignature(request.headers, fields) });
    const verified = await verifyRequest(await messageFromFetchRequest(signed), {
      keyLookup: async () => ec.publicKey,
      requiredComponents: COMPONENTS,
      tag: 'geofence/v1',
    });
    expect(verified).toMatchObject({ label: 'sig1', alg: 'ecdsa-p256-sha256', nonce: 'abc' });
  });

  it('our P-256 signature verifies with http-message-signatures (the underlying library)', async () => {
    const message = {
      method: 'POST',
      url: 'https://collector.example/metrics',
      headers: {
        'content-type': 'application/json',
        'content-digest': contentDigest(body),
        'workload-geo-id': 'US/California/Santa Clara',
      } as Record<string, string>,
    };
    const out = await signRequest(message, {
      signer: createSigner({ key: ec.privateKey, alg: 'ecdsa-p256-sha256', keyid: 'agent-key' }),
      components: COMPONENTS,
      label: 'geo',
    });
    message.headers['signature-input'] = out['signature-input'];
    message.headers.signature = out.signature;
    const ok = await httpbis.verifyMessage(
      {
        keyLookup: async () => ({
          id: 'agent-key',
          algs: ['ecdsa-p256-sha256'],
          verify: async (data: Buffer, signature: Buffer) => p256Verifier.verify(data, signature),
        }),
      },
      message,
    );
    expect(ok).toBe(true);
  });
});
