/**
 * `requireGeofence` (Express) and `requireGeofenceFastify` over real HTTP on 127.0.0.1, with
 * credentials from the real issuer code (`AttestationResultSigner`, `PogCertificateAuthority`) and a
 * remote JWKS served over HTTP. Software P-256 keys stand in for the TPM-resident AppSKs: the TPM is
 * not the subject here (the swtpm end-to-end run is apps/reference-server/test/resource-server.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { contentDigest, createSigner, signRequest } from '@geofence/http-sig';
import {
  CREDENTIAL_CERTIFICATE_HEADER,
  CREDENTIAL_HEADER,
  CREDENTIAL_SIGNATURE_LABEL,
  CREDENTIAL_SIGNATURE_TAG,
  CREDENTIAL_X509_EXTENSION_OID,
} from '@geofence/protocol';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { createLocalJWKSet, exportJWK, jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireGeofenceFastify } from '../src/fastify.js';
import {
  AttestationResultSigner,
  type GeofenceAdmittedMessage,
  type GeofenceResultClaim,
  jwkThumbprint,
  MemoryNonceStore,
  PogCertificateAuthority,
  RedisNonceStore,
  type RequireGeofenceOptions,
  requireGeofence,
  verifyAttestationResult,
} from '../src/index.js';
import { close, listen } from './helpers/http.js';
import { freePort, startRedis } from './helpers/redis.js';

const ISSUER = 'https://collector.test';
const DIGEST = 'a'.repeat(64);
const dir = mkdtempSync(join(tmpdir(), 'geofence-rg-'));

let signer: AttestationResultSigner;
let issuerKey: KeyObject;
let otherIssuer: AttestationResultSigner;
let ca: PogCertificateAuthority;
let jwksServer: Server;
let expressServer: Server;
let fastify: FastifyInstance;
let expressBase: string;
let fastifyBase: string;
let jwksUrl: string;

const claim = (over: Partial<GeofenceResultClaim> = {}): GeofenceResultClaim => ({
  keyid: 'b'.repeat(64),
  ek_hash: 'c'.repeat(64),
  workload_digest: DIGEST,
  platform_integrity: 'recorded',
  agent_integrity: 'verified',
  residency: 'tpm+geofence',
  trust_level: 'low',
  evidence: 'lah-bundle',
  attested_at: Math.floor(Date.now() / 1000),
  nonce_hash: 'x',
  area: { region: 'US', state: 'California', city: 'Santa Clara', place: 'US-CA' },
  ...over,
});

interface Holder {
  key: KeyObject;
  publicKey: KeyObject;
  jkt: string;
}

async function holder(): Promise<Holder> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { key: privateKey, publicKey, jkt: await jwkThumbprint(publicKey) };
}

interface SendOptions {
  method?: string;
  body?: string;
  credential: { jwt?: string; cert?: Uint8Array };
  /** Signing key (default: the holder's). */
  signWith?: Holder;
  keyid?: string;
  components?: string[];
  nonce?: string;
  created?: number;
  tag?: string;
  path?: string;
  /** Send to this base instead of the one signed for. */
  sendTo?: string;
}

async function pogHeaders(base: string, o: SendOptions, h: Holder): Promise<Record<string, string>> {
  const signWith = o.signWith ?? h;
  const headers: Record<string, string> = {};
  let credHeader = CREDENTIAL_HEADER;
  if (o.credential.jwt !== undefined) headers[CREDENTIAL_HEADER] = o.credential.jwt;
  if (o.credential.cert !== undefined) {
    credHeader = CREDENTIAL_CERTIFICATE_HEADER;
    headers[CREDENTIAL_CERTIFICATE_HEADER] = `:${Buffer.from(o.credential.cert).toString('base64')}:`;
  }
  if (o.body !== undefined) headers['content-digest'] = contentDigest(o.body);
  const components = o.components ?? [
    '@method',
    '@target-uri',
    credHeader,
    ...(o.body !== undefined ? ['content-digest'] : []),
  ];
  const sig = await signRequest(
    { method: o.method ?? 'GET', url: base + (o.path ?? '/models/model.bin'), headers },
    {
      signer: createSigner({ key: signWith.key, alg: 'ecdsa-p256-sha256', keyid: o.keyid ?? signWith.jkt }),
      components,
      label: CREDENTIAL_SIGNATURE_LABEL,
      tag: o.tag ?? CREDENTIAL_SIGNATURE_TAG,
      nonce: o.nonce ?? randomBytes(16).toString('base64url'),
      ...(o.created === undefined ? {} : { created: o.created }),
    },
  );
  return { ...headers, ...sig };
}

