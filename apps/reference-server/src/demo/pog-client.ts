/**
 * The client side of the demo's Proof-of-Geofencing part, from the SDK's building blocks: obtain a
 * PoG credential through a real location attestation (`performLocationAttestation`, TPM quote), and
 * sign requests to a resource with the TPM-resident AppSK (`@geofence/http-sig` with the TPM signer)
 * in the wire profile of `@geofence/protocol` (label `pog`, tag `geofence-pog/v1`, components
 * `@method`, `@target-uri`, the credential header).
 */
import { randomBytes } from 'node:crypto';
import {
  type AgentState,
  GeofenceRejection,
  type LocationTpm,
  type PerformLocationAttestationOptions,
  performLocationAttestation,
} from '@geofence/agent';
import { type Signer, signRequest } from '@geofence/http-sig';
import {
  CREDENTIAL_CERTIFICATE_HEADER,
  CREDENTIAL_HEADER,
  CREDENTIAL_SIGNATURE_COMPONENTS,
  CREDENTIAL_SIGNATURE_LABEL,
  CREDENTIAL_SIGNATURE_TAG,
  type CredentialFormat,
  type LocationAttestationResponse,
} from '@geofence/protocol';
import { request, type Agent as UndiciAgent } from 'undici';
import { fetchNonce } from './raw.js';

/** A credential as the collector issued it. */
export interface PogCredential {
  /** The attestation-result JWT. */
  jwt: string;
  /** The PoG certificate (DER), when `x509` was asked for. */
  certificate?: Uint8Array;
}

/** Asks `collector` for a credential: a fresh, TPM-sealed location attestation. */
export async function obtainCredential(o: {
  collector: string;
  dispatcher: UndiciAgent;
  tpm: LocationTpm;
  state: AgentState;
  /** The reading to seal (without `fix_time`, a configured site measured now). */
  location: PerformLocationAttestationOptions['location'];
  format?: CredentialFormat;
}): Promise<PogCredential> {
  let answer: Partial<LocationAttestationResponse> = {};
  await performLocationAttestation({
    tpm: o.tpm,
    state: o.state,
    location: o.location,
    nonce: async (keyid) => (await fetchNonce(o.collector, keyid, o.dispatcher)).nonce,
    post: async (path, json) => {
      const r = await request(o.collector + path, {
        method: 'POST',
        dispatcher: o.dispatcher,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...(json as object), credential_format: o.format ?? 'jwt' }),
      });
      const body = (await r.body.json()) as unknown;
      if (r.statusCode === 200) answer = body as Partial<LocationAttestationResponse>;
      return { status: r.statusCode, body };
    },
  });
  if (typeof answer.attestation_result !== 'string') throw new GeofenceRejection(500, answer);
  return {
    jwt: answer.attestation_result,
    ...(answer.certificate ? { certificate: Buffer.from(answer.certificate, 'base64url') } : {}),
  };
}

/** A signed resource request, ready to (re)send. */
export interface PogRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
}

/**
 * Signs a body-less request to `url` presenting `credential` (the JWT, or with `useCertificate`
 * the certificate) with `signer` — whose `keyid` must be the credential's `cnf.jkt`.
 */
export async function signResourceRequest(o: {
  method?: string;
  url: string;
  credential: PogCredential;
  useCertificate?: boolean;
  signer: Signer;
}): Promise<PogRequest> {
  const method = o.method ?? 'GET';
  const headers: Record<string, string> = {};
  let header: string = CREDENTIAL_HEADER;
  if (o.useCertificate && o.credential.certificate) {
    header = CREDENTIAL_CERTIFICATE_HEADER;
    headers[header] = `:${Buffer.from(o.credential.certificate).toString('base64')}:`;
  } else headers[header] = o.credential.jwt;
  const sig = await signRequest(
    { method, url: o.url, headers },
    {
      signer: o.signer,
      components: [...CREDENTIAL_SIGNATURE_COMPONENTS, header],
      label: CREDENTIAL_SIGNATURE_LABEL,
      tag: CREDENTIAL_SIGNATURE_TAG,
      nonce: randomBytes(32).toString('base64url'),
    },
  );
  return { method, url: o.url, headers: { ...headers, ...sig } };
}

/** Sends a signed request; the body as bytes (a file) or parsed (a problem). */
export async function sendResourceRequest(
  r: PogRequest,
  dispatcher: UndiciAgent,
): Promise<{ status: number; bytes: Buffer; problem: unknown }> {
  const res = await request(r.url, { method: r.method as 'GET', headers: r.headers, dispatcher });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  let problem: unknown;
  if (res.statusCode !== 200) {
    try {
      problem = JSON.parse(bytes.toString('utf8'));
    } catch {
      problem = undefined;
    }
  }
  return { status: res.statusCode, bytes, problem };
}
