/**
 * Agent side of location attestation (SPEC §5.4): builds the V-PEA `lah-bundle` — AK, sensor
 * binding, location commitment, nonce, timestamp, workload digest — seals it with a TPM2_Quote and
 * sends it to `POST /attest/location`.
 */
import type { Tpm } from '@geofence/native-tpm';
import {
  DEFAULT_CLOCK_SKEW_SECONDS,
  encodeQuoteSeal,
  type GeolocationPayload,
  geolocationIdHash,
  geolocationProofHash,
  type LahBundle,
  type LocationAttestationResponse,
  lahQualifyingData,
  type MnoLocation,
} from '@geofence/protocol';
import { publicToPem, publicToSpkiDer } from '@geofence/tpm-wire';
import { GeofenceRejection } from '../errors.js';
import { NoLocationError } from '../location/types.js';
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
  /**
   * The location reading to seal: WGS-84 degrees, accuracy radius in metres and the receiver's fix
   * time (ISO 8601). Without `fix_time` the reading is taken as measured now (a configured site).
   */
  location: LocationToSeal;
  /**
   * A fix dated more than this many seconds after the agent's clock is refused (`future_fix`)
   * instead of sealed (default {@link DEFAULT_CLOCK_SKEW_SECONDS}, the verifier's default skew).
   */
  clockSkewSeconds?: number;
  /**
   * A signed MNO location statement to attach as `mno-location` (V-PEA §5.3.4), as the operator
   * gave it; it must answer the nonce this attestation uses (see `nonce`), so obtain it from there.
   * A verified one raises the trust level to `medium`.
   */
  mnoLocation?: (nonce: string) => Promise<MnoLocation | undefined>;
  /** Clock (tests). */
  now?: () => Date;
}

/**
 * A reading for {@link performLocationAttestation}: the sealed `geolocation-payload` with an
 * optional fix time.
 * @public
 */
export type LocationToSeal = Omit<GeolocationPayload, 'fix_time'> & { fix_time?: string | undefined };

/**
 * The `geolocation-payload` sealed for `reading` at `now`: its own fix time (normalised to ISO 8601
 * UTC), or `now` when it has none. A fix time that does not parse, or lies more than `skewSeconds`
 * after `now`, throws {@link NoLocationError} (`protocol` / `future_fix`): a receiver whose clock or
 * fix is wrong is not sealed as a measurement.
 */
export function payloadToSeal(reading: LocationToSeal, now: Date, skewSeconds: number): GeolocationPayload {
  let fix = now.getTime();
  if (reading.fix_time !== undefined) {
    fix = Date.parse(reading.fix_time);
    if (!Number.isFinite(fix))
      throw new NoLocationError('protocol', `the reading's fix time is not a time (${reading.fix_time})`);
    if (fix - now.getTime() > skewSeconds * 1000) {
      throw new NoLocationError(
        'future_fix',
        `the fix is dated more than ${skewSeconds} s in the future (fix time ${reading.fix_time})`,
      );
    }
  }
  return {
    lat: reading.lat,
    lon: reading.lon,
    accuracy: reading.accuracy,
    fix_time: new Date(fix).toISOString(),
  };
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
 *   location: { lat: 37.354, lon: -121.955, accuracy: 8.5, fix_time: '2026-11-28T21:00:00.000Z' } });
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

  const now = options.now?.() ?? new Date();
  const skew = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  if (!(skew >= 0 && Number.isFinite(skew)))
    throw new RangeError('clockSkewSeconds must be a non-negative number');
  const location = payloadToSeal(options.location, now, skew);
  const sealed = {
    'tpm-ak': publicToPem(ak.public),
    'geolocation-id-hash': geolocationIdHash(publicToSpkiDer(ak.public), enrollment.sensor),
    'geolocation-proof-hash': geolocationProofHash(location),
    'privacy-technique': 'none',
    nonce: await options.nonce(enrollment.keyid),
    timestamp: Math.floor(now.getTime() / 1000),
    'target-environment-image-digest': imageDigest,
  };
  const quote = await options.tpm.quote(ak, enrollment.pcr_selection, lahQualifyingData(sealed));
  const mno = await options.mnoLocation?.(sealed.nonce);
  const bundle: LahBundle = {
    ...sealed,
    'geolocation-payload': { ...location },
    'tpm-quote-seal': encodeQuoteSeal(quote.attest, quote.signature),
    ...(mno ? { 'mno-location': { ...mno } } : {}),
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
