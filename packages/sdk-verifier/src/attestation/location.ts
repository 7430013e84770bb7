/**
 * Location attestation — Proof of Geofencing (SPEC §5.4): appraisal of a V-PEA `lah-bundle`
 * (draft-lkspa-rats-verifiable-geo-fence) from an enrolled agent.
 */

import type { KeyObject } from 'node:crypto';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import type { GeographicRegion, LocationAttestationResponse } from '@geofence/protocol';
import {
  builtinReverseGeocode,
  bytesEqual,
  decodeQuoteSeal,
  fromB64u,
  fromHex,
  geolocationIdHash,
  geolocationProofHash,
  lahImageDigest,
  lahQualifyingData,
  locationAttestationRequestSchema,
  rawGeolocationPayloadSchema,
  toB64u,
} from '@geofence/protocol';
import type { PcrSelection } from '@geofence/tpm-wire';
import { objectNameHex, publicToSpkiDer, TpmWireError, verifyQuote } from '@geofence/tpm-wire';
import type { JWK } from 'jose';
import { GeofenceError } from '../errors.js';
import { evaluateGeoPolicy, type GeoMatch, type GeoPolicy, geoPolicyRestricts } from '../geo.js';
import { checkMovement, resolveMaxSpeed } from '../plausibility.js';
import { pcrValuesFromJson } from './enrollment.js';
import { attestationError, requestError } from './errors.js';
import { checkAk, parseKey } from './keys.js';
import { appraiseMnoLocation } from './mno.js';
import { appraisePlatform, type PlatformPolicy } from './policy.js';
import type { NonceStore, Registry } from './registry-port.js';
import type { AttestationResultSigner, ResidencyArea } from './result.js';
import type { PogCertificateAuthority } from './x509.js';

/**
 * Everything {@link appraiseLocationBundle} needs from the collector.
 * @public
 */
export interface LocationAppraisalContext {
  /** Enrolled agents. */
  registry: Registry;
  /**
   * The nonce store that issued the bundle's nonce (`GET /nonce`); consumed once here. It also
   * keeps the agent's last accepted position for the movement check (shared with `/metrics`).
   */
  nonces: Pick<NonceStore, 'consume' | 'lastPosition' | 'replacePosition'>;
  /** Signs the attestation result. */
  signer: AttestationResultSigner;
  /**
   * CA certificates (PEM) of the mobile network operators whose signed `mno-location` statements
   * corroborate a GNSS fix (trust level `medium`). Without them a bundle carrying one is refused.
   */
  mnoCaCertificates?: readonly string[];
  /** Issues PoG certificates for `credential_format: "x509"` (omit: such requests are refused). */
  certificates?: PogCertificateAuthority;
  /** PCR and workload reference values (the same as enrolment's). */
  policy: PlatformPolicy;
  /** Global geo policy, evaluated in addition to the agent's own. */
  globalGeoPolicy?: GeoPolicy;
  /**
   * Maps coordinates to a place, for agents whose geo policy uses region/state/city entries.
   * Default: the shipped table (`builtinReverseGeocode`); a point outside it has no place, so
   * region entries fail closed there (GeoJSON fences still apply).
   */
  reverseGeocode?: (lat: number, lon: number) => GeographicRegion | undefined;
  /** Maximum age of the bundle timestamp in seconds (default 300). */
  freshnessSeconds?: number;
  /** Accepted clock skew for timestamps and fix times in the future, seconds (default 60). */
  clockSkewSeconds?: number;
  /**
   * Movement plausibility, km/h: a sealed point farther from the agent's last accepted one (from
   * a bundle or `/metrics`) than it could have travelled — distance minus both accuracy radii,
   * over the time between the fixes — fails `geolocation_policy` (`implausible_movement`).
   * Default {@link DEFAULT_MAX_SPEED_KMH}; `false` disables the check.
   */
  maxSpeedKmh?: number | false;
  /** Clock (tests). */
  now?: () => Date;
}

function spkiOfPem(pem: string): Uint8Array | undefined {
  try {
    const key: KeyObject = createPublicKey(pem);
    if (key.type !== 'public') return undefined;
    return new Uint8Array(key.export({ type: 'spki', format: 'der' }));
  } catch {
    return undefined;
  }
}

