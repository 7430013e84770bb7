import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createSigner, type Signer, signRequest } from '@geofence/http-sig';
import {
  keyidOfPublicKey,
  NONCE_SIGNATURE_COMPONENTS,
  type NonceResponse,
  type Registry,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
} from '@geofence/verifier';
import { Agent, request } from 'undici';
import { buildSigned, type RawRequest } from '../../src/demo/raw.js';

export const SANTA_CLARA = { region: 'US', state: 'California', city: 'Santa Clara' };

/** A software-key agent (the TPM is not the subject of these tests). */
export interface SoftAgent {
  name: string;
  keyid: string;
  publicKey: KeyObject;
  signer: Signer;
}

export function softAgent(name: string): SoftAgent {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyid = keyidOfPublicKey(publicKey);
  return {
    name,
    keyid,
    publicKey,
    signer: createSigner({ key: privateKey, alg: 'ecdsa-p256-sha256', keyid }),
  };
}

/** Registers `a` as active for Santa Clara. */
export async function register(
  registry: Registry,
  a: SoftAgent,
  status: 'active' | 'pending' | 'revoked' = 'active',
) {
  await registry.put({
    agent_name: a.name,
    keyid: a.keyid,
    alg: 'ecdsa-p256-sha256',
    app_public_key_pem: a.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    geo_policy: { allow: [SANTA_CLARA] },
    status,
  });
}

/** HTTPS client trusting `ca`. */
export function client(ca: string): Agent {
  return new Agent({ connect: { ca }, connections: 16 });
}

/** GET/POST returning status, headers and parsed JSON. */
export async function http(
  dispatcher: Agent,
  url: string,
  init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string | Buffer } = {},
) {
  const r = await request(url, {
    method: init.method ?? 'GET',
    headers: init.headers ?? {},
    body: init.body ?? null,
    dispatcher,
  });
  const text = await r.body.text();
  let json: Record<string, unknown> = {};
  if (/json/.test(String(r.headers['content-type']))) json = JSON.parse(text) as Record<string, unknown>;
  return { status: r.statusCode, headers: r.headers, text, json };
}

/** Fetches a nonce from `base` and signs a metrics request with it. */
export async function signedRequest(
  dispatcher: Agent,
  base: string,
  a: SoftAgent,
  opts: {
    place?: { region: string; state?: string; city?: string };
    now?: Date;
    metrics?: Record<string, unknown>;
    /** Sign the `GET /nonce` (SPEC §6.3), as the agent SDK does by default. */
    signNonce?: boolean;
  } = {},
): Promise<RawRequest> {
  const target = `${base}/nonce?public_key_hash=${a.keyid}`;
  const n = await http(dispatcher, target, {
    headers: opts.signNonce ? await signedNonceHeaders(a, target) : {},
  });
  if (n.status !== 200) throw new Error(`nonce ${n.status}: ${n.text}`);
  return buildSigned({
    agentName: a.name,
    keyid: a.keyid,
    signer: a.signer,
    nonce: n.json as unknown as NonceResponse,
    metrics: opts.metrics ?? { cpu_percent: 12.5 },
    place: opts.place ?? SANTA_CLARA,
    now: opts.now ?? new Date(),
    validitySeconds: 60,
  });
}

/** RFC 9421 headers of a signed `GET target` (`@method @path @query`, SPEC §6.3). */
export async function signedNonceHeaders(a: SoftAgent, target: string): Promise<Record<string, string>> {
  const created = Math.floor(Date.now() / 1000);
  const h = await signRequest(
    { method: 'GET', url: target, headers: {} },
    {
      signer: a.signer,
      components: NONCE_SIGNATURE_COMPONENTS,
      label: SIGNATURE_LABEL,
      tag: SIGNATURE_TAG,
      created,
      expires: created + 60,
    },
  );
  return { 'signature-input': h['signature-input'], signature: h.signature };
}

/** POSTs a prepared request to `base`/metrics. */
export function postMetrics(dispatcher: Agent, base: string, req: RawRequest) {
  return http(dispatcher, `${base}/metrics`, { method: 'POST', headers: req.headers, body: req.body });
}
