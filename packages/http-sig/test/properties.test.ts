import { createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  contentDigest,
  createSignatureBase,
  createSigner,
  type HttpMessage,
  HttpSigError,
  parseComponent,
  type SignatureAlgorithm,
  signRequest,
  verifyContentDigest,
  verifyRequest,
} from '../src/index.js';

const NOW = 1_800_000_000;
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const hmac = createSecretKey(Buffer.alloc(32, 3));
const KEYS: Record<string, { alg: SignatureAlgorithm; priv: KeyObject; pub: KeyObject }> = {
  ec: { alg: 'ecdsa-p256-sha256', priv: ec.privateKey, pub: ec.publicKey },
  ed: { alg: 'ed25519', priv: ed.privateKey, pub: ed.publicKey },
  hmac: { alg: 'hmac-sha256', priv: hmac, pub: hmac },
};

const TOKEN_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&*+^`|~';
const fieldName = fc
  .string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 12 })
  .filter((n) => !['signature', 'signature-input', 'content-digest'].includes(n) && !n.startsWith('@'));
/** Field values: HTAB, visible ASCII, SP and obs-text, no leading/trailing whitespace. */
const fieldChar = fc.oneof(
  fc.integer({ min: 0x21, max: 0x7e }),
  fc.constantFrom(0x20, 0x09),
  fc.integer({ min: 0x80, max: 0xff }),
);
const fieldValue = fc
  .array(fieldChar, { maxLength: 40 })
  .map((codes) => String.fromCharCode(...codes).replace(/^[ \t]+|[ \t]+$/g, ''));
const pathSegment = fc.string({
  unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_~'),
  maxLength: 8,
});
const method = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'post', 'M-SEARCH');

const requestArb = fc.record({
  method,
  path: fc.array(pathSegment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join('/')}`),
  query: fc.option(
    fc
      .array(fc.tuple(pathSegment, pathSegment), { maxLength: 3 })
      .map((kv) => kv.map(([k, v]) => `${k}=${v}`).join('&')),
    { nil: undefined },
  ),
  headers: fc.dictionary(fieldName, fieldValue, { minKeys: 1, maxKeys: 5 }),
  body: fc.uint8Array({ maxLength: 256 }),
  key: fc.constantFrom('ec', 'ed', 'hmac'),
});

type RequestCase = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function build(rc: RequestCase): {
  message: HttpMessage & { headers: Record<string, string> };
  components: string[];
} {
  const headers: Record<string, string> = { ...rc.headers, 'content-digest': contentDigest(rc.body) };
  const url = `https://host.example${rc.path}${rc.query === undefined ? '' : `?${rc.query}`}`;
  const components = [
    '@method',
    '@path',
    '@query',
    '@authority',
    'content-digest',
    ...Object.keys(rc.headers),
  ];
  return { message: { method: rc.method, url, headers, body: rc.body }, components };
}

async function signCase(rc: RequestCase) {
  const { message, components } = build(rc);
  const k = KEYS[rc.key]!;
  const out = await signRequest(message, {
    signer: createSigner({ key: k.priv, alg: k.alg, keyid: 'k' }),
    components,
    label: 'geo',
    created: NOW,
    expires: NOW + 300,
    nonce: 'nonce-1',
    tag: 'geofence/v1',
  });
  message.headers['signature-input'] = out['signature-input'];
  message.headers.signature = out.signature;
  return { message, components, k };
}

function verify(message: HttpMessage, pub: KeyObject) {
  return verifyRequest(message, { keyLookup: async () => pub, now: NOW, label: 'geo' });
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err;
  }
}

function flipChar(text: string, index: number, xor: number): string {
  const code = text.charCodeAt(index) ^ xor;
  return text.slice(0, index) + String.fromCharCode(code) + text.slice(index + 1);
}