/**
 * Appraises `POST /attest/location` bodies (`{agent_name, "lah-bundle", "pcr-values"}`), failing
 * closed on the first failed check:
 *
 * 1. schema (`request_validation`), agent enrolled and active (`agent_verification`);
 * 2. `privacy_technique` is `none`; `geolocation_proof_hash` = SHA-256(JCS({lat, lon, accuracy}));
 * 3. `ak_not_enrolled`: `tpm-ak` is the AK enrolled for this agent; `ak_public`: the TPM2B_PUBLIC
 *    sent along is that key and a restricted signing key;
 *    `geolocation_id_hash` = SHA-256(AK DER ‖ enrolled sensor identifiers);
 * 4. `timestamp_window`: the timestamp is inside the freshness window;
 * 5. `quote`: TPMS_ATTEST magic and type QUOTE, qualifying data = SHA-256(JCS(sealed fields)),
 *    PCR digest of the reported values, AK signature (the draft's verification procedure);
 * 6. `nonce`: the nonce was issued to this agent and is consumed now (once, whatever follows);
 * 7. `pcr_selection` / `pcr_policy` / `workload_digest` / `workload_pcr`: reference values (without
 *    approved digests the image digest must equal the enrolled one);
 * 8. `geofence`: the point and its accuracy circle satisfy the agent's (and the global) geo policy,
 *    judged at the sealed fix time (`geo_check` `fix_in_future` beyond the clock skew, `fix_age`
 *    beyond the policy's `max_fix_age_seconds`);
 * 9. movement plausibility: `geolocation_policy` with `details.check: "implausible_movement"` when
 *    the agent cannot have travelled from its last accepted position to this one in time.
 *
 * On success returns an attestation result with `residency: "tpm+geofence"` whose claim carries
 * the accuracy, the fix time and what each policy matched (place, allow entry, fence).
 * @public
 */
