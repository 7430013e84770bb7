/**
 * Attestation results (RATS "Attestation Result", SPEC §4 / §5.4) as ES256 JWTs signed by the
 * collector, the JWKS that publishes the collector key, and verification for relying parties.
 */

import type { KeyObject } from 'node:crypto';
import { createPrivateKey, createPublicKey, randomUUID } from 'node:crypto';
import { DEFAULT_CREDENTIAL_LIFETIME_SECONDS } from '@geofence/protocol';
import type { JWK, JWTPayload } from 'jose';
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, jwtVerify, SignJWT } from 'jose';
import type { GeoMatch } from '../geo.js';

/**
 * JOSE `typ` of attestation result JWTs; verification insists on it so that no other JWT the
 * collector key might sign can be passed off as an attestation result.
 * @public
 */
export const ATTESTATION_RESULT_TYP = 'geofence-ar+jwt';

/**
 * Location trust level of a result, after the draft's non-normative tiers (`none` when the
 * result carries no location evidence at all, as after enrolment).
 * @public
 */
export type TrustLevel = 'none' | 'low' | 'medium' | 'high' | 'highest';

/** Trust levels, lowest first. */
const TRUST_LEVELS: readonly TrustLevel[] = ['none', 'low', 'medium', 'high', 'highest'];

/**
 * The `geofence` claim of an attestation result (SPEC §4).
 * @public
 */
export interface GeofenceResultClaim {
  /** keyid of the AppSK (lowercase hex SHA-256 of its SPKI DER). */
  keyid: string;
  /** lowercase hex SHA-256 of the EK's SPKI DER. */
  ek_hash: string;
  /** Workload image digest the evidence claimed (lowercase hex SHA-256). */
  workload_digest: string;
  /** `verified`: PCRs matched reference values; `recorded`: no reference values configured. */
  platform_integrity: 'verified' | 'recorded';
  /** `verified`: the image digest is an approved reference value; `recorded`: no list configured. */
  agent_integrity: 'verified' | 'recorded';
  /**
   * `tpm`: the AppSK is proven resident in an approved TPM (Proof of Residency, enrolment);
   * `tpm+geofence`: additionally the TPM-sealed location lies inside the agent's geofence
   * (Proof of Geofencing, `lah-bundle`).
   */
  residency: 'tpm' | 'tpm+geofence';
  /** Location trust level (`low` = single unauthenticated GNSS fix). */
  trust_level: TrustLevel;
  /** Which evidence the result appraised. */
  evidence: 'enrollment' | 'lah-bundle';
  /** Registry status after enrolment (`pending` needs operator approval). */
  status?: 'active' | 'pending';
  /** For `lah-bundle`: the bundle's `geolocation-proof-hash` (commitment to the location). */
  geolocation_proof_hash?: string;
  /** For `lah-bundle`: the bundle's timestamp (Unix seconds) — the attested interval. */
  attested_at?: number;
  /** For `lah-bundle`: the sealed accuracy radius, metres. */
  accuracy_m?: number;
  /** For `lah-bundle`: the sealed fix time (ISO 8601, UTC) — when the position was measured. */
  fix_time?: string;
  /**
   * For `lah-bundle`: per geo policy evaluated (the agent's, then the global one), what the
   * location matched — the allow entry in the policy's spelling, the place table's ISO code of the
   * boundary that contained the accuracy circle, the fence (index and Feature id).
   */
  geo?: GeoMatch[];
  /** base64url SHA-256 of the nonce the evidence answered (freshness binding without the nonce). */
  nonce_hash?: string;
  /** For `lah-bundle`: the area the geofence decision placed the sealed point in. */
  area?: ResidencyArea;
}

/**
 * Where a location attestation placed the agent (the residency decision of a PoG credential).
 * @public
 */
export interface ResidencyArea {
  /** Region decided: the matched allow entry's region, else the region the place table gives the point. */
  region?: string;
  /** State decided (as `region`). */
  state?: string;
  /** City decided (only from a matched allow entry: the table has no city boundaries). */
  city?: string;
  /** ISO 3166 code of the place whose boundary contained the accuracy circle (`US-CA`). */
  place?: string;
  /** Index of the agent-policy fence that contained the accuracy circle. */
  fence?: number;
  /** That fence's name: the GeoJSON Feature's `id`, else its `properties.name`. */
  fence_id?: string;
}

/**
 * Payload of an attestation result JWT.
 * @public
 */
export interface AttestationResultPayload extends JWTPayload {
  /** The collector (`iss`). */
  iss: string;
  /** The agent name (`sub`). */
  sub: string;
  /** Issued at. */
  iat: number;
  /** Expiry. */
  exp: number;
  /**
   * Confirmation (RFC 7800): `jkt` the RFC 7638 thumbprint of the AppSK public JWK; `jwk` that key
   * itself, so a resource server can verify the holder's request signatures without the registry.
   */
  cnf: { jkt: string; jwk?: JWK };
  /** The appraisal outcome. */
  geofence: GeofenceResultClaim;
}

