/**
 * `agent.fetch` against swtpm, a real collector (enrolment and `/attest/location` of
 * `@geofence/verifier`) and a small HTTPS resource server in this file that checks every request
 * with `@geofence/http-sig` and `jose` the way a relying party would: the credential is a JWT the
 * collector signed (its JWKS), the request signature is by the key the credential binds (`cnf.jkt`),
 * over exactly the contract's components, with a nonce never seen before.
 */
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { messageFromIncoming, type VerifiedSignature, verifyRequest } from '@geofence/http-sig';
import { type SwtpmInstance, startSwtpm, Tpm } from '@geofence/native-tpm';
import {
  CREDENTIAL_HEADER,
  CREDENTIAL_SIGNATURE_LABEL,
  CREDENTIAL_SIGNATURE_TAG,
  MNO_LOCATION_MEMBER,
} from '@geofence/protocol';
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, type JWTPayload, jwtVerify } from 'jose';
import { Agent as HttpAgent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, createAgent } from '../src/agent.js';
import {
  AgentClosedError,
  AgentOptionsError,
  CredentialRefusedError,
  GeofenceRejection,
} from '../src/errors.js';
import { builtinReverseGeocode, lookupRegion } from '../src/location/geocode.js';
import type { LocationObservation, LocationProvider } from '../src/location/types.js';
import { startCollector, type TestCollector } from './helpers/collector.js';
import { makePki, type TestPki } from './helpers/pki.js';

const SANTA_CLARA = { region: 'US', state: 'California', city: 'Santa Clara' };
const IN_SANTA_CLARA = { lat: 37.354, lon: -121.955, accuracy: 25 };
const IN_BERLIN = { lat: 52.52, lon: 13.405, accuracy: 25 };
const MODEL = Buffer.alloc(64 * 1024, 7);

let swtpm: SwtpmInstance;
let tpm: Tpm;
let pki: TestPki;
/** Credentials for an hour (the signer's default). */
let collector: TestCollector;
/** Credentials for 10 s: renewal is due 5 s after issue (half the lifetime, below the 60 s margin). */
let shortLived: TestCollector;
let resource: TestResource;
const agents: Agent[] = [];

/** A request the resource server admitted, with what it verified. */
interface Admitted {
  at: number;
  method: string;
  url: string;
  credential: string;
  claims: JWTPayload & { cnf: { jkt: string } };
  signature: VerifiedSignature;
  body: Buffer;
}

interface TestResource {
  url: string;
  admitted: Admitted[];
  refused: string[];
  /** Public keys of the agents, by RFC 7638 thumbprint (what a relying party would know). */
  keys: Map<string, string>;
  stop(): Promise<void>;
}

/** A location provider whose position the test moves. */
function movable(start: { lat: number; lon: number; accuracy: number }) {
  let at = start;
  const provider: LocationProvider & { moveTo(p: typeof start): void } = {
    kind: 'test',
    moveTo(p) {
      at = p;
    },
    async current(): Promise<LocationObservation> {
      return {
        geographicRegion: SANTA_CLARA,
        quality: 'static',
        locationType: 'geographic-region',
        reading: { ...at, quality: 'static' },
      };
    },
  };
  return provider;
}

async function enrolledAgent(
  name: string,
  on: TestCollector,
  location = movable(IN_SANTA_CLARA),
  extra: Record<string, unknown> = {},
) {
  const agent = createAgent({
    name,
    tpm,
    gateway: on.url,
    tls: { ca: pki.caPem },
    location,
    stateDir: mkdtempSync(join(tmpdir(), `${name}-`)),
    outbox: false,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
    ...extra,
  });
  agents.push(agent);
  await agent.enroll({ workload: { name: 'inference', version: '1.0.0' } });
  const { publicKeyPem } = await agent.ready();
  resource.keys.set(
    await calculateJwkThumbprint(await exportJWK(createPublicKey(publicKeyPem))),
    publicKeyPem,
  );
  return { agent, location };
}

async function jwksOf(c: TestCollector) {
  const dispatcher = new HttpAgent({ connect: { ca: pki.caPem } });
  try {
    const res = await undiciFetch(`${c.url}/.well-known/jwks.json`, { dispatcher });
    return createLocalJWKSet((await res.json()) as never);
  } finally {
    await dispatcher.close();
  }
}

