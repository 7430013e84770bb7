/**
 * Hand-built signed requests for the attack scenarios (replay, tampered body, expired signature). They
 * are assembled from the same building blocks the agent SDK uses — the verifier's payload signing, the
 * http-sig RFC 9421 signer, and the TPM signer of native-tpm — so the only difference from a genuine
 * message is the one the scenario introduces.
 */
import { contentDigest, type Signer, signRequest } from '@geofence/http-sig';
import {
  METRICS_SIGNATURE_COMPONENTS,
  type NonceResponse,
  PAYLOAD_VERSION,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
  signPayload,
  WORKLOAD_GEO_ID_HEADER,
} from '@geofence/verifier';
import { request, Agent as UndiciAgent } from 'undici';

/** A signed request ready to (re)send. */
export interface RawRequest {
  body: Buffer;
  headers: Record<string, string>;
}

/** An observed HTTP answer. */
export interface RawAnswer {
  status: number;
  body: unknown;
}

/** HTTPS client trusting the demo CA only. */
export function demoDispatcher(ca: string): UndiciAgent {
  return new UndiciAgent({ connect: { ca, rejectUnauthorized: true }, keepAliveTimeout: 1000 });
}

/** Fetches a nonce for `keyid` from `base`. */
export async function fetchNonce(
  base: string,
  keyid: string,
  dispatcher: UndiciAgent,
): Promise<NonceResponse> {
  const r = await request(`${base}/nonce?public_key_hash=${keyid}`, { dispatcher });
  const body = (await r.body.json()) as NonceResponse;
  if (r.statusCode !== 200)
    throw new Error(`nonce request answered ${r.statusCode}: ${JSON.stringify(body)}`);
  return body;
}

/** Builds a signed `POST /metrics` whose clock is `now` (in the past for the expired scenario). */
export async function buildSigned(opts: {
  agentName: string;
  keyid: string;
  signer: Signer;
  nonce: NonceResponse;
  metrics: Record<string, unknown>;
  place: { region: string; state?: string; city?: string };
  now: Date;
  validitySeconds: number;
}): Promise<RawRequest> {
  const payload = await signPayload(
    {
      version: PAYLOAD_VERSION,
      agent_name: opts.agentName,
      tpm_public_key_hash: opts.keyid,
      nonce: opts.nonce.nonce,
      timestamp: opts.now.toISOString(),
      metrics: opts.metrics,
      geographic_region: opts.place,
    },
    opts.signer,
  );
  const body = Buffer.from(JSON.stringify(payload), 'utf8');
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-digest': contentDigest(body, 'sha-256'),
    [WORKLOAD_GEO_ID_HEADER]: JSON.stringify({
      client_workload_id: opts.agentName,
      client_workload_location: opts.place,
      client_workload_location_type: 'geographic-region',
      client_workload_location_quality: 'static',
      client_type: 'thick',
    }),
  };
  const created = Math.floor(opts.now.getTime() / 1000);
  const sig = await signRequest(
    { method: 'POST', url: 'https://gateway/metrics', headers, body },
    {
      signer: opts.signer,
      components: METRICS_SIGNATURE_COMPONENTS,
      label: SIGNATURE_LABEL,
      tag: SIGNATURE_TAG,
      created,
      expires: created + opts.validitySeconds,
      nonce: opts.nonce.nonce,
    },
  );
  headers['signature-input'] = sig['signature-input'];
  headers.signature = sig.signature;
  return { body, headers };
}

/**
 * The attacker's edit: one metric value changed in the body, and the Content-Digest recomputed so
 * the body digest itself is consistent — only the signatures can tell.
 */
export function tamper(req: RawRequest): RawRequest {
  const payload = JSON.parse(req.body.toString('utf8')) as { metrics: Record<string, unknown> };
  payload.metrics = { ...payload.metrics, cpu_percent: 0.1, tampered: true };
  const body = Buffer.from(JSON.stringify(payload), 'utf8');
  return { body, headers: { ...req.headers, 'content-digest': contentDigest(body, 'sha-256') } };
}

/** Sends a prepared request to `base`/metrics. */
export async function post(base: string, req: RawRequest, dispatcher: UndiciAgent): Promise<RawAnswer> {
  const r = await request(`${base}/metrics`, {
    method: 'POST',
    headers: req.headers,
    body: req.body,
    dispatcher,
    headersTimeout: 15_000,
    bodyTimeout: 15_000,
  });
  const text = await r.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: r.statusCode, body };
}
