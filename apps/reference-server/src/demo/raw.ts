/**
 * Signed requests for the attack scenarios (replay, tampered body, expired signature). They are built
 * by the agent SDK's own `buildMetricsRequest` with the agent's TPM signer, so the only difference
 * from a genuine message is the one the scenario introduces (sent twice, edited after signing, or
 * signed with a clock in the past).
 */
import { buildMetricsRequest } from '@geofence/agent';
import { contentDigest, type Signer } from '@geofence/http-sig';
import type { NonceResponse } from '@geofence/verifier';
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

/**
 * Builds a signed `POST /metrics` whose clock is `now` (in the past for the expired scenario), as a
 * static-location agent of `client_type` `thick` would.
 */
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
  const { body, headers } = await buildMetricsRequest({
    agentName: opts.agentName,
    keyid: opts.keyid,
    signer: opts.signer,
    nonce: opts.nonce,
    observation: { geographicRegion: opts.place, quality: 'static', locationType: 'geographic-region' },
    metrics: opts.metrics,
    clientType: 'thick',
    path: '/metrics',
    origin: 'https://gateway',
    now: opts.now,
    validitySeconds: opts.validitySeconds,
  });
  return { body: Buffer.from(body.buffer, body.byteOffset, body.byteLength), headers };
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