/**
 * A JSON Web Key Set as served at `/.well-known/jwks.json`.
 * @public
 */
export interface Jwks {
  /** Public keys (EC P-256, `alg: ES256`, `use: sig`, with `kid`). */
  keys: JWK[];
}

/**
 * Configuration of the collector's result signing key.
 * @public
 */
export interface AttestationResultSignerOptions {
  /** Private EC P-256 key: KeyObject, PKCS#8 PEM, or private JWK. */
  key: KeyObject | string | JWK;
  /** `iss` of every result (e.g. the collector's base URL). */
  issuer: string;
  /** `kid`; default: the RFC 7638 thumbprint of the public key. */
  kid?: string;
  /** Lifetime of results (PoG credentials) in seconds; default `DEFAULT_CREDENTIAL_LIFETIME_SECONDS` (600). */
  ttlSeconds?: number;
  /** Extra public keys to keep publishing (previous keys during rotation). */
  previousPublicKeys?: JWK[];
}

function toPrivateKey(key: KeyObject | string | JWK): KeyObject {
  if (typeof key === 'string') return createPrivateKey(key);
  if ('type' in key && typeof (key as KeyObject).export === 'function') return key as KeyObject;
  return createPrivateKey({ key: key as import('node:crypto').JsonWebKey, format: 'jwk' });
}

/**
 * Signs attestation results with the collector key and publishes its JWKS.
 *
 * @example
 * ```ts
 * const signer = await AttestationResultSigner.create({ key: pem, issuer: 'https://collector.example' });
 * app.get('/.well-known/jwks.json', (_req, res) => res.json(signer.jwks()));
 * ```
 * @public
 */
export class AttestationResultSigner {
  /** `iss` of issued results. */
  readonly issuer: string;
  /** `kid` of the signing key. */
  readonly kid: string;
  /** Result lifetime, seconds. */
  readonly ttlSeconds: number;
  private readonly privateKey: KeyObject;
  private readonly keySet: Jwks;

  private constructor(issuer: string, kid: string, ttl: number, privateKey: KeyObject, keySet: Jwks) {
    this.issuer = issuer;
    this.kid = kid;
    this.ttlSeconds = ttl;
    this.privateKey = privateKey;
    this.keySet = keySet;
  }

  /** Validates the key (EC P-256 only) and prepares the JWKS. */
  static async create(options: AttestationResultSignerOptions): Promise<AttestationResultSigner> {
    const privateKey = toPrivateKey(options.key);
    if (
      privateKey.asymmetricKeyType !== 'ec' ||
      privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
    ) {
      throw new TypeError('attestation result key must be an EC P-256 private key (ES256)');
    }
    if (!options.issuer) throw new TypeError('attestation result issuer must be set');
    const ttl = options.ttlSeconds ?? DEFAULT_CREDENTIAL_LIFETIME_SECONDS;
    if (!Number.isInteger(ttl) || ttl <= 0) throw new TypeError('ttlSeconds must be a positive integer');
    const pub = await exportJWK(createPublicKey(privateKey));
    const kid = options.kid ?? (await calculateJwkThumbprint(pub, 'sha256'));
    const own: JWK = { kty: pub.kty, crv: pub.crv, x: pub.x, y: pub.y, kid, alg: 'ES256', use: 'sig' };
    const keys = [own, ...(options.previousPublicKeys ?? []).map((k) => stripPrivate(k))];
    return new AttestationResultSigner(options.issuer, kid, ttl, privateKey, { keys });
  }

  /** The JWKS document for `/.well-known/jwks.json` (public members only). */
  jwks(): Jwks {
    return { keys: this.keySet.keys.map((k) => ({ ...k })) };
  }

  /**
   * Issues a result for `subject` (agent name) bound to `appKey` (via `cnf.jkt`).
   * @param now - for tests; defaults to the current time
   */
  async sign(
    subject: string,
    appKey: KeyObject | JWK,
    claim: GeofenceResultClaim,
    now = new Date(),
  ): Promise<string> {
    return (await this.issue(subject, appKey, claim, now)).jwt;
  }

  /**
   * Like {@link AttestationResultSigner.sign}, also returning the signed payload (for a PoG
   * certificate that must carry exactly the same claims).
   */
  async issue(
    subject: string,
    appKey: KeyObject | JWK,
    claim: GeofenceResultClaim,
    now = new Date(),
  ): Promise<{ jwt: string; payload: AttestationResultPayload }> {
    const jwk = stripPrivate('kty' in appKey ? (appKey as JWK) : await exportJWK(appKey as KeyObject));
    const jkt = await calculateJwkThumbprint(jwk, 'sha256');
    const iat = Math.floor(now.getTime() / 1000);
    const payload: AttestationResultPayload = {
      iss: this.issuer,
      sub: subject,
      jti: randomUUID(),
      iat,
      exp: iat + this.ttlSeconds,
      cnf: { jkt, jwk },
      geofence: claim,
    };
    const jwt = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'ES256', typ: ATTESTATION_RESULT_TYP, kid: this.kid })
      .sign(this.privateKey);
    return { jwt, payload };
  }
}