export async function appraiseLocationBundle(
  body: unknown,
  context: LocationAppraisalContext,
): Promise<LocationAttestationResponse> {
  const parsed = locationAttestationRequestSchema.safeParse(body);
  if (!parsed.success) throw requestError('invalid location attestation request', parsed.error.issues);
  const {
    agent_name: agentName,
    ak_public: akPublicB64u,
    'lah-bundle': bundle,
    'pcr-values': pcrJson,
    credential_format: credentialFormat,
  } = parsed.data;
  if (credentialFormat === 'x509' && context.certificates === undefined) {
    throw requestError('x509 credentials are not enabled on this collector', []);
  }
  const now = (context.now ?? (() => new Date()))();

  const record = await context.registry.getByName(agentName);
  if (!record)
    throw new GeofenceError('agent_verification', 'Agent not found in allowlist', {
      details: { agent_name: agentName },
    });
  if (record.status !== 'active') {
    throw new GeofenceError('agent_verification', 'Agent is not active', {
      details: { agent_name: agentName, status: record.status },
    });
  }

  const enrolledAkPem = record.ak_public_pem;
  const ekHash = record.ek_public_hash;
  if (enrolledAkPem === undefined || ekHash === undefined) {
    throw attestationError(
      'agent_not_enrolled',
      'the agent has no enrolled AK (it never completed enrolment)',
      {
        agent_name: agentName,
      },
    );
  }

  if (bundle['privacy-technique'] !== 'none') {
    throw attestationError('privacy_technique', 'only privacy-technique "none" is supported', {
      received: bundle['privacy-technique'],
    });
  }
  const geo = rawGeolocationPayloadSchema.safeParse(bundle['geolocation-payload']);
  if (!geo.success) {
    throw attestationError('bundle_malformed', 'geolocation-payload must be {lat, lon, accuracy, fix_time}', {
      issues: geo.error.issues.map((i) => i.message),
    });
  }
  if (geolocationProofHash(geo.data) !== bundle['geolocation-proof-hash']) {
    throw attestationError(
      'geolocation_proof_hash',
      'geolocation-proof-hash does not commit to geolocation-payload',
    );
  }

  const akSpki = spkiOfPem(bundle['tpm-ak']);
  if (!akSpki) throw attestationError('bundle_malformed', 'tpm-ak is not a PEM public key');
  const enrolledAk = spkiOfPem(enrolledAkPem);
  if (!enrolledAk || !bytesEqual(akSpki, enrolledAk)) {
    throw attestationError('ak_not_enrolled', 'tpm-ak is not the AK enrolled for this agent', {
      agent_name: agentName,
    });
  }
  const akPublic = parseKey(akPublicB64u, 'ak_public', 'AK public');
  if (!bytesEqual(publicToSpkiDer(akPublic), akSpki)) {
    throw attestationError('ak_public', 'ak_public is not the key in tpm-ak');
  }
  checkAk(akPublic);
  // Same key is not enough: the public area (attributes, policy) must be the one whose Name the
  // enrolment's credential activation bound.
  const enrolledName = record.metadata?.ak_name;
  if (typeof enrolledName === 'string' && objectNameHex(akPublic) !== enrolledName) {
    throw attestationError('ak_public', 'ak_public is not the public area of the enrolled AK');
  }
  const idHash = fromB64u(bundle['geolocation-id-hash']);
  const expectedId =
    record.sensor_id_hash === undefined
      ? fromB64u(geolocationIdHash(akSpki, undefined))
      : fromHex(record.sensor_id_hash);
  if (!idHash || !expectedId || !bytesEqual(idHash, expectedId)) {
    throw attestationError(
      'geolocation_id_hash',
      'geolocation-id-hash does not bind the enrolled sensor to this AK',
    );
  }

  const nowSec = Math.floor(now.getTime() / 1000);
  const maxAge = context.freshnessSeconds ?? 300;
  const skew = context.clockSkewSeconds ?? 60;
  if (bundle.timestamp < nowSec - maxAge || bundle.timestamp > nowSec + skew) {
    throw attestationError('timestamp_window', 'the bundle timestamp is outside the freshness window', {
      timestamp: bundle.timestamp,
      now: nowSec,
      max_age_seconds: maxAge,
    });
  }

  const seal = decodeQuoteSeal(bundle['tpm-quote-seal']);
  if (!seal)
    throw attestationError('quote', 'tpm-quote-seal is not TPM2B_ATTEST ‖ TPMT_SIGNATURE', {
      code: 'malformed',
    });
  const pcrValues = pcrValuesFromJson(pcrJson);
  let selection: PcrSelection;
  try {
    const attest = verifyQuote({
      attest: seal.attest,
      signature: seal.signature,
      akPublic,
      qualifyingData: lahQualifyingData(bundle),
      pcrValues,
    });
    selection = attest.quote.pcrSelect;
  } catch (err) {
    if (err instanceof TpmWireError) {
      throw attestationError('quote', `quote verification failed: ${err.code}`, { code: err.code }, err);
    }
    throw err;
  }
  // Authenticity is established: consume the nonce now, whatever the policy checks decide.
  const consumed = await context.nonces.consume(record.keyid, bundle.nonce);
  if (consumed !== 'ok') {
    throw attestationError('nonce', 'the nonce was not issued to this agent, expired, or was already used', {
      code: consumed,
    });
  }

  const digest = lahImageDigest(bundle) as string;
  const platform = appraisePlatform(context.policy, selection, pcrValues, digest);
  if ((context.policy.workloadDigests ?? []).length === 0 && record.workload_digest !== digest) {
    throw attestationError('workload_digest', 'the workload image digest differs from the enrolled one', {
      image_digest: digest,
    });
  }

  const sensorBound = record.sensor_id_hash !== undefined;
  const policies = [record.geo_policy, context.globalGeoPolicy].filter(
    (p): p is GeoPolicy => p !== undefined,
  );
  if (!policies.some((p) => geoPolicyRestricts(p))) {
    throw attestationError(
      'geofence',
      'no geo policy restricts this agent, so residency cannot be appraised',
    );
  }
  const { lat, lon, accuracy, fix_time: fixTime } = geo.data;
  const region = (context.reverseGeocode ?? builtinReverseGeocode)(lat, lon);
  const matches: GeoMatch[] = [];
  let area: ResidencyArea | undefined;
  for (const policy of policies) {
    const decision = evaluateGeoPolicy(policy, {
      point: { lat, lon, accuracy },
      region,
      quality: sensorBound ? 'GNSS' : 'static',
      fixTime,
      now,
      clockSkewSeconds: skew,
    });
    if (!decision.allowed) {
      // The evidence is authentic; the place is not allowed: the same validation type as /metrics.
      throw new GeofenceError('geolocation_policy', 'Geolocation verification failed', {
        details: {
          check: 'geofence',
          reason: decision.reason,
          agent_name: agentName,
          geo_check: decision.check,
          expected: decision.expected,
          received: decision.received,
        },
      });
    }
    const { allowed: _, ...match } = decision;
    matches.push(match);
    area ??= residencyArea(match, region);
  }
  const maxSpeed = resolveMaxSpeed(context.maxSpeedKmh);
  if (maxSpeed !== undefined) {
    await checkMovement(
      context.nonces,
      record.keyid,
      agentName,
      { lat, lon, accuracy, at: Date.parse(fixTime) },
      maxSpeed,
    );
  }

  // Trust levels (V-PEA §6.2.4): low = one sensor-bound GNSS fix; medium = that fix corroborated by
  // a verified MNO statement. high/highest need evidence no bundle carries yet (docs/pog-credentials.md).
  const mno = bundle['mno-location'] ?? bundle['mno-endorsement'];
  let trust: 'none' | 'low' | 'medium' = sensorBound ? 'low' : 'none';
  if (mno !== undefined) {
    appraiseMnoLocation({
      statement: mno,
      gnss: { lat, lon, accuracy },
      nonce: bundle.nonce,
      nowSeconds: nowSec,
      maxAgeSeconds: maxAge,
      clockSkewSeconds: skew,
      cas: mnoAnchors(context.mnoCaCertificates),
    });
    // A corroborated configured location is still not a measured one: only a GNSS fix rises.
    if (sensorBound) trust = 'medium';
  }
  const appKey = createPublicKey(record.app_public_key_pem).export({ format: 'jwk' }) as JWK;
  const { jwt, payload } = await context.signer.issue(
    agentName,
    appKey,
    {
      keyid: record.keyid,
      ek_hash: ekHash,
      workload_digest: digest,
      platform_integrity: platform.platformIntegrity,
      agent_integrity: platform.agentIntegrity,
      residency: 'tpm+geofence',
      trust_level: trust,
      evidence: 'lah-bundle',
      geolocation_proof_hash: bundle['geolocation-proof-hash'],
      attested_at: bundle.timestamp,
      accuracy_m: accuracy,
      fix_time: new Date(fixTime).toISOString(),
      geo: matches,
      nonce_hash: toB64u(createHash('sha256').update(bundle.nonce).digest()),
      ...(area === undefined ? {} : { area }),
    },
    now,
  );
  const response: LocationAttestationResponse = {
    status: 'success',
    agent_name: agentName,
    trust_level: trust,
    attestation_result: jwt,
  };
  if (credentialFormat === 'x509' && context.certificates !== undefined) {
    const der = await context.certificates.issue(payload, createPublicKey(record.app_public_key_pem));
    response.certificate = toB64u(der);
  }
  return response;
}

