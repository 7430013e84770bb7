/**
 * Pipeline details not covered end to end: the body reader's early 413, gateway switches, order of
 * checks, nonce pools.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isLowS } from '@geofence/http-sig';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AcceptedRecord,
  createNonceIssuer,
  type GatewayOptions,
  GeofenceError,
  issueNonce,
  JsonFileRegistry,
  MemoryNonceStore,
  type NonceBatchResponse,
  type NonceResponse,
  nonceBatchResponseSchema,
  nonceResponseSchema,
  readBody,
  type VerifierRequest,
  verifyAtGateway,
  verifyMetrics,
} from '../src/index.js';
import {
  BERLIN,
  type BuiltRequest,
  buildMetricsRequest,
  buildNonceRequest,
  flipS,
  makeAgent,
} from './helpers/signed-request.js';

const dir = mkdtempSync(join(tmpdir(), 'geofence-pipeline-'));
let registry: JsonFileRegistry;
const agent = makeAgent('agent-001');
const stranger = makeAgent('stranger');

beforeAll(async () => {
  registry = await JsonFileRegistry.open({ path: join(dir, 'a.json'), watch: false });
  await registry.put(agent.record);
});
afterAll(async () => {
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

const toReq = (r: BuiltRequest): VerifierRequest => ({
  method: r.method,
  url: r.path,
  headers: r.headers,
  ...(r.body !== undefined ? { rawBody: Buffer.from(r.body) } : {}),
});

async function rejection(p: Promise<unknown>): Promise<GeofenceError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GeofenceError);
    return err as GeofenceError;
  }
  throw new Error('expected a rejection');
}

describe('readBody', () => {
  it('rejects with 413 before the stream ends, without reading it all', async () => {
    let produced = 0;
    const chunk = Buffer.alloc(64 * 1024, 120);
    const total = 2 * 1024 * 1024;
    const stream = new Readable({
      highWaterMark: 64 * 1024,
      // like a socket: data arrives asynchronously
      read() {
        setImmediate(() => {
          if (produced >= total) this.push(null);
          else {
            produced += chunk.length;
            this.push(chunk);
          }
        });
      },
    });
    let producedAtRejection = -1;
    const err = await rejection(
      readBody(stream, 1024 * 1024).catch((e: unknown) => {
        producedAtRejection = produced;
        throw e;
      }),
    );
    expect(err.status).toBe(413);
    // rejected right after the first chunk past the limit, long before the 2 MiB arrived
    expect(producedAtRejection).toBeLessThanOrEqual(1024 * 1024 + 2 * chunk.length);
  });

  it('rejects early on a large Content-Length', async () => {
    const stream = Object.assign(Readable.from([Buffer.from('x')]), {
      headers: { 'content-length': '2097152' },
    });
    expect((await rejection(readBody(stream, 1024))).status).toBe(413);
  });

  it('returns the exact bytes', async () => {
    const parts = [Buffer.from('{"a":'), Buffer.from('1}')];
    expect((await readBody(Readable.from(parts), 100)).toString()).toBe('{"a":1}');
  });
});

describe('gateway switches', () => {
  const base: GatewayOptions = { registry: undefined as never };
  const opts = (o: Partial<GatewayOptions>): GatewayOptions => ({ ...base, registry, ...o });

  it('never consumes nonces: the same request passes twice', async () => {
    const req = toReq(await buildMetricsRequest(agent, { nonce: Buffer.alloc(32, 5).toString('base64url') }));
    const v1 = await verifyAtGateway(req, opts({}));
    const v2 = await verifyAtGateway(req, opts({}));
    expect(v1.checks).toEqual([
      'request_validation',
      'agent_verification',
      'signature_verification',
      'timestamp_proximity',
      'geolocation_policy',
    ]);
    expect(v2.agent?.agent_name).toBe('agent-001');
  });

  it('accepts only the low-s form of an ECDSA HTTP signature (the (r, n − s) twin is refused)', async () => {
    const built = await buildMetricsRequest(agent, { nonce: Buffer.alloc(32, 6).toString('base64url') });
    const m = /^geo=:([^:]+):$/.exec(built.headers.signature ?? '');
    expect(m).not.toBeNull();
    const sig = Buffer.from(m![1]!, 'base64');
    expect(isLowS(sig)).toBe(true); // our signers normalise
    const twin = {
      ...built,
      headers: { ...built.headers, signature: `geo=:${flipS(sig).toString('base64')}:` },
    };
    expect((await verifyAtGateway(toReq(built), opts({}))).agent?.agent_name).toBe('agent-001');
    const err = await verifyAtGateway(toReq(twin), opts({})).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GeofenceError);
    expect((err as GeofenceError).validationType).toBe('signature_verification');
  });

  it('requires the signature headers', async () => {
    const req = toReq(
      await buildMetricsRequest(agent, { nonce: Buffer.alloc(32, 5).toString('base64url'), unsigned: true }),
    );
    const err = await rejection(verifyAtGateway(req, opts({})));
    expect([err.status, err.validationType]).toEqual([400, 'request_validation']);
  });

  it('validateGeolocation=false lets a geo violation through; validateSignature=false a wrong key', async () => {
    const geo = toReq(
      await buildMetricsRequest(agent, { nonce: Buffer.alloc(32, 5).toString('base64url'), region: BERLIN }),
    );
    expect((await rejection(verifyAtGateway(geo, opts({})))).validationType).toBe('geolocation_policy');
    expect((await verifyAtGateway(geo, opts({ validateGeolocation: false }))).checks).not.toContain(
      'geolocation_policy',
    );
    const forged = toReq(
      await buildMetricsRequest(agent, {
        nonce: Buffer.alloc(32, 5).toString('base64url'),
        signer: stranger.signer,
      }),
    );
    expect((await rejection(verifyAtGateway(forged, opts({})))).validationType).toBe(
      'signature_verification',
    );
    expect((await verifyAtGateway(forged, opts({ validateSignature: false }))).checks).not.toContain(
      'signature_verification',
    );
  });

  it('validatePublicKeyHash=false skips the allowlist; signatures then need a known key', async () => {
    const unknown = toReq(
      await buildMetricsRequest(stranger, { nonce: Buffer.alloc(32, 5).toString('base64url') }),
    );
    expect((await rejection(verifyAtGateway(unknown, opts({})))).validationType).toBe('agent_verification');
    const err = await rejection(verifyAtGateway(unknown, opts({ validatePublicKeyHash: false })));
    expect(err.validationType).toBe('signature_verification');
    const v = await verifyAtGateway(
      unknown,
      opts({ validatePublicKeyHash: false, validateSignature: false, validateGeolocation: false }),
    );
    expect(v.checks).toEqual(['request_validation', 'timestamp_proximity']);
  });
});

describe('collector order', () => {
  it('a bad signature is reported before a stale timestamp and before the nonce', async () => {
    const nonces = new MemoryNonceStore();
    const { nonce } = await nonces.issue(agent.keyid);
    const req = toReq(
      await buildMetricsRequest(agent, {
        nonce,
        signer: stranger.signer,
        timestamp: new Date(Date.now() - 86_400_000),
      }),
    );
    const err = await rejection(verifyMetrics(req, { registry, nonces }));
    expect(err.validationType).toBe('signature_verification');
    // the nonce was not spent by a request that failed earlier checks
    expect(await nonces.consume(agent.keyid, nonce)).toBe('ok');
  });

  it('a nonce is spent even when a later check (geo) fails', async () => {
    const nonces = new MemoryNonceStore();
    const { nonce } = await nonces.issue(agent.keyid);
    const req = toReq(await buildMetricsRequest(agent, { nonce, region: BERLIN }));
    expect((await rejection(verifyMetrics(req, { registry, nonces }))).validationType).toBe(
      'geolocation_policy',
    );
    expect(await nonces.consume(agent.keyid, nonce)).toBe('reused');
  });

  it('rejects a claimed region that contradicts the reported coordinates (SPEC §5.1)', async () => {
    const nonces = new MemoryNonceStore();
    const at = (lat: number, lon: number) => ({
      lat,
      lon,
      accuracy: 10,
      quality: 'GNSS' as const,
      fix_time: new Date().toISOString(),
    });
    // Claimed (and allowed) Santa Clara, but Berlin coordinates.
    const lying = toReq(
      await buildMetricsRequest(agent, {
        nonce: (await nonces.issue(agent.keyid)).nonce,
        location: at(52.52, 13.405),
      }),
    );
    const err = await rejection(verifyMetrics(lying, { registry, nonces }));
    expect(err.validationType).toBe('geolocation_policy');
    expect(err.details).toMatchObject({
      check: 'region_mismatch',
      reason: 'Claimed region contradicts the reported coordinates',
    });
    const honest = toReq(
      await buildMetricsRequest(agent, {
        nonce: (await nonces.issue(agent.keyid)).nonce,
        location: at(37.354, -121.955),
      }),
    );
    expect((await verifyMetrics(honest, { registry, nonces })).status).toBe(200);
  });

  it('refuses an implausible movement on /metrics (unless maxSpeedKmh: false); the verdict carries accuracy and fix time', async () => {
    const mover = makeAgent('agent-mover', { geoPolicy: { allow: [{ region: 'US' }] } });
    await registry.put(mover.record);
    const nonces = new MemoryNonceStore();
    const accepted: AcceptedRecord[] = [];
    const onAccept = (r: AcceptedRecord) => {
      accepted.push(r);
      return `rec-${accepted.length}`;
    };
    const t0 = Date.now() - 10_000;
    const send = async (lat: number, lon: number, t: number, extra: { maxSpeedKmh?: false } = {}) =>
      verifyMetrics(
        toReq(
          await buildMetricsRequest(mover, {
            nonce: (await nonces.issue(mover.keyid)).nonce,
            region: { region: 'US' },
            location: { lat, lon, accuracy: 10, quality: 'GNSS', fix_time: new Date(t).toISOString() },
          }),
        ),
        { registry, nonces, onAccept, ...extra },
      );
    expect((await send(37.354, -121.955, t0)).status).toBe(200);
    expect(accepted[0]!.verdict).toMatchObject({
      accuracy_m: 10,
      fix_time: new Date(t0).toISOString(),
      geo: [{ matched: { region: 'US' }, matched_by: 'boundary', place: 'US' }],
    });
    // New York one second later.
    const err = await rejection(send(40.7128, -74.006, t0 + 1000));
    expect({ status: err.status, vt: err.validationType }).toEqual({ status: 403, vt: 'geolocation_policy' });
    expect(err.details).toMatchObject({
      check: 'implausible_movement',
      expected: { max_speed_kmh: 1000 },
      received: { elapsed_seconds: 1, previous: { lat: 37.354, lon: -121.955, accuracy: 10 } },
    });
    expect(accepted).toHaveLength(1);
    // The same jump with the check turned off is accepted.
    expect((await send(40.7128, -74.006, t0 + 1000, { maxSpeedKmh: false })).status).toBe(200);
    expect(accepted).toHaveLength(2);
  });

  it('refuses agents without any geographic policy unless told otherwise', async () => {
    const open = makeAgent('agent-open', { geoPolicy: {} });
    await registry.put(open.record);
    const nonces = new MemoryNonceStore();
    const req1 = toReq(await buildMetricsRequest(open, { nonce: (await nonces.issue(open.keyid)).nonce }));
    expect((await rejection(verifyMetrics(req1, { registry, nonces }))).validationType).toBe(
      'geolocation_policy',
    );
    const req2 = toReq(await buildMetricsRequest(open, { nonce: (await nonces.issue(open.keyid)).nonce }));
    expect((await verifyMetrics(req2, { registry, nonces, requireGeoPolicy: false })).status).toBe(200);
    const req3 = toReq(await buildMetricsRequest(open, { nonce: (await nonces.issue(open.keyid)).nonce }));
    const global = { geoPolicy: { allow: [{ region: 'EU' }] } };
    expect((await rejection(verifyMetrics(req3, { registry, nonces, ...global }))).validationType).toBe(
      'geolocation_policy',
    );
  });

  it('signed nonce requests draw from the authenticated pool', async () => {
    const nonces = new MemoryNonceStore({ maxOutstanding: 1 });
    const signed = await issueNonce(toReq(await buildNonceRequest(agent)), { registry, nonces });
    expect(signed.authenticated).toBe(true);
    // an anonymous flood for the same keyid cannot evict it
    for (let i = 0; i < 5; i++) {
      const anon = await issueNonce(toReq(await buildNonceRequest(agent, { signed: false })), {
        registry,
        nonces,
      });
      expect(anon.authenticated).toBe(false);
    }
    expect(await nonces.consume(agent.keyid, (signed.body as NonceResponse).nonce)).toBe('ok');
    const stale = toReq(await buildNonceRequest(agent, { created: new Date(Date.now() - 3600_000) }));
    expect((await rejection(issueNonce(stale, { registry, nonces }))).validationType).toBe(
      'timestamp_proximity',
    );
  });
});

describe('nonce batches (SPEC §16)', () => {
  it('a signed count=n request gets n distinct nonces, each single-use and bound to the agent', async () => {
    const nonces = new MemoryNonceStore({ maxOutstanding: 16 });
    const issuer = createNonceIssuer({ registry, nonces, maxNonceBatch: 16 });
    const v = await issuer.issue(toReq(await buildNonceRequest(agent, { query: '&count=16' })));
    const body = v.body as NonceBatchResponse;
    expect(nonceBatchResponseSchema.safeParse(body).success).toBe(true);
    expect(body.nonces).toHaveLength(16);
    expect(new Set(body.nonces.map((n) => n.nonce)).size).toBe(16);
    expect(v.authenticated).toBe(true);
    for (const n of body.nonces) {
      expect(await nonces.consume(stranger.keyid, n.nonce)).toBe('wrong_agent');
      expect(await nonces.consume(agent.keyid, n.nonce)).toBe('ok');
      expect(await nonces.consume(agent.keyid, n.nonce)).toBe('reused');
    }
  });

  it('no count keeps the one-nonce body; a batch needs a signature and a count in 1..max', async () => {
    const nonces = new MemoryNonceStore({ maxOutstanding: 4 });
    const issuer = createNonceIssuer({ registry, nonces, maxNonceBatch: 4 });
    const one = await issuer.issue(toReq(await buildNonceRequest(agent)));
    expect(nonceResponseSchema.safeParse(one.body).success).toBe(true);
    for (const query of ['&count=0', '&count=5', '&count=-1', '&count=1e1', '&count=', '&count=2&count=2']) {
      const r = await rejection(issuer.issue(toReq(await buildNonceRequest(agent, { query }))));
      expect([r.status, r.validationType], query).toEqual([400, 'request_validation']);
    }
    const anon = await rejection(
      issuer.issue(toReq(await buildNonceRequest(agent, { signed: false, query: '&count=2' }))),
    );
    expect([anon.status, anon.validationType]).toEqual([400, 'request_validation']);
    expect(anon.details).toMatchObject({ reason: 'nonce batches are issued to signed requests only' });
    // the nonce of the single request above survived the refused attempts
    expect(await nonces.consume(agent.keyid, (one.body as NonceResponse).nonce)).toBe('ok');
  });

  it('count is covered by the signature: changing it breaks the signature', async () => {
    const nonces = new MemoryNonceStore({ maxOutstanding: 8 });
    const issuer = createNonceIssuer({ registry, nonces, maxNonceBatch: 8 });
    const built = await buildNonceRequest(agent, { query: '&count=2' });
    const forged = { ...built, path: built.path.replace('count=2', 'count=8') };
    const r = await rejection(issuer.issue(toReq(forged)));
    expect(r.validationType).toBe('signature_verification');
  });
});

describe('parser differentials', () => {
  it('rejects bodies with duplicate member names even when the last value is the signed one', async () => {
    const nonces = new MemoryNonceStore();
    const { nonce } = await nonces.issue(agent.keyid);
    const built = await buildMetricsRequest(agent, { nonce, unsigned: true });
    // A first-wins parser would read the injected metrics; JSON.parse keeps the signed ones.
    const body = `{"metrics":{"cpu_percent":99},${built.body!.slice(1)}`;
    const { contentDigest } = await import('@geofence/http-sig');
    const req = toReq({
      ...built,
      body,
      headers: { ...built.headers, 'content-digest': contentDigest(body) },
    });
    const err = await rejection(verifyMetrics(req, { registry, nonces }));
    expect([err.status, err.validationType, err.details?.reason]).toEqual([
      400,
      'request_validation',
      'duplicate member names',
    ]);
    expect(await nonces.consume(agent.keyid, nonce)).toBe('ok');
  });
});

describe('hostile shapes', () => {
  it('deeply nested metrics never produce an internal error', async () => {
    const nonces = new MemoryNonceStore();
    for (const depth of [1000, 200_000]) {
      const { nonce } = await nonces.issue(agent.keyid);
      const built = await buildMetricsRequest(agent, { nonce, unsigned: true });
      const body = built.body!.replace(
        '"metrics":{',
        `"metrics":{"deep":${'['.repeat(depth)}${']'.repeat(depth)},`,
      );
      const { contentDigest } = await import('@geofence/http-sig');
      const req = toReq({
        ...built,
        body,
        headers: { ...built.headers, 'content-digest': contentDigest(body) },
      });
      const err = await rejection(verifyMetrics(req, { registry, nonces }));
      expect(err.validationType).not.toBe('internal');
      expect(err.status).toBeLessThan(500);
    }
  });
});
