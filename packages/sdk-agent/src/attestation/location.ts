/**
 * Agent side of location attestation (SPEC §5.4): builds the V-PEA `lah-bundle` — AK, sensor
 * binding, location commitment, nonce, timestamp, workload digest — seals it with a TPM2_Quote and
 * sends it to `POST /attest/location`.
 */
import type { Tpm } from '@geofence/native-tpm';
import {
  encodeQuoteSeal,
  type GeolocationPayload,
  geolocationIdHash,
  geolocationProofHash,
  type LahBundle,
  type LocationAttestationResponse,
  lahQualifyingData,
  MNO_LOCATION_MEMBER,
  type MnoLocation,
} from '@geofence/protocol';
import { publicToPem, publicToSpkiDer } from '@geofence/tpm-wire';
import { GeofenceRejection } from '../errors.js';
import type { AgentState } from '../state.js';
import { type AttestationPost, pcrValuesToJson, type StoredEnrollment } from './enroll.js';
import { AttestationClientError } from './errors.js';
import { ensureWorkloadPcr, measureWorkload } from './workload.js';

/**
 * TPM operations location attestation uses (a `Tpm` of `@geofence/native-tpm` satisfies it).
 * @public
 */
export type LocationTpm = Pick<Tpm, 'quote' | 'pcrRead' | 'pcrExtend'>;

/**
 * Options of {@link performLocationAttestation}.
 * @public
 */
export interface PerformLocationAttestationOptions {
  /** The host TPM (the one the agent enrolled with). */
  tpm: LocationTpm;
  /** State directory holding the enrolment (AK, sensor, workload, PCR selection). */
  state: AgentState;
  /** HTTP `POST` to the collector. */
  post: AttestationPost;
  /** Fetches a fresh nonce for this agent's keyid (`GET /nonce`). */
  nonce: (keyid: string) => Promise<string>;
  /** The location reading to seal: WGS-84 degrees and accuracy radius in metres. */
  location: GeolocationPayload;
  /**
   * A mobile network operator's signed corroboration of this location, carried in the bundle as
   * `mno-location` exactly as given (not covered by the quote: the operator's own signature binds it).
   */
  mnoLocation?: MnoLocation;
  /** Clock (tests). */
  now?: () => Date;
}

/**
 * Result of {@link performLocationAttestation}.
 * @public
 */
export interface LocationAttestationOutcome {
  /** The attestation result JWT (`residency: "tpm+geofence"`). */
  attestationResult: string;
  /** Trust level the collector assigned. */
  trustLevel: LocationAttestationResponse['trust_level'];
  /** The bundle that was sent. */
  bundle: LahBundle;
}

/**
 * Builds, seals and sends a `lah-bundle` for the current location. The image digest is measured
 * now (from the enrolled image path) and, when enrolment extended a PCR, the PCR is checked to
 * still hold it. Refusals throw `GeofenceRejection` (validation type `attestation` with
 * `details.check`, e.g. `geofence` for a location outside the fence).
 *
 * @example
 * ```ts
 * const { attestationResult } = await performLocationAttestation({ tpm, state, post,
 *   nonce: async (keyid) => (await transport.nonce(keyid)).nonce,
 *   location: { lat: 37.354, lon: -121.955, accuracy: 8.5 } });
 * ```
 * @public
 */
export async function performLocationAttestation(
  options: PerformLocationAttestationOptions,
): Promise<LocationAttestationOutcome> {
  const enrollment = options.state.enrollment<StoredEnrollment>();
  if (!enrollment || enrollment.version !== 1) {
    throw new AttestationClientError(
      'not_enrolled',
      'the agent has not enrolled (no enrolment in the state directory)',
    );
  }
  const { ak, workload } = enrollment;
  const imageDigest = await measureWorkload(workload.image_path);
  if (workload.extend_pcr !== undefined)
    await ensureWorkloadPcr(options.tpm, workload.extend_pcr, imageDigest);

  const location = {
    lat: options.location.lat,
    lon: options.location.lon,
    accuracy: options.location.accuracy,
  };
  const sealed = {
    'tpm-ak': publicToPem(ak.public),
    'geolocation-id-hash': geolocationIdHash(publicToSpkiDer(ak.public), enrollment.sensor),
    'geolocation-proof-hash': geolocationProofHash(location),
    'privacy-technique': 'none',
    nonce: await options.nonce(enrollment.keyid),
    timestamp: Math.floor((options.now?.() ?? new Date()).getTime() / 1000),
    'target-environment-image-digest': imageDigest,
  };
  const quote = await options.tpm.quote(ak, enrollment.pcr_selection, lahQualifyingData(sealed));
  const bundle: LahBundle = {
    ...sealed,
    'geolocation-payload': location,
    'tpm-quote-seal': encodeQuoteSeal(quote.attest, quote.signature),
    ...(options.mnoLocation ? { [MNO_LOCATION_MEMBER]: options.mnoLocation } : {}),
  };
  const r = await options.post('/attest/location', {
    agent_name: enrollment.agent_name,
    ak_public: Buffer.from(ak.public).toString('base64url'),
    'lah-bundle': bundle,
    'pcr-values': pcrValuesToJson(quote.pcrValues),
  });
  if (r.status !== 200) throw new GeofenceRejection(r.status, r.body);
  const body = r.body as Partial<LocationAttestationResponse> | null;
  if (!body || typeof body.attestation_result !== 'string') {
    throw new AttestationClientError('bad_response', 'collector answer to /attest/location lacks the result');
  }
  return { attestationResult: body.attestation_result, trustLevel: body.trust_level ?? 'none', bundle };
}