/**
 * The area a (passed) geofence decision placed the point in: the allow entry it matched, else the
 * place the table names for the point; plus the ISO code and fence that contained the accuracy circle.
 */
function residencyArea(decision: GeoMatch, region: GeographicRegion | undefined): ResidencyArea | undefined {
  const named = decision.matched ?? region;
  const fenceId = decision.fence?.id;
  const area: ResidencyArea = {
    ...(named?.region ? { region: named.region } : {}),
    ...(named?.state ? { state: named.state } : {}),
    ...(decision.matched?.city ? { city: decision.matched.city } : {}),
    ...(decision.place === undefined ? {} : { place: decision.place }),
    ...(decision.fence === undefined ? {} : { fence: decision.fence.index }),
    ...(typeof fenceId === 'string' || typeof fenceId === 'number' ? { fence_id: String(fenceId) } : {}),
  };
  return Object.keys(area).length > 0 ? area : undefined;
}

const mnoCache = new WeakMap<readonly string[], X509Certificate[]>();

/** Parsed MNO CA certificates (cached per configured list). */
function mnoAnchors(pems: readonly string[] | undefined): X509Certificate[] {
  if (pems === undefined) return [];
  let out = mnoCache.get(pems);
  if (!out) {
    const blocks =
      pems.join('\n').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    out = blocks.map((b) => new X509Certificate(b));
    mnoCache.set(pems, out);
  }
  return out;
}
