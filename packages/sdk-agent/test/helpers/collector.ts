import { generateKeyPairSync } from 'node:crypto';
import type { Server } from 'node:https';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  type AcceptedRecord,
  AttestationResultSigner,
  createForwarder,
  EnrollmentService,
  GeofenceError,
  type GeoPolicy,
  geofence,
  MemoryNonceStore,
  mountAttestationExpress,
  PROBLEM_CONTENT_TYPE,
  type PreRegisteredAgent,
  type Registry,
  SqliteRegistry,
} from '@geofence/verifier';
import express from 'express';
import type { TestPki } from './pki.js';

/** One accepted record as the collector stored it. */
export interface StoredRecord {
  recordId: string;
  agentName: string;
  raw: string;
  metrics: Record<string, unknown>;
}

/**
 * A real collector for the tests: Express 5 + the `@geofence/verifier` middleware
 * (`geofence.express.nonce` / `geofence.express.collector`, SPEC §6.4 pipeline) over HTTPS on
 * 127.0.0.1, with an in-memory SQLite registry and the memory nonce store.
 */
export interface TestCollector {
  url: string;
  port: number;
  records: StoredRecord[];
  /** The verifier registry (shared with a test gateway). */
  registry: Registry;
  /** Registers an agent directly in the verifier's registry (enrolment is tested elsewhere). */
  register(name: string, publicKeyPem: string, keyid: string, geo?: GeoPolicy, alg?: string): Promise<void>;
  setActive(name: string, active: boolean): Promise<void>;
  /** Answer the next `n` requests (any path) with a 503 (or the given problem) in front of the verifier. */
  failNext(n: number, problem?: GeofenceError, path?: string): void;
  /** Process the next `n` `POST /metrics` normally, then drop the connection instead of answering. */
  dropNextAnswers(n: number): void;
  /** Requests seen per path. */
  hits: Record<string, number>;
  /** Every attestation-result JWT the collector signed (enrolment and location), in order. */
  issued: string[];
  stop(): Promise<void>;
  /** Stop listening (keeps state); `listen()` again on the same port. */
  pause(): Promise<void>;
  listen(): Promise<void>;
}

/** Attestation endpoints (`/enroll`, `/enroll/:id/complete`, `/attest/location`, JWKS) of the collector. */
export interface AttestationSetup {
  ekCaBundle: string[];
  agents: PreRegisteredAgent[];
  reverseGeocode?: (
    lat: number,
    lon: number,
  ) => { region: string; state?: string; city?: string } | undefined;
  /** Lifetime of the attestation results (credentials) in seconds (default: the signer's). */
  resultTtlSeconds?: number;
}

export async function startCollector(
  pki: TestPki,
  attestation?: AttestationSetup,
  options: { requireNonceSignature?: boolean } = {},
): Promise<TestCollector> {
  const registry = await SqliteRegistry.open({ path: ':memory:' });
  const nonces = new MemoryNonceStore();
  const records: StoredRecord[] = [];
  const hits: Record<string, number> = {};
  const issued: string[] = [];
  let fail: { n: number; err: GeofenceError | undefined; path: string | undefined } = {
    n: 0,
    err: undefined,
    path: undefined,
  };
  let drop = 0;
  let seq = 0;

  const onAccept = (r: AcceptedRecord) => {
    const recordId = `rec-${records.length + 1}`;
    records.push({
      recordId,
      agentName: r.agentName,
      raw: Buffer.from(r.rawBody).toString('utf8'),
      metrics: r.payload.metrics,
    });
    return recordId;
  };

  const app = express();
  app.use((req, res, next) => {
    hits[req.path] = (hits[req.path] ?? 0) + 1;
    if (drop > 0 && req.method === 'POST' && req.path === '/metrics') {
      drop--;
      // The verifier runs (and stores) as usual; only its answer never reaches the agent.
      res.end = (() => {
        req.socket.destroy();
        return res;
      }) as typeof res.end;
      return next();
    }
    if (fail.n <= 0 || (fail.path !== undefined && fail.path !== req.path)) return next();
    fail.n--;
    const err = fail.err ?? new GeofenceError('upstream', undefined, { status: 503 });
    res.status(err.status).type(PROBLEM_CONTENT_TYPE);
    res.send(JSON.stringify(err.toProblem({ rejectedBy: 'gateway', requestId: `req-${++seq}` })));
  });
  if (attestation) {
    const signer = await AttestationResultSigner.create({
      key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      issuer: 'https://collector.test',
      ...(attestation.resultTtlSeconds ? { ttlSeconds: attestation.resultTtlSeconds } : {}),
    });
    // Every result (enrolment via sign, location via issue) passes through issue.
    const issue = signer.issue.bind(signer);
    signer.issue = async (...args) => {
      const out = await issue(...args);
      issued.push(out.jwt);
      return out;
    };
    const enrollment = new EnrollmentService({
      registry,
      signer,
      policy: { ekCaBundle: attestation.ekCaBundle, agents: attestation.agents, unknownAgents: 'reject' },
    });
    mountAttestationExpress(app, {
      enrollment,
      signer,
      location: {
        registry,
        nonces,
        signer,
        policy: {},
        ...(attestation.reverseGeocode ? { reverseGeocode: attestation.reverseGeocode } : {}),
      },
    });
  }
  app.get(
    '/nonce',
    geofence.express.nonce({
      registry,
      nonces,
      requireHttpSignature: options.requireNonceSignature ?? false,
    }),
  );
  app.post('/metrics', geofence.express.collector({ registry, nonces, onAccept }));

  const server: Server = createServer({ key: pki.keyPem, cert: pki.certPem }, app);
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server.address() as AddressInfo).port;
        server.off('error', reject);
        resolve();
      });
    });
  await listen();
  const pause = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });

  return {
    get url() {
      return `https://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    records,
    hits,
    issued,
    registry,
    async register(name, pem, keyid, geo = {}, alg = 'ecdsa-p256-sha256') {
      await registry.put({
        agent_name: name,
        keyid,
        alg: alg as 'ecdsa-p256-sha256',
        app_public_key_pem: pem,
        geo_policy: geo,
        status: 'active',
      });
    },
    async setActive(name, active) {
      await registry.setStatus(name, active ? 'active' : 'revoked');
    },
    failNext(n, err, path) {
      fail = { n, err, path };
    },
    dropNextAnswers(n) {
      drop = n;
    },
    pause,
    listen,
    async stop() {
      await pause();
      await nonces.close();
      await registry.close();
    },
  };
}

/** A gateway in policy-enforcement mode (verifier gateway middleware + forward) in front of a collector. */
export interface TestGateway {
  url: string;
  hits: Record<string, number>;
  stop(): Promise<void>;
}

export async function startGateway(pki: TestPki, collector: TestCollector): Promise<TestGateway> {
  const forwarder = createForwarder({ target: collector.url, ca: pki.caPem });
  const hits: Record<string, number> = {};
  const app = express();
  app.use((req, _res, next) => {
    hits[req.path] = (hits[req.path] ?? 0) + 1;
    next();
  });
  const check = geofence.express.gateway({ registry: collector.registry });
  const fwd = geofence.express.forward({ forwarder });
  app.get('/nonce', check, fwd);
  app.post('/metrics', check, fwd);
  const server: Server = createServer({ key: pki.keyPem, cert: pki.certPem }, app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    hits,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await forwarder.close();
    },
  };
}