/** The relying party: admits a request only with a valid credential and its holder's signature. */
async function startResource(): Promise<TestResource> {
  const trusted = [await jwksOf(collector), await jwksOf(shortLived)];
  const seen = new Set<string>();
  const admitted: Admitted[] = [];
  const refused: string[] = [];
  const keys = new Map<string, string>();
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const at = Date.now();
    try {
      const credential = req.headers[CREDENTIAL_HEADER];
      if (typeof credential !== 'string') throw new Error('no credential');
      let claims: Admitted['claims'] | undefined;
      for (const jwks of trusted) {
        claims = await jwtVerify(credential, jwks, { typ: 'geofence-ar+jwt' }).then(
          (r) => r.payload as Admitted['claims'],
          () => undefined,
        );
        if (claims) break;
      }
      if (!claims) throw new Error('credential not issued by a trusted collector');
      const bound = claims.cnf.jkt;
      const signature = await verifyRequest(messageFromIncoming(req, body.length > 0 ? body : undefined), {
        label: CREDENTIAL_SIGNATURE_LABEL,
        tag: CREDENTIAL_SIGNATURE_TAG,
        requiredComponents: ['@method', '@target-uri', CREDENTIAL_HEADER],
        requiredParams: ['created', 'keyid', 'alg', 'tag', 'nonce'],
        checkContentDigest: true,
        async keyLookup(keyid) {
          if (keyid !== bound) return null;
          return keys.get(keyid);
        },
        nonce(value) {
          if (seen.has(value)) return false;
          seen.add(value);
          return true;
        },
      });
      admitted.push({
        at,
        method: req.method ?? '',
        url: req.url ?? '',
        credential,
        claims,
        signature,
        body,
      });
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(MODEL);
    } catch (err) {
      refused.push((err as Error).message);
      res.writeHead(401, { 'content-type': 'text/plain' }).end((err as Error).message);
    }
  };
  const server: Server = createServer({ key: pki.keyPem, cert: pki.certPem }, (req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    admitted,
    refused,
    keys,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The collector's refusal of a location outside the fence, as the typed error carries it: 403, the
 * problem's own validation type and check (today `attestation` / `geofence`; the credential issue
 * lets the collector name it `geolocation_policy`).
 */
function expectFenceRefusal(err: unknown): void {
  expect(err).toBeInstanceOf(CredentialRefusedError);
  const e = err as CredentialRefusedError;
  expect(e.code).toBe('credential_refused');
  expect(e.status).toBe(403);
  expect(['attestation', 'geolocation_policy']).toContain(e.validationType);
  expect(e.validationType).toBe(e.problem?.validation_type);
  expect(e.check).toBeDefined();
  expect(e.check).toBe(e.problem?.details?.check);
  if (e.validationType === 'attestation') expect(e.check).toBe('geofence');
}

function claimsOf(jwt: string): { iat: number; exp: number } {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8'));
}

beforeAll(async () => {
  pki = makePki();
  swtpm = await startSwtpm({ timeoutMs: 60_000 });
  tpm = await Tpm.open({ tcti: swtpm.tcti });
  const policy = {
    ekCaBundle: swtpm.ekCaCertificates,
    agents: [
      'agent-001',
      'agent-many',
      'agent-mover',
      'agent-flaky',
      'agent-berlin',
      'agent-mno',
      'agent-readme',
    ].map((agentName) => ({ agentName, ek: 'any-trusted-ca' as const, geoPolicy: { allow: [SANTA_CLARA] } })),
    // The place table has no cities: the operator maps its site to a city with a box.
    reverseGeocode: (lat: number, lon: number) =>
      lookupRegion(lat, lon, [{ box: [-122.03, 37.32, -121.92, 37.42], place: SANTA_CLARA }]) ??
      builtinReverseGeocode(lat, lon),
  };
  collector = await startCollector(pki, policy);
  shortLived = await startCollector(pki, { ...policy, resultTtlSeconds: 10 });
  resource = await startResource();
}, 120_000);

afterAll(async () => {
  for (const a of agents) await a.close();
  await resource?.stop();
  await collector?.stop();
  await shortLived?.stop();
  await tpm?.close();
  await swtpm?.stop();
});

describe('agent.fetch', () => {
  it('presents the credential the collector issued, signed by its cnf.jkt key over exactly the contract components', async () => {
    const { agent } = await enrolledAgent('agent-001', collector);
    const attestsBefore = collector.hits['/attest/location'] ?? 0;

    const get = await agent.fetch(`${resource.url}/models/model.bin?rev=3`);
    expect(get.status).toBe(200);
    expect(Buffer.from(await get.arrayBuffer()).equals(MODEL)).toBe(true);
    const json = JSON.stringify({ prompt: 'hello' });
    const post = await agent.fetch(`${resource.url}/v1/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: json,
    });
    expect(post.status).toBe(200);
    await post.arrayBuffer();

    expect(resource.refused).toEqual([]);
    const [g, p] = resource.admitted.slice(-2) as [Admitted, Admitted];
    // One location attestation, and its result is the credential both requests carry.
    expect((collector.hits['/attest/location'] ?? 0) - attestsBefore).toBe(1);
    expect(g.credential).toBe(collector.issued.at(-1));
    expect(p.credential).toBe(g.credential);
    expect(g.claims).toMatchObject({ sub: 'agent-001', geofence: { residency: 'tpm+geofence' } });

    expect(g.signature).toMatchObject({
      label: 'pog',
      tag: 'geofence-pog/v1',
      alg: 'ecdsa-p256-sha256',
      keyid: g.claims.cnf.jkt,
      components: ['@method', '@target-uri', 'geofence-credential'],
    });
    expect(g.url).toBe('/models/model.bin?rev=3');
    expect(p.signature.components).toEqual([
      '@method',
      '@target-uri',
      'geofence-credential',
      'content-digest',
    ]);
    expect(p.body.toString('utf8')).toBe(json);
    for (const s of [g.signature, p.signature]) {
      expect(s.created).toBeTypeOf('number');
      // At least 128 random bits, base64url.
      expect(s.nonce).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    }
    expect(g.signature.nonce).not.toBe(p.signature.nonce);
  });

  it('concurrent first requests share one location attestation; every request has its own nonce', async () => {
    const { agent } = await enrolledAgent('agent-many', collector);
    const attestsBefore = collector.hits['/attest/location'] ?? 0;
    const admittedBefore = resource.admitted.length;
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => agent.fetch(`${resource.url}/shard/${i}`)),
    );
    for (const a of answers) {
      expect(a.status).toBe(200);
      await a.arrayBuffer();
    }
    expect((collector.hits['/attest/location'] ?? 0) - attestsBefore).toBe(1);
    const mine = resource.admitted.slice(admittedBefore);
    expect(new Set(mine.map((a) => a.credential)).size).toBe(1);
    expect(new Set(mine.map((a) => a.signature.nonce)).size).toBe(6);
  });

  it('renews the credential before it expires, and a refused renewal (host left the fence) throws CredentialRefusedError', async () => {
    const { agent, location } = await enrolledAgent('agent-mover', shortLived);
    const first = await agent.fetch(`${resource.url}/a`);
    expect(first.status).toBe(200);
    await first.arrayBuffer();
    const cred1 = resource.admitted.at(-1)!.credential;
    const c1 = claimsOf(cred1);
    expect(c1.exp - c1.iat).toBe(10);

    // Past the renewal point (issue + 10 s − 5 s; issue is before the end of second iat) but well
    // before expiry (iat + 10 s).
    await new Promise((r) => setTimeout(r, Math.max(0, c1.iat * 1000 + 6100 - Date.now())));
    const second = await agent.fetch(`${resource.url}/b`);
    expect(second.status).toBe(200);
    await second.arrayBuffer();
    const cred2 = resource.admitted.at(-1)!.credential;
    expect(cred2).not.toBe(cred1);
    expect(cred2).toBe(shortLived.issued.at(-1));
    // Renewed while the old one was still valid.
    expect(claimsOf(cred2).iat).toBeLessThan(c1.exp);

    // The host moves out of its fence; the next renewal is refused and nothing is sent.
    location.moveTo(IN_BERLIN);
    const c2 = claimsOf(cred2);
    await new Promise((r) => setTimeout(r, Math.max(0, c2.iat * 1000 + 6100 - Date.now())));
    const admittedBefore = resource.admitted.length;
    const err = (await agent.fetch(`${resource.url}/c`).catch((e: unknown) => e)) as CredentialRefusedError;
    expect(err).toBeInstanceOf(CredentialRefusedError);
    expectFenceRefusal(err);
    // The credential is forgotten: the still unexpired cred2 is not presented either.
    expect(Date.now()).toBeLessThan(c2.exp * 1000);
    await expect(agent.fetch(`${resource.url}/d`)).rejects.toBeInstanceOf(CredentialRefusedError);
    expect(resource.admitted.length).toBe(admittedBefore);
  }, 60_000);

  it('keeps presenting an unexpired credential while the collector is unavailable, without a renewal per request', async () => {
    const { agent } = await enrolledAgent('agent-flaky', shortLived);
    const first = await agent.fetch(`${resource.url}/a`);
    await first.arrayBuffer();
    const cred1 = resource.admitted.at(-1)!.credential;
    const c1 = claimsOf(cred1);
    await new Promise((r) => setTimeout(r, Math.max(0, c1.iat * 1000 + 6100 - Date.now())));

    shortLived.failNext(1, undefined, '/attest/location');
    const attempts = shortLived.hits['/attest/location'] ?? 0;
    const during = await agent.fetch(`${resource.url}/b`);
    expect(during.status).toBe(200);
    await during.arrayBuffer();
    // The renewal was tried (and answered 503); the request went out with the still valid credential.
    expect((shortLived.hits['/attest/location'] ?? 0) - attempts).toBe(1);
    expect(resource.admitted.at(-1)!.credential).toBe(cred1);
    expect(resource.admitted.at(-1)!.at).toBeLessThan(c1.exp * 1000);
    // Right after a failed renewal the next request does not trigger another one.
    const next = await agent.fetch(`${resource.url}/c`);
    await next.arrayBuffer();
    expect((shortLived.hits['/attest/location'] ?? 0) - attempts).toBe(1);
    expect(resource.admitted.at(-1)!.credential).toBe(cred1);
  }, 60_000);

  it('validates the credential options, and refuses to fetch once closed', async () => {
    const base = {
      name: 'agent-options',
      tpm,
      gateway: collector.url,
      location: movable(IN_SANTA_CLARA),
      stateDir: mkdtempSync(join(tmpdir(), 'agent-options-')),
      outbox: false as const,
    };
    expect(() => createAgent({ ...base, credentials: { refreshMarginSeconds: -1 } })).toThrow(
      AgentOptionsError,
    );
    expect(() => createAgent({ ...base, credentials: { tls: { ca: '' } } })).toThrow(AgentOptionsError);
    expect(() => createAgent({ ...base, mnoLocation: 'signed' as never })).toThrow(AgentOptionsError);
    const agent = createAgent({ ...base, logger: { debug() {}, info() {}, warn() {}, error() {} } });
    await agent.close();
    await expect(agent.fetch(`${resource.url}/x`)).rejects.toBeInstanceOf(AgentClosedError);
  });

  it('a host outside its fence gets no credential at all', async () => {
    const { agent } = await enrolledAgent('agent-berlin', collector, movable(IN_BERLIN));
    const admittedBefore = resource.admitted.length;
    const err = (await agent
      .fetch(`${resource.url}/model.bin`)
      .catch((e: unknown) => e)) as CredentialRefusedError;
    expectFenceRefusal(err);
    expect(resource.admitted.length).toBe(admittedBefore);
  });

  it('asks its mno-location source for a statement answering the nonce, and carries it as given', async () => {
    const asked: Array<{ nonce: string; location: unknown }> = [];
    const statementFor = (nonce: string) => ({
      'geolocation-payload': { lat: 37.35, lon: -121.95, accuracy: 500, nonce, timestamp: 1_800_000_000 },
      'mno-key-cert': 'MIIB',
      'mno-sig': 'c2ln',
    });
    const { agent } = await enrolledAgent('agent-mno', collector, movable(IN_SANTA_CLARA), {
      mnoLocation: (request: { nonce: string; location: unknown }) => {
        asked.push(request);
        return statementFor(request.nonce);
      },
    });
    const refusal = await agent.attestLocation().catch((err: unknown) => err);
    expect(asked).toHaveLength(1);
    expect(asked[0]!.location).toMatchObject({ lat: IN_SANTA_CLARA.lat, lon: IN_SANTA_CLARA.lon });
    // The statement reached the collector's appraisal, which refuses it here: this test collector
    // trusts no MNO CA (the real corroboration is tested in the verifier with its own MNO CA).
    expect(refusal).toBeInstanceOf(GeofenceRejection);
    expect((refusal as GeofenceRejection).validationType).toBe('attestation');
    expect((refusal as GeofenceRejection).details).toMatchObject({ check: 'mno_location' });
    expect(MNO_LOCATION_MEMBER).toBe('mno-location');
  });

  it('refuses to sign what it cannot sign as asked (own signature headers, followed redirects)', async () => {
    const agent = agents[0]!;
    await expect(agent.fetch(`${resource.url}/x`, { headers: { signature: 'sig=:AA==:' } })).rejects.toThrow(
      TypeError,
    );
    await expect(
      agent.fetch(`${resource.url}/x`, { headers: { [CREDENTIAL_HEADER]: 'copied' } }),
    ).rejects.toThrow(TypeError);
    await expect(agent.fetch(`${resource.url}/x`, { redirect: 'follow' })).rejects.toThrow(TypeError);
  });
});

describe('README', () => {
  it('the agent.fetch example runs and prints what its comments say', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const block = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .find((b) => b.includes('agent.fetch('));
    expect(block, 'the README has the agent.fetch example').toBeDefined();
    const code = block!.replace(/^import .*$/gm, '');
    const { agent } = await enrolledAgent('agent-readme', collector);
    const printed: string[] = [];
    const out = {
      log: (...a: unknown[]) => printed.push(a.join(' ')),
      error: (...a: unknown[]) => printed.push(a.join(' ')),
    };
    const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
    await new AsyncFunction('agent', 'resourceServer', 'CredentialRefusedError', 'console', code)(
      agent,
      resource.url,
      CredentialRefusedError,
      out,
    );
    const expected = [...block!.matchAll(/console\.log\(.*\); \/\/ (.*)$/gm)].map((m) => m[1]!);
    expect(expected.length).toBeGreaterThan(0);
    expect(printed).toEqual(expected);
  });
});
