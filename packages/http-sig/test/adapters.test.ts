import { generateKeyPairSync } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  contentDigest,
  createSigner,
  HttpSigError,
  messageFromFetchRequest,
  messageFromIncoming,
  signRequest,
  verifyRequest,
} from '../src/index.js';

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signer = createSigner({ key: ec.privateKey, alg: 'ecdsa-p256-sha256', keyid: 'agent' });
const COMPONENTS = [
  '@method',
  '@target-uri',
  '@authority',
  '@path',
  '@query',
  'content-type',
  'content-digest',
];

async function readBody(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

let server: Server;
let origin: string;

beforeAll(async () => {
  // A real server on loopback: verifies the request it receives and answers with the outcome.
  server = createServer(async (req, res) => {
    const message = messageFromIncoming(req, await readBody(req));
    const required = req.headers['x-required']?.toString().split(',') ?? COMPONENTS;
    try {
      const verified = await verifyRequest(message, {
        keyLookup: async (keyid) => (keyid === 'agent' ? ec.publicKey : undefined),
        requiredComponents: required,
      });
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ok: true, verified, url: message.url }));
    } catch (err) {
      const code = err instanceof HttpSigError ? err.code : 'internal';
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: false, code }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

async function send(url: string, headers: Record<string, string | string[]>, body: string) {
  return new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('messageFromIncoming (real HTTP server on 127.0.0.1)', () => {
  it('verifies a request signed by the client', async () => {
    const body = '{"reading":42}';
    const url = `${origin}/metrics?a=1&b=two%20words`;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-digest': contentDigest(body),
    };
    const sig = await signRequest(
      { method: 'POST', url, headers, body },
      { signer, components: COMPONENTS, label: 'geo' },
    );
    const res = await send(
      url,
      { ...headers, 'signature-input': sig['signature-input'], signature: sig.signature },
      body,
    );
    expect(res.status).toBe(200);
    expect(res.json.url).toBe(url);
    expect((res.json.verified as { components: string[] }).components).toEqual(COMPONENTS);
  });

  it('rejects a body that does not match the signed Content-Digest', async () => {
    const body = '{"reading":42}';
    const url = `${origin}/metrics`;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-digest': contentDigest(body),
    };
    const sig = await signRequest({ method: 'POST', url, headers, body }, { signer, components: COMPONENTS });
    const res = await send(
      url,
      { ...headers, 'signature-input': sig['signature-input'], signature: sig.signature },
      '{"reading":43}',
    );
    expect(res.json).toEqual({ ok: false, code: 'digest_mismatch' });
  });

  it('keeps repeated field lines apart for bs', async () => {
    const url = `${origin}/multi`;
    const lines = ['value, with, lots', 'of, commas'];
    const components = ['@method', 'x-multi;bs'];
    const sig = await signRequest(
      { method: 'POST', url, headers: { 'x-multi': lines } },
      { signer, components },
    );
    const ok = await send(
      url,
      { 'x-multi': lines, 'x-required': components.join(','), ...asHeaders(sig) },
      '',
    );
    expect(ok.status).toBe(200);
    // The same text on one line is a different bs value.
    const merged = await send(
      url,
      { 'x-multi': lines.join(', '), 'x-required': components.join(','), ...asHeaders(sig) },
      '',
    );
    expect(merged.json).toEqual({ ok: false, code: 'bad_signature' });
  });

  it('does not trust the Host of another authority', async () => {
    const body = '';
    const url = `${origin}/metrics`;
    const sig = await signRequest(
      {
        method: 'POST',
        url: 'http://other.example/metrics',
        headers: { 'content-type': 'x', 'content-digest': contentDigest(body) },
      },
      { signer, components: COMPONENTS },
    );
    const res = await send(
      url,
      { 'content-type': 'x', 'content-digest': contentDigest(body), ...asHeaders(sig) },
      body,
    );
    expect(res.json).toEqual({ ok: false, code: 'bad_signature' });
  });
});

function asHeaders(sig: { 'signature-input': string; signature: string }): Record<string, string> {
  return { 'signature-input': sig['signature-input'], signature: sig.signature };
}

describe('messageFromIncoming options', () => {
  it('uses scheme/authority overrides and absolute-form targets', () => {
    const fake = {
      url: '/p?q',
      method: 'GET',
      headers: { host: 'internal:3000' },
      headersDistinct: {},
      socket: {},
    };
    const req = fake as unknown as IncomingMessage;
    expect(messageFromIncoming(req).url).toBe('http://internal:3000/p?q');
    expect(messageFromIncoming(req, undefined, { scheme: 'https', authority: 'api.example' }).url).toBe(
      'https://api.example/p?q',
    );
    const noHost = { ...fake, headers: {} } as unknown as IncomingMessage;
    expect(messageFromIncoming(noHost).url).toBe('/p?q');
    const tls = { ...fake, socket: { encrypted: true } } as unknown as IncomingMessage;
    expect(messageFromIncoming(tls, new Uint8Array([1])).url).toBe('https://internal:3000/p?q');
  });
});

describe('messageFromFetchRequest', () => {
  it('signs and verifies a fetch Request and leaves its body readable', async () => {
    const body = '{"x":1}';
    const unsigned = new Request('https://api.example/metrics?z=1', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-digest': contentDigest(body) },
      body,
    });
    const sig = await signRequest(await messageFromFetchRequest(unsigned), {
      signer,
      components: COMPONENTS,
      tag: 't',
    });
    const headers = new Headers(unsigned.headers);
    headers.set('signature-input', sig['signature-input']);
    headers.set('signature', sig.signature);
    const signed = new Request(unsigned, { headers });
    const message = await messageFromFetchRequest(signed);
    expect(new TextDecoder().decode(message.body as Uint8Array)).toBe(body);
    await expect(
      verifyRequest(message, {
        keyLookup: async () => ec.publicKey,
        requiredComponents: COMPONENTS,
        tag: 't',
      }),
    ).resolves.toMatchObject({ keyid: 'agent', tag: 't' });
    expect(await signed.text()).toBe(body);
  });

  it('handles requests without a body', async () => {
    const get = new Request('https://api.example/nonce?public_key_hash=abc');
    const message = await messageFromFetchRequest(get);
    expect(message.body).toBeUndefined();
    const sig = await signRequest(message, { signer, components: ['@method', '@path', '@query'] });
    const headers = new Headers({ 'signature-input': sig['signature-input'], signature: sig.signature });
    const verified = await verifyRequest(await messageFromFetchRequest(new Request(get, { headers })), {
      keyLookup: async () => ec.publicKey,
    });
    expect(verified.components).toEqual(['@method', '@path', '@query']);
  });
});