describe('properties', () => {
  it('sign → verify round-trips over random requests, headers and bodies', async () => {
    await fc.assert(
      fc.asyncProperty(requestArb, async (rc) => {
        const { message, components, k } = await signCase(rc);
        const v = await verify(message, k.pub);
        expect(v.components).toEqual(components);
        expect(v.alg).toBe(k.alg);
      }),
      { numRuns: 300 },
    );
  });

  it('flipping any byte of a covered header value fails with a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(requestArb, fc.nat(), fc.integer({ min: 1, max: 255 }), async (rc, pick, xor) => {
        const { message, k } = await signCase(rc);
        const names = Object.keys(rc.headers).filter((n) => message.headers[n] !== '');
        fc.pre(names.length > 0);
        const name = names[pick % names.length]!;
        const value = message.headers[name]!;
        message.headers[name] = flipChar(value, pick % value.length, xor);
        const err = await rejection(verify(message, k.pub));
        expect(err).toBeInstanceOf(HttpSigError);
      }),
      { numRuns: 300 },
    );
  });

  it('flipping any byte of the method, target, body or a signature parameter fails with a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(
        requestArb,
        fc.constantFrom('method', 'url', 'body', 'input'),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        async (rc, where, pick, xor) => {
          const { message, k } = await signCase(rc);
          if (where === 'method')
            message.method = flipChar(message.method, pick % message.method.length, xor);
          if (where === 'url') {
            // Flip inside path+query (the authority is covered too, but host case is normalised by design).
            const start = 'https://host.example'.length;
            const signed = new URL(message.url);
            message.url = flipChar(message.url, start + (pick % (message.url.length - start)), xor);
            // "/" -> "?" turns https://host.example/ into https://host.example? — the same @path "/"
            // and @query "?" (RFC 9421 §2.2.7: an empty query is "?"), so the same signed target.
            const flipped = URL.canParse(message.url) ? new URL(message.url) : undefined;
            fc.pre(
              flipped === undefined ||
                flipped.pathname !== signed.pathname ||
                (flipped.search || '?') !== (signed.search || '?') ||
                flipped.host !== signed.host,
            );
          }
          if (where === 'body') {
            fc.pre((message.body as Uint8Array).length > 0);
            const body = Uint8Array.from(message.body as Uint8Array);
            body[pick % body.length]! ^= xor;
            message.body = body;
          }
          if (where === 'input') {
            const input = message.headers['signature-input']!;
            message.headers['signature-input'] = flipChar(input, pick % input.length, xor);
          }
          const err = await rejection(verify(message, k.pub));
          expect(err).toBeInstanceOf(HttpSigError);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('flipping any bit of the signature bytes fails; text flips fail unless they decode to the same bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        requestArb,
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 1, max: 255 }),
        async (rc, pick, bit, xor) => {
          const { message, k } = await signCase(rc);
          const original = message.headers.signature as string;
          const bytes = Buffer.from(original.slice(5, -1), 'base64');
          bytes[pick % bytes.length]! ^= 1 << bit;
          message.headers.signature = `geo=:${bytes.toString('base64')}:`;
          const err = await rejection(verify(message, k.pub));
          expect(err).toMatchObject({ code: 'bad_signature' });

          // Text-level flip of the Signature header: RFC 8941 lets parsers accept non-zero pad bits, so a flip
          // that decodes to identical bytes may verify; anything else must fail with a typed error.
          message.headers.signature = flipChar(original, pick % original.length, xor);
          const textErr = await rejection(verify(message, k.pub));
          if (textErr === undefined) {
            const m = /^geo=:([^:]*):$/.exec(message.headers.signature);
            expect(
              m && Buffer.from(m[1]!, 'base64').equals(Buffer.from(original.slice(5, -1), 'base64')),
            ).toBe(true);
          } else {
            expect(textErr).toBeInstanceOf(HttpSigError);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  const sfChars = fc.constantFrom(...'geo=()";:,@ *?-_.0123456789abcdefABC\\/+\t%\n\u00e9\u2603'.split(''));
  const garbage = fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.string({ unit: sfChars, maxLength: 80 }),
    fc.string({ unit: 'binary', maxLength: 60 }),
    // Structurally plausible inputs with random components and params.
    fc
      .tuple(
        fc.array(
          fc.oneof(
            fc.constantFrom(
              '"@method"',
              '"@path"',
              '"@query-param"',
              '"x"',
              '"@status"',
              '"@target-uri"',
              '"a";key="b"',
              '"a";bs',
              '"a";sf',
              '"@x"',
              'tok',
              '1',
              ':AA==:',
            ),
            fc.string({ unit: sfChars, maxLength: 6 }),
          ),
          { maxLength: 5 },
        ),
        fc.array(
          fc.tuple(
            fc.constantFrom('created', 'expires', 'keyid', 'alg', 'nonce', 'tag', 'x'),
            fc.oneof(
              fc.integer().map(String),
              fc.constantFrom('"k"', '"ed25519"', '?1', '1.5', ':AA==:', 'tok', '"ecdsa-p256-sha256"'),
            ),
          ),
          { maxLength: 6 },
        ),
      )
      .map(([items, params]) => `geo=(${items.join(' ')})${params.map(([k, v]) => `;${k}=${v}`).join('')}`),
  );

  it('garbage Signature / Signature-Input values only ever raise HttpSigError', async () => {
    const target = { method: 'POST', url: 'https://h.example/p?a=1', headers: { x: '1', a: 'b=1' } };
    await fc.assert(
      fc.asyncProperty(
        garbage,
        fc.oneof(garbage, fc.constant('geo=:AAAA:'), fc.string()),
        async (input, signature) => {
          const message: HttpMessage = {
            ...target,
            headers: { ...target.headers, 'signature-input': input, signature },
          };
          const err = await rejection(
            verifyRequest(message, {
              keyLookup: async (_keyid, alg) => (alg === 'ed25519' ? ed.publicKey : ec.publicKey),
              now: NOW,
              maxAgeSeconds: 1_000_000_000,
            }),
          );
          expect(err).toBeInstanceOf(HttpSigError);
          let baseErr: unknown;
          try {
            createSignatureBase(message, input, 'geo');
          } catch (e) {
            baseErr = e;
          }
          if (baseErr !== undefined) expect(baseErr).toBeInstanceOf(HttpSigError);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('garbage component identifiers and Content-Digest values only ever raise HttpSigError', () => {
    const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: sfChars, maxLength: 40 }));
    fc.assert(
      fc.property(text, fc.uint8Array({ maxLength: 32 }), (garbageText, body) => {
        for (const f of [() => parseComponent(garbageText), () => verifyContentDigest(garbageText, body)]) {
          try {
            f();
          } catch (err) {
            expect(err).toBeInstanceOf(HttpSigError);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