async function call(base: string, o: SendOptions, h: Holder, headers?: Record<string, string>) {
  const hs = headers ?? (await pogHeaders(base, o, h));
  const res = await fetch((o.sendTo ?? base) + (o.path ?? '/models/model.bin'), {
    method: o.method ?? 'GET',
    headers: o.body !== undefined ? { ...hs, 'content-type': 'text/plain' } : hs,
    ...(o.body !== undefined ? { body: o.body } : {}),
  });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    body = { _raw: text };
  }
  return { status: res.status, body, headers: hs };
}

const check = (r: { body: Record<string, unknown> }) => ({
  validation_type: r.body.validation_type,
  check: (r.body.details as { check?: unknown } | undefined)?.check,
});

let alice: Holder;
let mallory: Holder;
let aliceJwt: string;
let aliceCert: Uint8Array;

beforeAll(async () => {
  issuerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const key = issuerKey;
  signer = await AttestationResultSigner.create({ key, issuer: ISSUER });
  otherIssuer = await AttestationResultSigner.create({
    key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    issuer: 'https://rogue.test',
  });
  ca = await PogCertificateAuthority.create({ key });
  alice = await holder();
  mallory = await holder();
  const issued = await signer.issue('agent-001', alice.publicKey, claim());
  aliceJwt = issued.jwt;
  aliceCert = await ca.issue(issued.payload, alice.publicKey);

  jwksServer = createServer((_req, res) => {
    res.setHeader('content-type', 'application/jwk-set+json');
    res.end(JSON.stringify(signer.jwks()));
  });
  jwksUrl = `${await listen(jwksServer)}/.well-known/jwks.json`;

  // Ports first: `origin` names the server itself.
  expressServer = createServer();
  expressBase = await listen(expressServer);
  const policy: RequireGeofenceOptions['policy'] = {
    minTrustLevel: 'low',
    allow: [{ region: 'US', state: 'California' }],
    workloadDigests: [DIGEST],
    maxAgeSeconds: 600,
  };
  const app = express();
  app.use(
    '/models',
    requireGeofence({
      issuer: ISSUER,
      jwks: jwksUrl,
      caCertificates: ca.certificatePem,
      origin: expressBase,
      policy,
    }),
  );
  app.get('/models/model.bin', (req, res) => {
    res.json({ served: 'model.bin', agent: (req as GeofenceAdmittedMessage).geofenceCredential?.agentName });
  });
  app.post('/models/upload', (req, res) => {
    res.json({ bytes: (req as GeofenceAdmittedMessage).rawBody?.length });
  });
  expressServer.on('request', app);

  const port = await freePort();
  fastifyBase = `http://127.0.0.1:${port}`;
  fastify = Fastify();
  const guard = requireGeofenceFastify({
    issuer: ISSUER,
    jwks: signer.jwks(),
    origin: fastifyBase,
    replay: new MemoryNonceStore(),
    policy: { minTrustLevel: 'medium' },
  });
  fastify.get('/models/model.bin', { preHandler: guard }, async (request) => ({
    served: 'model.bin',
    agent: request.geofenceCredential?.agentName,
  }));
  // Bodies as raw bytes: content-digest covers the exact bytes.
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  fastify.post('/models/upload', { preHandler: guard }, async (request) => ({
    bytes: (request.body as Buffer).length,
  }));
  await fastify.listen({ port, host: '127.0.0.1' });
});

