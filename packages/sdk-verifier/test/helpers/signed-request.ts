/**
 * Test utility: an agent with a software P-256 (or RSA-2048) key standing in for the TPM-resident
 * AppSK, and builders for correctly signed `POST /metrics` and `GET /nonce` requests (SPEC §6.2,
 * §6.3). Every part can be overridden to craft attacks.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { contentDigest, createSigner, type Signer, signRequest } from '@geofence/http-sig';
import {
  type AgentRecordInput,
  type GeographicRegion,
  type GeoPolicy,
  keyidOfPublicKey,
  type LocationReading,
  METRICS_SIGNATURE_COMPONENTS,
  NONCE_SIGNATURE_COMPONENTS,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
  signPayload,
} from '../../src/index.js';

/** A software-key agent. */
export interface TestAgent {
  name: string;
  keyid: string;
  alg: 'ecdsa-p256-sha256' | 'rsa-v1_5-sha256';
  privateKey: KeyObject;
  publicKey: KeyObject;
  signer: Signer;
  /** Registry record input (active, US/California/Santa Clara by default). */
  record: AgentRecordInput;
}

export const SANTA_CLARA: GeographicRegion = { region: 'US', state: 'California', city: 'Santa Clara' };
export const BERLIN: GeographicRegion = { region: 'EU', state: 'Germany', city: 'Berlin' };

/** Create an agent with a fresh key. */
export function makeAgent(
  name: string,
  options: { alg?: TestAgent['alg']; geoPolicy?: GeoPolicy; status?: AgentRecordInput['status'] } = {},
): TestAgent {
  const alg = options.alg ?? 'ecdsa-p256-sha256';
  const { privateKey, publicKey } =
    alg === 'ecdsa-p256-sha256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyid = keyidOfPublicKey(publicKey);
  return {
    name,
    keyid,
    alg,
    privateKey,
    publicKey,
    signer: createSigner({ key: privateKey, alg, keyid }),
    record: {
      agent_name: name,
      keyid,
      alg,
      app_public_key_pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      geo_policy: options.geoPolicy ?? { allow: [{ ...SANTA_CLARA }] },
      status: options.status ?? 'active',
    },
  };
}

/** A request ready to send with fetch/undici. */
export interface BuiltRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

/** Overrides for {@link buildMetricsRequest}. */
export interface MetricsRequestOptions {
  nonce: string;
  path?: string;
  region?: GeographicRegion;
  /** Location in the Workload-Geo-ID header (default: same as `region`). */
  headerRegion?: GeographicRegion;
  location?: LocationReading;
  metrics?: Record<string, unknown>;
  timestamp?: Date;
  /** Header signature `created` (default now) and `expires` (default created + 300 s). */
  created?: Date;
  expires?: Date;
  /** Header nonce (default: the payload nonce). */
  headerNonce?: string;
  /** Signer of the payload and headers (default the agent's; pass another agent's for "wrong key"). */
  signer?: Signer;
  /** Claimed keyid / agent name in the payload (default the agent's). */
  keyid?: string;
  agentName?: string;
  /** Omit the RFC 9421 headers. */
  unsigned?: boolean;
}

/** Build a correctly signed `POST /metrics` (payload signature + RFC 9421 headers). */
export async function buildMetricsRequest(agent: TestAgent, o: MetricsRequestOptions): Promise<BuiltRequest> {
  const region = o.region ?? SANTA_CLARA;
  const keyid = o.keyid ?? agent.keyid;
  const signer: Signer = o.signer ? { ...o.signer, keyid } : agent.signer;
  const payload = await signPayload(
    {
      version: 1,
      agent_name: o.agentName ?? agent.name,
      tpm_public_key_hash: keyid,
      nonce: o.nonce,
      timestamp: (o.timestamp ?? new Date()).toISOString(),
      metrics: o.metrics ?? { cpu_percent: 12.5, mem_mb: 512 },
      geographic_region: region,
      ...(o.location ? { location: o.location } : {}),
    },
    signer,
  );
  const body = JSON.stringify(payload);
  const path = o.path ?? '/metrics';
  const hr = o.headerRegion ?? region;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-digest': contentDigest(body),
    'workload-geo-id': JSON.stringify({
      client_workload_id: agent.name,
      client_workload_location: hr,
      client_workload_location_type: 'geographic-region',
      client_workload_location_quality: o.location?.quality ?? 'static',
      client_type: 'thick',
    }),
  };
  if (o.unsigned) return { method: 'POST', path, headers, body };
  const created = o.created ?? new Date();
  const expires = o.expires ?? new Date(created.getTime() + 300_000);
  const sig = await signRequest(
    { method: 'POST', url: path, headers, body },
    {
      signer,
      components: METRICS_SIGNATURE_COMPONENTS,
      label: SIGNATURE_LABEL,
      tag: SIGNATURE_TAG,
      nonce: o.headerNonce ?? o.nonce,
      created,
      expires,
    },
  );
  return { method: 'POST', path, headers: { ...headers, ...sig }, body };
}

/** Build `GET /nonce?public_key_hash=<keyid>`, signed unless `signed: false`. */
let nonceRequestSeq = 0;

export async function buildNonceRequest(
  agent: TestAgent,
  o: { signed?: boolean; keyid?: string; path?: string; created?: Date; query?: string } = {},
): Promise<BuiltRequest> {
  const path = `${o.path ?? '/nonce'}?public_key_hash=${o.keyid ?? agent.keyid}${o.query ?? ''}`;
  if (o.signed === false) return { method: 'GET', path, headers: {} };
  const created = o.created ?? new Date();
  // A signed nonce request is single-use and RSA signatures are deterministic: vary expires (as the
  // agent SDK does) so two requests signed within one second differ.
  const validity = 300_000 - 1000 * (nonceRequestSeq++ % 200);
  const sig = await signRequest(
    { method: 'GET', url: path, headers: {} },
    {
      signer: agent.signer,
      components: NONCE_SIGNATURE_COMPONENTS,
      label: SIGNATURE_LABEL,
      tag: SIGNATURE_TAG,
      created,
      expires: new Date(created.getTime() + validity),
    },
  );
  return { method: 'GET', path, headers: { ...sig } };
}

/** (r, s) → (r, n − s) on P-256: the other signature that verifies for the same message. */
export function flipS(sig: Uint8Array): Buffer {
  const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
  const s = BigInt(`0x${Buffer.from(sig.subarray(32)).toString('hex')}`);
  return Buffer.concat([
    Buffer.from(sig.subarray(0, 32)),
    Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex'),
  ]);
}
