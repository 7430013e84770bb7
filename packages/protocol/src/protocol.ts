/**
 * Wire protocol of SPEC §5.2, §6.1–§6.3: zod schemas, the payload signing input (JCS) and payload
 * signature verification. The agent SDK imports these, so there is exactly one implementation.
 */
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { isLowS } from '@geofence/http-sig';
import canonicalizeImport from 'canonicalize';
import { z } from 'zod';
import { fastJcs } from './fast-jcs.js';

// `canonicalize` is CommonJS with `module.exports = fn`; its typings declare an ES default export,
// which NodeNext resolves to the module object. At runtime the default import is the function.
const canonicalize = canonicalizeImport as unknown as (input: unknown) => string | undefined;

/**
 * RFC 8785 JSON Canonicalization Scheme serialisation of a JSON value (throws on NaN/Infinity,
 * returns the text). The one JCS entry point of the project.
 * @public
 */
export function jcs(value: unknown): string {
  const text = fastJcs(value) ?? canonicalize(value);
  if (text === undefined) throw new TypeError('value is not JSON-serialisable');
  return text;
}

/**
 * Label of the RFC 9421 signature (`Signature-Input: geo=(...)`).
 * @public
 */
export const SIGNATURE_LABEL = 'geo';
/**
 * `tag` parameter of the RFC 9421 signature.
 * @public
 */
export const SIGNATURE_TAG = 'geofence/v1';
/**
 * Components covered by the RFC 9421 signature of `POST /metrics` (SPEC §6.3), in order.
 * @public
 */
export const METRICS_SIGNATURE_COMPONENTS = Object.freeze([
  '@method',
  '@path',
  'content-type',
  'content-digest',
  'workload-geo-id',
] as const);
/**
 * Components covered by the optional RFC 9421 signature of `GET /nonce` (SPEC §6.3).
 * @public
 */
export const NONCE_SIGNATURE_COMPONENTS = Object.freeze(['@method', '@path', '@query'] as const);
/**
 * Name (lower case) of the Workload-Geo-ID header (SPEC §5.2).
 * @public
 */
export const WORKLOAD_GEO_ID_HEADER = 'workload-geo-id';
/**
 * Payload `version` this package produces and accepts.
 * @public
 */
export const PAYLOAD_VERSION = 1;
/**
 * Maximum `expires - created` of a signature, in seconds (SPEC §6.3).
 * @public
 */
export const MAX_SIGNATURE_VALIDITY_SECONDS = 300;
/**
 * Default accepted clock skew, in seconds (`CLOCK_SKEW_SECONDS`).
 * @public
 */
export const DEFAULT_CLOCK_SKEW_SECONDS = 60;
/**
 * Default nonce lifetime, in seconds (`NONCE_TTL_SECONDS`).
 * @public
 */
export const DEFAULT_NONCE_TTL_SECONDS = 300;
/**
 * Default number of unexpired nonces one agent may hold (`NONCE_MAX_OUTSTANDING`).
 * @public
 */
export const DEFAULT_NONCE_MAX_OUTSTANDING = 16;
/**
 * Default body size limit of `POST /metrics`, in bytes (1 MiB).
 * @public
 */
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * Payload signature algorithms (SPEC §3). RSA-PSS is deliberately absent.
 * @public
 */
export const PAYLOAD_ALGORITHMS = Object.freeze(['ecdsa-p256-sha256', 'rsa-v1_5-sha256'] as const);
/**
 * One of {@link PAYLOAD_ALGORITHMS}.
 * @public
 */
export type PayloadAlgorithm = (typeof PAYLOAD_ALGORITHMS)[number];

/**
 * Location qualities (SPEC §5.2), best first. `dead-reckoning` (a position extrapolated from motion
 * sensors, gpsd TPV `status` 5 or 6, not measured by GNSS) and `simulated` (gpsd `status` 8, a
 * receiver in simulator mode) rank below `static`: the verifier refuses them unless a policy's
 * `min_quality` names them.
 * @public
 */
export const LOCATION_QUALITIES = Object.freeze([
  'GNSS',
  'mobile',
  'wifi',
  'ip',
  'static',
  'dead-reckoning',
  'simulated',
] as const);
/**
 * One of {@link LOCATION_QUALITIES}.
 * @public
 */
export type LocationQuality = (typeof LOCATION_QUALITIES)[number];

/**
 * keyid: lowercase hex SHA-256 of the AppSK SubjectPublicKeyInfo DER (SPEC §3).
 * @public
 */
export const keyidSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');
/**
 * Nonce: 32 random bytes, base64url without padding (43 characters).
 * @public
 */