afterAll(async () => {
  await close(expressServer);
  await close(jwksServer);
  await fastify?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('requireGeofence (Express)', () => {
  it('admits a JWT credential signed by its key, then refuses the same request replayed', async () => {
    const first = await call(expressBase, { credential: { jwt: aliceJwt } }, alice);
    expect(first).toMatchObject({ status: 200, body: { served: 'model.bin', agent: 'agent-001' } });
    const replay = await call(expressBase, { credential: { jwt: aliceJwt } }, alice, first.headers);
    expect(replay.status).toBe(401);
    expect(check(replay)).toEqual({ validation_type: 'nonce_validation', check: 'nonce_reused' });
  });

  it('admits the X.509 credential and a body covered by content-digest', async () => {
    const cert = await call(expressBase, { credential: { cert: aliceCert } }, alice);
    expect(cert.status).toBe(200);
    const post = await call(
      expressBase,
      { method: 'POST', path: '/models/upload', body: 'hello', credential: { jwt: aliceJwt } },
      alice,
    );
    expect(post).toMatchObject({ status: 200, body: { bytes: 5 } });
  });

  it('refuses a copied credential signed by another key (keyid of the thief, or keyid forged)', async () => {
    const own = await call(expressBase, { credential: { jwt: aliceJwt }, signWith: mallory }, alice);
    expect(own.status).toBe(401);
    expect(check(own)).toEqual({ validation_type: 'signature_verification', check: 'keyid' });
    const forged = await call(
      expressBase,
      { credential: { jwt: aliceJwt }, signWith: mallory, keyid: alice.jkt },
      alice,
    );
    expect(forged.status).toBe(401);
    expect(check(forged)).toEqual({ validation_type: 'signature_verification', check: 'signature' });
  });

  it('refuses missing and extra covered components, and a missing credential', async () => {
    const missing = await call(
      expressBase,
      { credential: { jwt: aliceJwt }, components: ['@method', '@target-uri'] },
      alice,
    );
    expect(check(missing)).toEqual({
      validation_type: 'signature_verification',
      check: 'signature_components',
    });
    const extra = await call(
      expressBase,
      {
        credential: { jwt: aliceJwt },
        components: ['@method', '@target-uri', CREDENTIAL_HEADER, '@authority'],
      },
      alice,
    );
    expect(extra.status).toBe(401);
    expect(check(extra)).toEqual({
      validation_type: 'signature_verification',
      check: 'signature_components',
    });
    const noBodyDigest = await call(
      expressBase,
      {
        method: 'POST',
        path: '/models/upload',
        body: 'hello',
        credential: { jwt: aliceJwt },
        components: ['@method', '@target-uri', CREDENTIAL_HEADER],
      },
      alice,
    );
    expect(check(noBodyDigest)).toEqual({
      validation_type: 'signature_verification',
      check: 'signature_components',
    });
    const res = await fetch(`${expressBase}/models/model.bin`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { details: { check: string } }).details.check).toBe('credential_missing');
  });

  it('refuses an expired credential, one from another issuer, and old location evidence', async () => {
    const old = new Date(Date.now() - 3600_000);
    const expired = await signer.sign('agent-001', alice.publicKey, claim(), old);
    const r1 = await call(expressBase, { credential: { jwt: expired } }, alice);
    expect(r1.status).toBe(403);
    expect(check(r1)).toEqual({ validation_type: 'attestation', check: 'credential_expired' });
    const rogue = await otherIssuer.sign('agent-001', alice.publicKey, claim());
    const r2 = await call(expressBase, { credential: { jwt: rogue } }, alice);
    expect(check(r2)).toEqual({ validation_type: 'attestation', check: 'credential_signature' });
    const stale = await signer.sign(
      'agent-001',
      alice.publicKey,
      claim({ attested_at: Math.floor(Date.now() / 1000) - 3600 }),
    );
    const r3 = await call(expressBase, { credential: { jwt: stale } }, alice);
    expect(check(r3)).toEqual({ validation_type: 'attestation', check: 'credential_age' });
  });

  it('refuses by resource policy: trust level none, region outside, unapproved workload', async () => {
    const none = await signer.sign('agent-001', alice.publicKey, claim({ trust_level: 'none' }));
    const r1 = await call(expressBase, { credential: { jwt: none } }, alice);
    expect(r1.status).toBe(403);
    expect(check(r1)).toEqual({ validation_type: 'geolocation_policy', check: 'trust_level' });
    const berlin = await signer.sign(
      'agent-001',
      alice.publicKey,
      claim({ area: { region: 'DE', state: 'Berlin', place: 'DE-BE' } }),
    );
    const r2 = await call(expressBase, { credential: { jwt: berlin } }, alice);
    expect(check(r2)).toEqual({ validation_type: 'geolocation_policy', check: 'region' });
    const enrolOnly = await signer.sign('agent-001', alice.publicKey, claim({ residency: 'tpm' }));
    expect(check(await call(expressBase, { credential: { jwt: enrolOnly } }, alice))).toEqual({
      validation_type: 'geolocation_policy',
      check: 'residency',
    });
    const modified = await signer.sign(
      'agent-001',
      alice.publicKey,
      claim({ workload_digest: 'd'.repeat(64) }),
    );
    expect(check(await call(expressBase, { credential: { jwt: modified } }, alice))).toEqual({
      validation_type: 'attestation',
      check: 'workload_digest',
    });
  });

  it('refuses a request signed for another server, a stale created, a short nonce and the wrong tag', async () => {
    const elsewhere = await call(
      'https://models.elsewhere.test',
      { credential: { jwt: aliceJwt }, sendTo: expressBase },
      alice,
    );
    expect(check(elsewhere)).toEqual({ validation_type: 'signature_verification', check: 'signature' });
    const stale = await call(
      expressBase,
      { credential: { jwt: aliceJwt }, created: Math.floor(Date.now() / 1000) - 600 },
      alice,
    );
    expect(stale.status).toBe(401);
    expect(check(stale)).toEqual({ validation_type: 'timestamp_proximity', check: 'created' });
    const short = await call(expressBase, { credential: { jwt: aliceJwt }, nonce: 'abc' }, alice);
    expect(check(short)).toEqual({ validation_type: 'nonce_validation', check: 'nonce_length' });
    const tag = await call(expressBase, { credential: { jwt: aliceJwt }, tag: 'geofence/v1' }, alice);
    expect(check(tag)).toEqual({ validation_type: 'signature_verification', check: 'signature_missing' });
  });

  it('refuses a credential whose cnf.jwk is not the key cnf.jkt names', async () => {
    // Signed by the trusted issuer key itself, so only the binding check can catch it.
    const { payload } = await signer.issue('agent-001', alice.publicKey, claim());
    const forged = await new SignJWT({
      ...payload,
      cnf: { jkt: alice.jkt, jwk: await exportJWK(mallory.publicKey) },
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'geofence-ar+jwt', kid: signer.kid })
      .sign(issuerKey);
    const r = await call(expressBase, { credential: { jwt: forged } }, mallory, undefined);
    expect(r.status).toBe(403);
    expect(check(r)).toEqual({ validation_type: 'attestation', check: 'credential_key' });
  });

  it('refuses a certificate from an untrusted CA and both credential headers at once', async () => {
    const rogueCa = await PogCertificateAuthority.create({
      key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    });
    const { payload } = await signer.issue('agent-001', alice.publicKey, claim());
    const rogueCert = await rogueCa.issue(payload, alice.publicKey);
    const r1 = await call(expressBase, { credential: { cert: rogueCert } }, alice);
    expect(check(r1)).toEqual({ validation_type: 'attestation', check: 'certificate_untrusted' });
    const both = await call(expressBase, { credential: { jwt: aliceJwt, cert: aliceCert } }, alice);
    expect(both.status).toBe(400);
    expect(check(both)).toEqual({ validation_type: 'request_validation', check: 'credential_ambiguous' });
    // The same header twice (two field lines): which one would the signature have covered?
    const signed = await pogHeaders(expressBase, { credential: { jwt: aliceJwt } }, alice);
    const twice = new Headers(signed);
    twice.append(CREDENTIAL_HEADER, aliceJwt);
    const res = await fetch(`${expressBase}/models/model.bin`, { headers: twice });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { details: { check: string } }).details.check).toBe('credential_ambiguous');
  });
});

