import { createPublicKey, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { messageFromIncoming, verifyRequest } from '@geofence/http-sig';
import {
  evaluateGeoPolicy,
  GeofenceError,
  type GeoPolicy,
  METRICS_SIGNATURE_COMPONENTS,
  MemoryNonceStore,
  metricsPayloadSchema,
  PROBLEM_CONTENT_TYPE,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
  verifyPayloadSignature,
  WORKLOAD_GEO_ID_HEADER,
} from '@geofence/verifier';
import type { TestPki } from './pki.js';

/** One accepted record as the collector stored it. */
export interface StoredRecord {
  recordId: string;
  agentName: string;
  raw: string;
  metrics: Record<string, unknown>;
}

interface Registered {
  name: string;
  key: KeyObject;
  geo: GeoPolicy;
  active: boolean;
}

/**
 * A test collector on 127.0.0.1 over HTTPS, built from @geofence/verifier and @geofence/http-sig:
 * `GET /nonce`, `POST /metrics` with the SPEC §6.4 checks in order and §7 problem bodies.
 */
export interface TestCollector {
  url: string;
  port: number;
  records: StoredRecord[];
  register(name: string, publicKeyPem: string, keyid: string, geo?: GeoPolicy): void;
  setActive(keyid: string, active: boolean): void;
  /** Answer the next `n` requests (any path) with a 503 (or the given problem) before processing. */
  failNext(n: number, problem?: GeofenceError): void;
  /** Requests seen per path. */
  hits: Record<string, number>;
  stop(): Promise<void>;
  /** Stop listening (keeps state); `listen()` again on the same port. */
  pause(): Promise<void>;
  listen(): Promise<void>;
}

export async function startCollector(pki: TestPki, opts: { port?: number } = {}): Promise<TestCollector> {
  const agents = new Map<string, Registered>();
  const nonces = new MemoryNonceStore();
  const records: StoredRecord[] = [];
  const hits: Record<string, number> = {};
  let fail: { n: number; err: GeofenceError | undefined } = { n: 0, err: undefined };
  let seq = 0;

  const problem = (res: import('node:http').ServerResponse, err: GeofenceError) => {
    res.writeHead(err.status, { 'content-type': PROBLEM_CONTENT_TYPE });
    res.end(JSON.stringify(err.toProblem({ rejectedBy: 'collector', requestId: `req-${++seq}` })));
  };

  const server: Server = createServer({ key: pki.keyPem, cert: pki.certPem }, async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    hits[url.pathname] = (hits[url.pathname] ?? 0) + 1;
    if (fail.n > 0) {
      fail.n--;
      const err = fail.err ?? new GeofenceError('upstream', undefined, { status: 503 });
      res.writeHead(err.status, { 'content-type': PROBLEM_CONTENT_TYPE });
      res.end(JSON.stringify(err.toProblem({ rejectedBy: 'gateway', requestId: `req-${++seq}` })));
      return;
    }
    try {
      if (req.method === 'GET' && url.pathname === '/nonce') {
        const keyid = url.searchParams.get('public_key_hash');
        if (!keyid) throw new GeofenceError('request_validation', 'Missing public_key_hash');
        if (!agents.get(keyid)?.active)
          throw new GeofenceError('agent_verification', 'Agent not found in allowlist');
        const n = await nonces.issue(keyid);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ nonce: n.nonce, expires_at: n.expiresAt.toISOString(), expires_in: n.expiresIn }),
        );
        return;
      }
      if (req.method === 'POST' && url.pathname === '/metrics') {
        let json: unknown;
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch {
          throw new GeofenceError('request_validation');
        }
        const parsed = metricsPayloadSchema.safeParse(json);
        if (!parsed.success) throw new GeofenceError('request_validation');
        const p = parsed.data;
        const agent = agents.get(p.tpm_public_key_hash);
        if (!agent) throw new GeofenceError('agent_verification', 'Agent not found in allowlist');
        if (!agent.active) throw new GeofenceError('agent_verification', 'Agent is not active');
        if (agent.name !== p.agent_name)
          throw new GeofenceError('agent_verification', 'Public key hash mismatch');
        if (!verifyPayloadSignature(p, agent.key)) throw new GeofenceError('signature_verification');
        let sigNonce: string | undefined;
        try {
          const v = await verifyRequest(messageFromIncoming(req, body), {
            keyLookup: async (keyid) => (keyid === p.tpm_public_key_hash ? agent.key : undefined),
            requiredComponents: METRICS_SIGNATURE_COMPONENTS,
            requiredParams: ['created', 'expires', 'keyid', 'alg', 'nonce', 'tag'],
            label: SIGNATURE_LABEL,
            tag: SIGNATURE_TAG,
          });
          sigNonce = v.nonce;
          if (v.expires! - v.created! > 300) throw new Error('validity too long');
        } catch (err) {
          throw new GeofenceError('signature_verification', undefined, { cause: err });
        }
        if (Math.abs(Date.parse(p.timestamp) - Date.now()) > 60_000)
          throw new GeofenceError('timestamp_proximity');
        if (sigNonce !== p.nonce || (await nonces.consume(p.tpm_public_key_hash, p.nonce)) !== 'ok') {
          throw new GeofenceError('nonce_validation');
        }
        const header = JSON.parse(String(req.headers[WORKLOAD_GEO_ID_HEADER] ?? '{}'));
        const decision = evaluateGeoPolicy(agent.geo, {
          region: p.geographic_region,
          point: p.location,
          quality: p.location?.quality ?? header.client_workload_location_quality,
          fixTime: p.location?.fix_time,
        });
        if (
          !decision.allowed ||
          JSON.stringify(header.client_workload_location) !== JSON.stringify(p.geographic_region)
        ) {
          throw new GeofenceError('geolocation_policy', undefined, {
            details: { agent_name: p.agent_name, expected: agent.geo.allow, received: p.geographic_region },
          });
        }
        const recordId = `rec-${records.length + 1}`;
        records.push({ recordId, agentName: p.agent_name, raw: body.toString('utf8'), metrics: p.metrics });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            status: 'success',
            message: 'Metrics received and verified successfully',
            record_id: recordId,
          }),
        );
        return;
      }
      res.writeHead(404).end();
    } catch (err) {
      problem(res, GeofenceError.from(err));
    }
  });

  let port = opts.port ?? 0;
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
    register(name, pem, keyid, geo = {}) {
      agents.set(keyid, { name, key: createPublicKey(pem), geo, active: true });
    },
    setActive(keyid, active) {
      const a = agents.get(keyid);
      if (a) a.active = active;
    },
    failNext(n, err) {
      fail = { n, err };
    },
    pause,
    listen,
    async stop() {
      await pause();
      await nonces.close();
    },
  };
}