export const nonceSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/, 'must be 32 bytes base64url');
/**
 * Agent name: 1–128 characters of `[A-Za-z0-9._-]` (safe in logs, URLs and file names).
 * @public
 */
export const agentNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'invalid agent name');

const placeName = z.string().max(256);

/**
 * Hierarchical place `{region, state?, city?}` (SPEC §5.2, §6.2).
 * @public
 */
export const geographicRegionSchema = z.strictObject({
  region: placeName,
  state: placeName.optional(),
  city: placeName.optional(),
});
/**
 * A hierarchical place.
 * @public
 */
export type GeographicRegion = z.infer<typeof geographicRegionSchema>;

const isoDateTime = z.iso.datetime({ offset: true });

/**
 * Optional precise reading in the payload (SPEC §6.2).
 * @public
 */
export const locationReadingSchema = z.strictObject({
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
  accuracy: z.number().nonnegative().finite().optional(),
  quality: z.enum(LOCATION_QUALITIES),
  fix_time: isoDateTime.optional(),
  sensor_id_hash: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});
/**
 * A precise location reading.
 * @public
 */
export type LocationReading = z.infer<typeof locationReadingSchema>;

const base64urlSignature = z
  .string()
  .min(16)
  .max(2048)
  .regex(/^[A-Za-z0-9_-]+$/, 'must be base64url without padding');

/**
 * `POST /metrics` payload (SPEC §6.2). Unknown top-level members are rejected: every field must be
 * something the verifier understands, and all of them are covered by the signature.
 * @public
 */
export const metricsPayloadSchema = z.strictObject({
  version: z.literal(PAYLOAD_VERSION),
  agent_name: agentNameSchema,
  tpm_public_key_hash: keyidSchema,
  nonce: nonceSchema,
  timestamp: isoDateTime,
  metrics: z.record(z.string(), z.unknown()),
  geographic_region: geographicRegionSchema,
  location: locationReadingSchema.optional(),
  algorithm: z.enum(PAYLOAD_ALGORITHMS),
  signature: base64urlSignature,
});
/**
 * A `POST /metrics` payload.
 * @public
 */
export type MetricsPayload = z.infer<typeof metricsPayloadSchema>;
/**
 * A payload before signing (no `signature`).
 * @public
 */
export type UnsignedMetricsPayload = Omit<MetricsPayload, 'signature'>;

/**
 * `GET /nonce` response body (SPEC §6.1).
 * @public
 */
export const nonceResponseSchema = z.strictObject({
  nonce: nonceSchema,
  expires_at: isoDateTime,
  expires_in: z.number().int().positive(),
});
/**
 * A `GET /nonce` response body.
 * @public
 */
export type NonceResponse = z.infer<typeof nonceResponseSchema>;

/**
 * `GET /nonce?…&count=n` response body (SPEC §16): n nonces for one request, each with its own
 * expiry and every §6.1 rule (binding to the agent, lifetime, single use).
 * @public
 */
export const nonceBatchResponseSchema = z.strictObject({
  nonces: z.array(z.strictObject({ nonce: nonceSchema, expires_at: isoDateTime })).min(1),
  expires_in: z.number().int().positive(),
});
/**
 * A `GET /nonce?…&count=n` response body.
 * @public
 */
export type NonceBatchResponse = z.infer<typeof nonceBatchResponseSchema>;

/**
 * Name of the `GET /nonce` query parameter asking for a batch of nonces (SPEC §16).
 * @public
 */
export const NONCE_COUNT_PARAMETER = 'count';

/**
 * Workload-Geo-ID header value (SPEC §5.2).
 * @public
 */
export const workloadGeoIdSchema = z.strictObject({
  client_workload_id: z.string().min(1).max(256),
  client_workload_location: z.strictObject({
    region: placeName,
    state: placeName.optional(),
    city: placeName.optional(),
    lat: z.number().min(-90).max(90).optional(),
    lon: z.number().min(-180).max(180).optional(),
    accuracy: z.number().nonnegative().finite().optional(),
  }),
  client_workload_location_type: z.enum(['geographic-region', 'precise']),
  client_workload_location_quality: z.enum(LOCATION_QUALITIES),
  client_type: z.string().max(64).optional(),
});
/**
 * A parsed Workload-Geo-ID header.
 * @public
 */
export type WorkloadGeoId = z.infer<typeof workloadGeoIdSchema>;

/**
 * The exact bytes the payload signature covers: UTF-8 of the RFC 8785 (JCS) serialisation of the
 * payload without its `signature` member. Every other member is covered.
 * @public
 */