describe('requireGeofenceFastify', () => {
  it('applies its own policy (minTrustLevel medium) after the same checks', async () => {
    const r = await call(fastifyBase, { credential: { jwt: aliceJwt } }, alice);
    expect(r.status).toBe(403);
    expect(check(r)).toEqual({ validation_type: 'geolocation_policy', check: 'trust_level' });
    const medium = await signer.sign('agent-001', alice.publicKey, claim({ trust_level: 'medium' }));
    const ok = await call(fastifyBase, { credential: { jwt: medium } }, alice);
    expect(ok).toMatchObject({ status: 200, body: { served: 'model.bin', agent: 'agent-001' } });
    const replay = await call(fastifyBase, { credential: { jwt: medium } }, alice, ok.headers);
    expect(check(replay)).toEqual({ validation_type: 'nonce_validation', check: 'nonce_reused' });
    const post = await call(
      fastifyBase,
      { method: 'POST', path: '/models/upload', body: 'hello fastify', credential: { jwt: medium } },
      alice,
    );
    expect(post, JSON.stringify(post.body)).toMatchObject({ status: 200, body: { bytes: 13 } });
    // The body edited after signing: Content-Digest no longer matches.
    const signed = await pogHeaders(
      fastifyBase,
      { method: 'POST', path: '/models/upload', body: 'hello fastify', credential: { jwt: medium } },
      alice,
    );
    const edited = await fetch(`${fastifyBase}/models/upload`, {
      method: 'POST',
      headers: { ...signed, 'content-type': 'text/plain' },
      body: 'hello FASTIFY',
    });
    expect(edited.status).toBe(400);
    expect(((await edited.json()) as { details: { check: string } }).details.check).toBe('content_digest');
  });
});