function stripPrivate(k: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, k: _k, ...pub } = k;
  return pub;
}

/**
 * RFC 7638 SHA-256 thumbprint (base64url) of a public key — the `cnf.jkt` value.
 * @public
 */
export async function jwkThumbprint(key: KeyObject | JWK): Promise<string> {
  const jwk =
    'kty' in key && typeof key.kty === 'string'
      ? stripPrivate(key as JWK)
      : await exportJWK(key as KeyObject);
  return calculateJwkThumbprint(jwk, 'sha256');
}

/**
 * Options of {@link verifyAttestationResult}.
 * @public
 */
export interface VerifyAttestationResultOptions {
  /** Required `iss`. */
  issuer?: string;
  /** Required `sub` (agent name). */
  subject?: string;
  /** When given, `cnf.jkt` must be the thumbprint of this (AppSK) public key. */
  appKey?: KeyObject | JWK;
  /**
   * Minimum residency: `tpm` accepts enrolment and location results, `tpm+geofence` only results of
   * a location attestation (Proof of Geofencing).
   */
  requireResidency?: 'tpm' | 'tpm+geofence';
  /** Refuse results issued for agents still `pending` operator approval. */
  requireActive?: boolean;
  /**
   * Minimum location trust level. Any value refuses `none` (a result without location evidence
   * never satisfies a geofence requirement).
   */
  minTrustLevel?: Exclude<TrustLevel, 'none'>;
  /** Maximum age in seconds of the evidence the result appraised (`attested_at`, else `iat`). */
  maxAgeSeconds?: number;
  /** Clock tolerance in seconds (default 30). */
  clockToleranceSeconds?: number;
  /** Current time (tests). */
  currentDate?: Date;
}

/**
 * Verifies an attestation result JWT for a relying party: ES256 signature by a key of `jwks`,
 * `typ`, expiry, optional issuer/subject, the presence and shape of `cnf.jkt` and `geofence`, and
 * optionally that `cnf.jkt` names `appKey`. Throws (jose errors, or `TypeError` for a bad shape).
 * @public
 */
export async function verifyAttestationResult(
  jwt: string,
  jwks: Jwks,
  options: VerifyAttestationResultOptions = {},
): Promise<{ payload: AttestationResultPayload; kid: string | undefined }> {
  const { payload, protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(jwks), {
    algorithms: ['ES256'],
    typ: ATTESTATION_RESULT_TYP,
    requiredClaims: ['iss', 'sub', 'iat', 'exp'],
    clockTolerance: options.clockToleranceSeconds ?? 30,
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
    ...(options.subject === undefined ? {} : { subject: options.subject }),
    ...(options.currentDate === undefined ? {} : { currentDate: options.currentDate }),
  });
  const cnf = payload.cnf as { jkt?: unknown; jwk?: unknown } | undefined;
  if (typeof cnf?.jkt !== 'string' || cnf.jkt.length === 0)
    throw new TypeError('attestation result without cnf.jkt');
  if (cnf.jwk !== undefined && (await jwkThumbprint(cnf.jwk as JWK).catch(() => undefined)) !== cnf.jkt)
    throw new TypeError('attestation result whose cnf.jwk is not the key cnf.jkt names');
  const g = payload.geofence as Partial<GeofenceResultClaim> | undefined;
  if (
    typeof g !== 'object' ||
    g === null ||
    typeof g.keyid !== 'string' ||
    typeof g.ek_hash !== 'string' ||
    (g.residency !== 'tpm' && g.residency !== 'tpm+geofence')
  ) {
    throw new TypeError('attestation result without a valid geofence claim');
  }
  if (options.requireResidency === 'tpm+geofence' && g.residency !== 'tpm+geofence') {
    throw new TypeError('attestation result does not prove geofence residency');
  }
  if (options.minTrustLevel !== undefined) {
    const rank = TRUST_LEVELS.indexOf(g.trust_level as TrustLevel);
    if (rank <= 0 || rank < TRUST_LEVELS.indexOf(options.minTrustLevel)) {
      throw new TypeError(
        `attestation result trust level ${String(g.trust_level)} is below ${options.minTrustLevel}`,
      );
    }
  }
  if (options.maxAgeSeconds !== undefined) {
    const at = typeof g.attested_at === 'number' ? g.attested_at : (payload.iat as number);
    const nowSec = Math.floor((options.currentDate ?? new Date()).getTime() / 1000);
    if (nowSec - at > options.maxAgeSeconds) throw new TypeError('attestation result evidence is too old');
  }
  if (options.requireActive && g.status === 'pending') {
    throw new TypeError('attestation result is for an agent pending approval');
  }
  if (options.appKey !== undefined && (await jwkThumbprint(options.appKey)) !== cnf.jkt) {
    throw new TypeError('attestation result is bound to another key (cnf.jkt mismatch)');
  }
  return { payload: payload as AttestationResultPayload, kid: protectedHeader.kid };
}