export function payloadSigningInput(payload: object): Uint8Array {
  // Fast path: serialise once, skipping `signature`, without copying the payload.
  const fast = fastJcs(payload, 'signature');
  if (fast !== undefined && typeof payload === 'object' && payload !== null && !Array.isArray(payload)) {
    return Buffer.from(fast, 'utf8');
  }
  const { signature: _omit, ...rest } = payload as Record<string, unknown>;
  return Buffer.from(jcs(rest), 'utf8');
}

/**
 * Strict base64url decoding: rejects padding, foreign characters and non-canonical trailing bits,
 * so one signature has exactly one textual form.
 * @public
 */
export function decodeBase64url(text: string): Uint8Array | undefined {
  const rest = text.length % 4;
  if (!BASE64URL.test(text) || rest === 1) return undefined;
  // Canonical iff the bits of the last character beyond the encoded bytes are zero (4 bits when
  // 2 characters remain, 2 when 3 do): the same test as re-encoding and comparing, without doing it.
  if (rest !== 0) {
    const last = BASE64URL_VALUE.indexOf(text.charAt(text.length - 1));
    if ((last & (rest === 2 ? 0x0f : 0x03)) !== 0) return undefined;
  }
  return Buffer.from(text, 'base64url');
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const BASE64URL_VALUE = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Encode bytes as base64url without padding.
 * @public
 */
export function encodeBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

// Positive key/algorithm checks per KeyObject: `asymmetricKeyDetails` allocates on every access.
const keyChecks = new WeakMap<KeyObject, PayloadAlgorithm>();

function keyMatches(alg: PayloadAlgorithm, key: KeyObject): boolean {
  if (keyChecks.get(key) === alg) return true;
  const ok = keyMatchesUncached(alg, key);
  if (ok) keyChecks.set(key, alg);
  return ok;
}

function keyMatchesUncached(alg: PayloadAlgorithm, key: KeyObject): boolean {
  if (key.type !== 'public' && key.type !== 'private') return false;
  if (alg === 'ecdsa-p256-sha256') {
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  }
  // RSA below 2048 bits is refused: the AppSK is RSA-2048 (SPEC §3).
  return key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048;
}

/**
 * Verify the payload signature (SPEC §6.2) with the agent's AppSK public key.
 * `ecdsa-p256-sha256` signatures are raw r‖s (64 bytes, IEEE P1363) in low-s form; `rsa-v1_5-sha256` are PKCS#1 v1.5.
 * Returns false (never throws) on any mismatch: unknown algorithm, key of the wrong type or curve,
 * malformed signature encoding, bad signature.
 * @public
 */
export function verifyPayloadSignature(
  payload: { algorithm: string; signature: string } & object,
  publicKey: KeyObject,
): boolean {
  const alg = payload.algorithm as PayloadAlgorithm;
  if (!(PAYLOAD_ALGORITHMS as readonly string[]).includes(alg)) return false;
  if (typeof payload.signature !== 'string' || !keyMatches(alg, publicKey)) return false;
  const sig = decodeBase64url(payload.signature);
  if (sig === undefined) return false;
  let input: Uint8Array;
  try {
    input = payloadSigningInput(payload);
  } catch {
    return false;
  }
  if (alg === 'ecdsa-p256-sha256') {
    // Low-s only: (r, n − s) would verify too, and one message must have exactly one valid signature.
    if (!isLowS(sig)) return false;
    return cryptoVerify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig);
  }
  return cryptoVerify('sha256', input, publicKey, sig);
}

/**
 * Anything that can sign with an AppSK: structurally compatible with `Signer` of `@geofence/http-sig`
 * and with the TPM signer of `@geofence/native-tpm`.
 * @public
 */
export interface PayloadSigner {
  /** Algorithm of the key. */
  alg: string;
  /** Sign the data (the signer hashes with SHA-256). ECDSA output must be raw r‖s. */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/**
 * Sign a payload: sets `algorithm` from the signer and adds `signature` over {@link payloadSigningInput}.
 * @public
 */
export async function signPayload(
  payload: Omit<UnsignedMetricsPayload, 'algorithm'>,
  signer: PayloadSigner,
): Promise<MetricsPayload> {
  if (!(PAYLOAD_ALGORITHMS as readonly string[]).includes(signer.alg)) {
    throw new TypeError(`unsupported payload algorithm: ${signer.alg}`);
  }
  const unsigned = { ...payload, algorithm: signer.alg as PayloadAlgorithm };
  const signature = await signer.sign(payloadSigningInput(unsigned));
  return { ...unsigned, signature: encodeBase64url(signature) };
}