describe('independent tools', () => {
  it('jose verifies the credential JWT against the published JWKS', async () => {
    const jwks = (await (await fetch(jwksUrl)).json()) as { keys: [] };
    const { payload, protectedHeader } = await jwtVerify(aliceJwt, createLocalJWKSet(jwks), {
      issuer: ISSUER,
    });
    expect(protectedHeader.typ).toBe('geofence-ar+jwt');
    expect(payload).toMatchObject({ sub: 'agent-001', cnf: { jkt: alice.jkt } });
    expect(payload.exp! - payload.iat!).toBe(600);
  });

  it('openssl shows the claims extension as critical and verifies the chain to the CA', () => {
    const certPath = join(dir, 'pog.der');
    const caPath = join(dir, 'ca.pem');
    writeFileSync(certPath, aliceCert);
    writeFileSync(caPath, ca.certificatePem);
    const text = execFileSync('openssl', ['x509', '-inform', 'DER', '-in', certPath, '-noout', '-text'], {
      encoding: 'utf8',
    });
    expect(text).toMatch(new RegExp(`${CREDENTIAL_X509_EXTENSION_OID.replaceAll('.', '\\.')}: critical`));
    expect(text).toContain('"sub":"agent-001"');
    const pem = join(dir, 'pog.pem');
    execFileSync('openssl', ['x509', '-inform', 'DER', '-in', certPath, '-out', pem]);
    // openssl refuses the unknown critical extension unless told to ignore it: fail closed.
    const refused = (() => {
      try {
        execFileSync('openssl', ['verify', '-CAfile', caPath, pem], { stdio: 'pipe' });
        return false;
      } catch {
        return true;
      }
    })();
    expect(refused).toBe(true);
    const ok = execFileSync('openssl', ['verify', '-ignore_critical', '-CAfile', caPath, pem], {
      encoding: 'utf8',
    });
    expect(ok).toContain(': OK');
  });
});

describe('verifyAttestationResult policy options (issue 16 item 6)', () => {
  it('minTrustLevel never accepts trust level none; maxAgeSeconds bounds the evidence age', async () => {
    const none = await signer.sign('agent-001', alice.publicKey, claim({ trust_level: 'none' }));
    await expect(verifyAttestationResult(none, signer.jwks(), { minTrustLevel: 'low' })).rejects.toThrow(
      /trust level none/,
    );
    await expect(
      verifyAttestationResult(aliceJwt, signer.jwks(), { minTrustLevel: 'medium' }),
    ).rejects.toThrow(/below medium/);
    await expect(
      verifyAttestationResult(aliceJwt, signer.jwks(), { minTrustLevel: 'low', maxAgeSeconds: 600 }),
    ).resolves.toMatchObject({ payload: { sub: 'agent-001' } });
    const stale = await signer.sign(
      'agent-001',
      alice.publicKey,
      claim({ attested_at: Math.floor(Date.now() / 1000) - 3600 }),
    );
    await expect(verifyAttestationResult(stale, signer.jwks(), { maxAgeSeconds: 600 })).rejects.toThrow(
      /too old/,
    );
  });
});

