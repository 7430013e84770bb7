/**
 * The byte-exact constructions both sides of the attestation protocol must agree on: what the TPM
 * quotes (qualifying data), the V-PEA location commitments, and the `tpm-quote-seal` framing. The
 * agent SDK imports these, so there is one implementation.
 */
import { fromB64u, jcsBytes, sha256, toB64u } from './encoding.js';
import type { EnrollRequest, SensorInfo } from './schemas.js';

/**
 * Qualifying data of the enrolment quote (SPEC §4 step 2): SHA-256 of the JCS of
 * `{enrollment_id, nonce, request}`, where `request` is the `POST /enroll` body. The quote thereby
 * covers the claimed workload, platform, sensor and keys, not just the nonce.
 * @public
 */
export function enrollmentQualifyingData(
  enrollmentId: string,
  nonce: string,
  request: EnrollRequest,
): Uint8Array {
  return sha256(jcsBytes({ enrollment_id: enrollmentId, nonce, request }));
}

/**
 * Raw reading of the `none` privacy technique (`geolocation-payload`): where, how precisely, and
 * when the receiver measured it.
 * @public
 */
export interface GeolocationPayload {
  /** Latitude, WGS-84 degrees. */
  lat: number;
  /** Longitude, WGS-84 degrees. */
  lon: number;
  /** Accuracy radius in metres. */
  accuracy: number;
  /**
   * Time of the fix (ISO 8601 with offset, as the payload's `location.fix_time`): when the
   * position was measured, not when the bundle was built (that is the bundle's `timestamp`).
   */
  fix_time: string;
}

/**
 * `geolocation-proof-hash` for `privacy-technique: "none"`:
 * base64url(SHA-256(JCS({lat, lon, accuracy, fix_time}))). The quote covers this hash, so the fix
 * time is sealed with the position.
 * @public
 */
export function geolocationProofHash(payload: GeolocationPayload): string {
  return toB64u(
    sha256(
      jcsBytes({
        lat: payload.lat,
        lon: payload.lon,
        accuracy: payload.accuracy,
        fix_time: payload.fix_time,
      }),
    ),
  );
}

/**
 * Sensor identifier bytes of the draft's GNSS recipe: UTF-8(serial) ‖ UTF-8(class id), where the
 * class id is `<type>/<model>`. Empty when the agent declared no sensor.
 * @public
 */
export function sensorIdentifierBytes(sensor: SensorInfo | undefined): Uint8Array {
  if (!sensor) return new Uint8Array(0);
  return new TextEncoder().encode(`${sensor.serial}${sensor.type}/${sensor.model}`);
}

/**
 * `geolocation-id-hash`: base64url(SHA-256(AK SubjectPublicKeyInfo DER ‖ sensor identifiers)).
 * Binds the location sensor to the AK (and thereby to the TPM) without revealing the serial.
 * @public
 */
export function geolocationIdHash(akSpkiDer: Uint8Array, sensor: SensorInfo | undefined): string {
  return toB64u(sha256(akSpkiDer, sensorIdentifierBytes(sensor)));
}

/**
 * The `lah-bundle` members the `tpm-quote-seal` covers.
 * @public
 */
export interface LahSealedFields {
  /** AK public key, SPKI PEM. */
  'tpm-ak': string;
  /** See {@link geolocationIdHash}. */
  'geolocation-id-hash': string;
  /** See {@link geolocationProofHash}. */
  'geolocation-proof-hash': string;
  /** `none`. */
  'privacy-technique': string;
  /** Nonce issued by the verifier. */
  nonce: string;
  /** Unix seconds at bundle construction. */
  timestamp: number;
  /**
   * Lowercase hex SHA-256 of the workload image. Drafts name it `target-environment-image-digest`
   * (V-PEA) or `workload-identity-agent-image-digest`; a bundle carries exactly one, and the seal
   * covers it under the name the bundle uses.
   */
  'target-environment-image-digest'?: string;
  /** The same digest under the other draft name (see `target-environment-image-digest`). */
  'workload-identity-agent-image-digest'?: string;
}

/**
 * The workload image digest of a bundle, whichever draft name it carries (undefined when it carries
 * none or both).
 * @public
 */
export function lahImageDigest(fields: LahSealedFields): string | undefined {
  const a = fields['target-environment-image-digest'];
  const b = fields['workload-identity-agent-image-digest'];
  return (a === undefined) === (b === undefined) ? undefined : (a ?? b);
}

/**
 * Qualifying data of the `tpm-quote-seal`: SHA-256(JCS({tpm-ak, geolocation-id-hash,
 * geolocation-proof-hash, privacy-technique, nonce, timestamp, target-environment-image-digest})), the
 * digest under the draft name the bundle uses (`workload-identity-agent-image-digest` is the variant).
 * @public
 */
export function lahQualifyingData(fields: LahSealedFields): Uint8Array {
  return sha256(
    jcsBytes({
      'tpm-ak': fields['tpm-ak'],
      'geolocation-id-hash': fields['geolocation-id-hash'],
      'geolocation-proof-hash': fields['geolocation-proof-hash'],
      'privacy-technique': fields['privacy-technique'],
      nonce: fields.nonce,
      timestamp: fields.timestamp,
      ...(fields['workload-identity-agent-image-digest'] !== undefined &&
      fields['target-environment-image-digest'] === undefined
        ? { 'workload-identity-agent-image-digest': fields['workload-identity-agent-image-digest'] }
        : { 'target-environment-image-digest': fields['target-environment-image-digest'] }),
    }),
  );
}

/**
 * Encodes a quote as `tpm-quote-seal`: base64url of TPM2B_ATTEST (2-byte big-endian size ‖
 * TPMS_ATTEST) ‖ TPMT_SIGNATURE, the layout of the TPM2_Quote response parameters.
 * @public
 */
export function encodeQuoteSeal(attest: Uint8Array, signature: Uint8Array): string {
  if (attest.byteLength > 0xffff) throw new RangeError('TPMS_ATTEST too large');
  const out = new Uint8Array(2 + attest.byteLength + signature.byteLength);
  out[0] = attest.byteLength >> 8;
  out[1] = attest.byteLength & 0xff;
  out.set(attest, 2);
  out.set(signature, 2 + attest.byteLength);
  return toB64u(out);
}

/**
 * Splits a `tpm-quote-seal` into TPMS_ATTEST and TPMT_SIGNATURE bytes, or `undefined` when it is
 * not base64url or the attest size does not fit (the parts are parsed strictly later).
 * @public
 */
export function decodeQuoteSeal(seal: string): { attest: Uint8Array; signature: Uint8Array } | undefined {
  const bytes = fromB64u(seal);
  if (!bytes || bytes.byteLength < 2) return undefined;
  const size = ((bytes[0] ?? 0) << 8) | (bytes[1] ?? 0);
  if (size === 0 || 2 + size >= bytes.byteLength) return undefined;
  return { attest: bytes.subarray(2, 2 + size), signature: bytes.subarray(2 + size) };
}
