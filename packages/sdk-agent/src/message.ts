import { contentDigest, type Signer, signRequest } from '@geofence/http-sig';
import {
  MAX_SIGNATURE_VALIDITY_SECONDS,
  METRICS_SIGNATURE_COMPONENTS,
  type MetricsPayload,
  type NonceResponse,
  PAYLOAD_VERSION,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
  signPayload,
  WORKLOAD_GEO_ID_HEADER,
  type WorkloadGeoId,
} from '@geofence/protocol';
import type { LocationObservation } from './location/types.js';

/** Inputs of {@link buildMetricsRequest}. */
export interface MetricsRequestInput {
  /** `agent_name`. */
  agentName: string;
  /** AppSK keyid (`tpm_public_key_hash`, RFC 9421 `keyid`). */
  keyid: string;
  /** AppSK signer (TPM); signs the payload and the HTTP message. */
  signer: Signer;
  /** Nonce issued for this keyid by `GET /nonce`. */
  nonce: NonceResponse;
  /** Where the agent is (payload `geographic_region`/`location`, `Workload-Geo-ID`). */
  observation: LocationObservation;
  /** The metric set (or `{ batch: [...] }`). */
  metrics: Record<string, unknown>;
  /** `client_type` of the header. */
  clientType: string;
  /** Request path of `POST /metrics` as sent (the `@path` component). */
  path: string;
  /** Origin of the gateway (for the message URL; `@authority` is not covered). */
  origin: string;
  /** Signing time (payload `timestamp`, signature `created`). */
  now: Date;
  /** Requested signature validity; capped at 300 s and at the nonce's remaining lifetime. */
  validitySeconds: number;
}

/** A signed `POST /metrics` request, ready to send. */
export interface SignedMetricsRequest {
  /** The signed payload. */
  payload: MetricsPayload;
  /** The exact body bytes (what `Content-Digest` covers). */
  body: Uint8Array;
  /** `content-type`, `content-digest`, `workload-geo-id`, `signature-input`, `signature`. */
  headers: Record<string, string>;
  /** The RFC 9421 signature's `expires` (Unix seconds): after it the collector refuses the request. */
  expires: number;
}

/**
 * JSON text with every non-ASCII character escaped (`\u00e9` style): still the same JSON value, but
 * safe as an HTTP field value (RFC 9110 field values are ASCII in practice).
 */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** The `Workload-Geo-ID` value (SPEC §5.2) for an observation. */
export function workloadGeoId(
  agentName: string,
  obs: LocationObservation,
  clientType: string,
): WorkloadGeoId {
  const { region, state, city } = obs.geographicRegion;
  return {
    client_workload_id: agentName,
    client_workload_location: {
      region,
      ...(state !== undefined ? { state } : {}),
      ...(city !== undefined ? { city } : {}),
    },
    client_workload_location_type: obs.locationType,
    client_workload_location_quality: obs.quality,
    client_type: clientType,
  };
}

/**
 * Builds and signs one `POST /metrics` request: payload (SPEC §6.2) signed over its JCS form,
 * `Content-Digest`, `Workload-Geo-ID`, and the RFC 9421 `geo` signature over exactly the SPEC §6.3
 * components and parameters. The signing is done by `@geofence/protocol` (payload) and
 * `@geofence/http-sig` (HTTP message); this function only assembles.
 */
export async function buildMetricsRequest(input: MetricsRequestInput): Promise<SignedMetricsRequest> {
  const { observation: obs } = input;
  const payload = await signPayload(
    {
      version: PAYLOAD_VERSION,
      agent_name: input.agentName,
      tpm_public_key_hash: input.keyid,
      nonce: input.nonce.nonce,
      timestamp: input.now.toISOString(),
      metrics: input.metrics,
      geographic_region: { ...obs.geographicRegion },
      ...(obs.reading ? { location: { ...obs.reading } } : {}),
    },
    input.signer,
  );
  const body = Buffer.from(JSON.stringify(payload), 'utf8');
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-digest': contentDigest(body, 'sha-256'),
    [WORKLOAD_GEO_ID_HEADER]: asciiJson(workloadGeoId(input.agentName, obs, input.clientType)),
  };
  const created = Math.floor(input.now.getTime() / 1000);
  const nonceLeft = Math.floor((Date.parse(input.nonce.expires_at) - input.now.getTime()) / 1000);
  const validity = Math.max(1, Math.min(input.validitySeconds, MAX_SIGNATURE_VALIDITY_SECONDS, nonceLeft));
  const expires = created + validity;
  const sig = await signRequest(
    { method: 'POST', url: `${input.origin}${input.path}`, headers, body },
    {
      signer: input.signer,
      components: METRICS_SIGNATURE_COMPONENTS,
      label: SIGNATURE_LABEL,
      tag: SIGNATURE_TAG,
      created,
      expires,
      nonce: input.nonce.nonce,
    },
  );
  headers['signature-input'] = sig['signature-input'];
  headers.signature = sig.signature;
  return { payload, body, headers, expires };
}