describe('trust anchors and shared replay store', () => {
  /** An Express app with `requireGeofence(options)` in front of a 200, on a free port. */
  async function guarded(options: Omit<RequireGeofenceOptions, 'origin'>) {
    const server = createServer();
    const base = await listen(server);
    const app = express();
    app.use(requireGeofence({ ...options, origin: base }));
    app.get('/models/model.bin', (_req, res) => {
      res.json({ ok: true });
    });
    server.on('request', app);
    return { base, close: () => close(server) };
  }

  it('names the issuer check for a trusted key that signs as another issuer', async () => {
    const sameKeyOtherIss = await AttestationResultSigner.create({
      key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      issuer: 'https://rogue.test',
    });
    const s = await guarded({
      issuer: ISSUER,
      jwks: { keys: [...signer.jwks().keys, ...sameKeyOtherIss.jwks().keys] },
    });
    try {
      const jwt = await sameKeyOtherIss.sign('agent-001', alice.publicKey, claim());
      const r = await call(s.base, { credential: { jwt } }, alice);
      expect(r.status).toBe(403);
      expect(check(r)).toEqual({ validation_type: 'attestation', check: 'credential_issuer' });
    } finally {
      await s.close();
    }
  });

  it('a fences policy admits only credentials decided by a named fence', async () => {
    const s = await guarded({
      issuer: ISSUER,
      jwks: signer.jwks(),
      policy: { fences: ['santa-clara-campus'] },
    });
    try {
      const inFence = await signer.sign(
        'agent-001',
        alice.publicKey,
        claim({ area: { region: 'US', state: 'California', fence: 0, fence_id: 'santa-clara-campus' } }),
      );
      expect((await call(s.base, { credential: { jwt: inFence } }, alice)).status).toBe(200);
      const other = await signer.sign(
        'agent-001',
        alice.publicKey,
        claim({ area: { region: 'US', state: 'California', fence: 0, fence_id: 'austin-lab' } }),
      );
      expect(check(await call(s.base, { credential: { jwt: other } }, alice))).toEqual({
        validation_type: 'geolocation_policy',
        check: 'fence',
      });
      // aliceJwt was decided by region entries only: no fence, so no admission under a fence policy.
      expect(check(await call(s.base, { credential: { jwt: aliceJwt } }, alice))).toEqual({
        validation_type: 'geolocation_policy',
        check: 'fence',
      });
    } finally {
      await s.close();
    }
  });

  it('an unreachable remote JWKS is 503 upstream with Retry-After, never an accept or a 500', async () => {
    const dead = `http://127.0.0.1:${await freePort()}/.well-known/jwks.json`;
    const s = await guarded({ issuer: ISSUER, jwks: dead });
    try {
      const headers = await pogHeaders(s.base, { credential: { jwt: aliceJwt } }, alice);
      const res = await fetch(`${s.base}/models/model.bin`, { headers });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(((await res.json()) as { validation_type: string }).validation_type).toBe('upstream');
    } finally {
      await s.close();
    }
  });

  it('replicas sharing a Redis replay store accept a request once; Redis down is 503, not an accept', async () => {
    const redis = await startRedis();
    const clients = [0, 1].map(
      () => new Redis(redis.url, { commandTimeout: 500, enableOfflineQueue: false, maxRetriesPerRequest: 0 }),
    );
    for (const c of clients) {
      c.on('error', () => undefined); // reconnect noise once Redis is stopped below
      if (c.status !== 'ready') await once(c, 'ready');
    }
    const replicas = await Promise.all(
      clients.map((client) =>
        guarded({ issuer: ISSUER, jwks: signer.jwks(), replay: new RedisNonceStore({ client }) }),
      ),
    );
    try {
      // Both replicas serve one origin in production; here each signs for its own, so sign once per
      // replica with the same nonce: the second replica must refuse the nonce the first consumed.
      const nonce = randomBytes(16).toString('base64url');
      const first = await call(replicas[0]!.base, { credential: { jwt: aliceJwt }, nonce }, alice);
      expect(first.status).toBe(200);
      const second = await call(replicas[1]!.base, { credential: { jwt: aliceJwt }, nonce }, alice);
      expect(check(second)).toEqual({ validation_type: 'nonce_validation', check: 'nonce_reused' });
      await redis.stop();
      const down = await call(replicas[0]!.base, { credential: { jwt: aliceJwt } }, alice);
      expect(down.status).toBe(503);
      expect(down.body.validation_type).toBe('upstream');
    } finally {
      for (const r of replicas) await r.close();
      for (const c of clients) c.disconnect();
      await redis.stop();
    }
  });
});

describe('no side effects at import', () => {
  it('importing the package root does not load @peculiar/x509 (its reflect-metadata polyfill)', () => {
    const root = new URL('../src/index.ts', import.meta.url).href;
    const out = execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `await import(${JSON.stringify(root)}); console.log(typeof Reflect.getMetadata);`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(out.trim().split('\n').pop()).toBe('undefined');
  });
});
