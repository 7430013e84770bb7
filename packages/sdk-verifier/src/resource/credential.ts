/**
 * Verification of the PoG credential a request presents (the `geofence-credential` JWT or the
 * `geofence-certificate` X.509 certificate) against the resource server's trust anchors. Every
 * refusal is a {@link GeofenceError} whose `details.check` names the failed check.
 */

import type { KeyObject, X509Certificate } from 'node:crypto';
import { createPublicKey } from 'node:crypto';
import { CREDENTIAL_CERTIFICATE_HEADER, CREDENTIAL_HEADER } from '@geofence/protocol';
import type { JWK, JWTVerifyGetKey } from 'jose';
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify } from 'jose';
import {
  ATTESTATION_RESULT_TYP,
  type AttestationResultPayload,
  type GeofenceResultClaim,
  type Jwks,
  jwkThumbprint,
} from '../attestation/result.js';
import { loadPogCaCertificates, PogCertificateError, verifyPogCertificate } from '../attestation/x509.js';
import { GeofenceError } from '../errors.js';
import { STORE_RETRY_AFTER_SECONDS } from '../storage/store-fault.js';

/**
 * Where a resource server takes its trust in credentials from. At least one of `jwks` and
 * `caCertificates` must be given; a JWT is only accepted with `jwks`, a certificate only with
 * `caCertificates`.
 * @public
 */
export interface CredentialTrust {
  /** The one trusted issuer (`iss`). */
  issuer: string;
  /**
   * Keys of the issuer: a JWKS document (local), or the URL of the collector's
   * `/.well-known/jwks.json` (fetched on demand and cached with jose's `createRemoteJWKSet`).
   */
  jwks?: Jwks | string | URL;
  /** Cache lifetime of a remote JWKS in milliseconds (default 300 000: the collector's `max-age`). */
  jwksCacheMaxAgeMs?: number;
  /** `fetch` used for a remote JWKS (for example undici's, with the collector's CA). */
  fetch?: typeof fetch;
  /** PEM of the attestation CA certificate(s) (`/.well-known/geofence-ca.pem`). */
  caCertificates?: string | readonly string[];
}

/**
 * A credential that verified: its claims and the AppSK public key it binds.
 * @public
 */
export interface VerifiedCredential {
  /** Which header carried it. */
  format: 'jwt' | 'x509';
  /** The claims (for a certificate: those of its critical extension). */
  payload: AttestationResultPayload;
  /** The bound AppSK public key. */
  key: KeyObject;
  /** `cnf.jkt`: RFC 7638 thumbprint of that key — the `keyid` the request signature must carry. */
  jkt: string;
}

/** A refusal of the credential itself (403 `attestation`, except where noted). */
export function credentialError(check: string, message: string, extra: Record<string, unknown> = {}) {
  return new GeofenceError('attestation', 'Attestation evidence rejected', {
    details: { check, reason: message, ...extra },
  });
}

/** Compiled trust: key lookups ready to use. */
export interface CompiledTrust {
  issuer: string;
  keys: JWTVerifyGetKey | undefined;
  /** Whether `keys` fetches a remote JWKS (whose failures are outages, not bad credentials). */
  remote: boolean;
  cas: X509Certificate[] | undefined;
}

/** Validates and prepares `trust` (throws `TypeError` on configuration errors). */
export function compileTrust(trust: CredentialTrust): CompiledTrust {
  if (typeof trust.issuer !== 'string' || trust.issuer === '')
    throw new TypeError('@geofence/verifier requireGeofence: option issuer must be a non-empty string');
  if (trust.jwks === undefined && trust.caCertificates === undefined)
    throw new TypeError('@geofence/verifier requireGeofence: give jwks and/or caCertificates');
  let keys: JWTVerifyGetKey | undefined;
  if (typeof trust.jwks === 'string' || trust.jwks instanceof URL) {
    const url = new URL(trust.jwks);
    keys = createRemoteJWKSet(url, {
      cacheMaxAge: trust.jwksCacheMaxAgeMs ?? 300_000,
      ...(trust.fetch ? { [customFetch]: trust.fetch } : {}),
    });
  } else if (trust.jwks !== undefined) {
    keys = createLocalJWKSet(trust.jwks);
  }
  const cas = trust.caCertificates === undefined ? undefined : loadPogCaCertificates(trust.caCertificates);
  const remote = typeof trust.jwks === 'string' || trust.jwks instanceof URL;
  return { issuer: trust.issuer, keys, remote, cas };
}

/**
 * The one field line of `name`, `undefined` when absent, `null` when sent more than once: Node joins
 * repeated fields with `, `, and neither a compact JWS nor a byte sequence contains a comma.
 */
function headerValue(headers: Record<string, string | string[] | undefined>, name: string) {
  const v = headers[name];
  if (v === undefined) return undefined;
  const one = Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
  return one === undefined || one.includes(',') ? null : one;
}

function checkClaimShape(payload: Record<string, unknown>): AttestationResultPayload {
  const g = payload.geofence as Partial<GeofenceResultClaim> | undefined;
  const cnf = payload.cnf as { jkt?: unknown } | undefined;
  if (
    typeof payload.sub !== 'string' ||
    typeof payload.iat !== 'number' ||
    typeof payload.exp !== 'number' ||
    typeof cnf?.jkt !== 'string' ||
    typeof g !== 'object' ||
    g === null ||
    typeof g.keyid !== 'string' ||
    typeof g.trust_level !== 'string' ||
    typeof g.residency !== 'string'
  ) {
    throw credentialError(
      'credential_claims',
      'the credential lacks sub/iat/exp/cnf.jkt or the geofence claim',
    );
  }
  return payload as AttestationResultPayload;
}

async function verifyJwt(token: string, trust: CompiledTrust, now: Date, skew: number) {
  if (!trust.keys) throw credentialError('credential_untrusted', 'this resource accepts no JWT credentials');
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, trust.keys, {
      algorithms: ['ES256'],
      typ: ATTESTATION_RESULT_TYP,
      issuer: trust.issuer,
      requiredClaims: ['iss', 'sub', 'iat', 'exp'],
      clockTolerance: skew,
      currentDate: now,
    }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired)
      throw credentialError('credential_expired', 'the credential has expired');
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      if (err.claim === 'iss')
        throw credentialError(
          'credential_issuer',
          'the credential is from an issuer this resource does not trust',
        );
      throw credentialError('credential_claims', `claim ${err.claim} is invalid`);
    }
    if (
      trust.remote &&
      (err instanceof joseErrors.JWKSTimeout ||
        err instanceof joseErrors.JWKSInvalid ||
        !(err instanceof joseErrors.JOSEError))
    ) {
      // The issuer's JWKS is unreachable: a dependency outage, not a bad credential.
      throw new GeofenceError('upstream', 'Issuer keys unavailable', {
        status: 503,
        retryAfter: STORE_RETRY_AFTER_SECONDS,
        cause: err,
      });
    }
    throw credentialError('credential_signature', 'the credential is not a valid JWT signed by the issuer', {
      code: (err as { code?: unknown }).code ?? 'invalid',
    });
  }
  const claims = checkClaimShape(payload);
  const jwk = (claims.cnf as { jwk?: JWK }).jwk;
  if (jwk === undefined || typeof jwk !== 'object')
    throw credentialError('credential_key', 'the credential carries no cnf.jwk to verify the holder with');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
  } catch {
    throw credentialError('credential_key', 'cnf.jwk is not a public key');
  }
  if ((await jwkThumbprint(jwk)) !== claims.cnf.jkt)
    throw credentialError('credential_key', 'cnf.jwk is not the key cnf.jkt names');
  return { format: 'jwt' as const, payload: claims, key, jkt: claims.cnf.jkt };
}

/** RFC 8941 byte sequence `:base64:`. */
const BYTE_SEQUENCE = /^:([A-Za-z0-9+/]+={0,2}):$/;

async function verifyCertificate(value: string, trust: CompiledTrust, now: Date, skew: number) {
  if (!trust.cas)
    throw credentialError('credential_untrusted', 'this resource accepts no certificate credentials');
  const m = BYTE_SEQUENCE.exec(value.trim());
  if (!m)
    throw credentialError('certificate_malformed', `${CREDENTIAL_CERTIFICATE_HEADER} is not :base64(DER):`);
  let verified: Awaited<ReturnType<typeof verifyPogCertificate>>;
  try {
    verified = await verifyPogCertificate(Buffer.from(m[1] as string, 'base64'), trust.cas, {
      now,
      clockToleranceSeconds: skew,
    });
  } catch (err) {
    if (err instanceof PogCertificateError) throw credentialError(err.check, err.message);
    throw err;
  }
  const claims = checkClaimShape(verified.payload as unknown as Record<string, unknown>);
  if (claims.iss !== trust.issuer)
    throw credentialError(
      'credential_issuer',
      'the credential is from an issuer this resource does not trust',
    );
  const nowSec = Math.floor(now.getTime() / 1000);
  if (claims.exp + skew < nowSec) throw credentialError('credential_expired', 'the credential has expired');
  const jkt = await jwkThumbprint(verified.publicKey);
  if (jkt !== claims.cnf.jkt)
    throw credentialError('credential_key', 'the certificate key is not the key cnf.jkt names');
  return { format: 'x509' as const, payload: claims, key: verified.publicKey, jkt };
}

/**
 * Finds and verifies the request's credential: exactly one of the two credential headers, one field
 * line; then signature/issuer/expiry/key binding.
 */
export async function verifyPresentedCredential(
  headers: Record<string, string | string[] | undefined>,
  trust: CompiledTrust,
  now: Date,
  skew: number,
): Promise<VerifiedCredential & { header: string }> {
  const jwt = headerValue(headers, CREDENTIAL_HEADER);
  const cert = headerValue(headers, CREDENTIAL_CERTIFICATE_HEADER);
  if (jwt === null || cert === null || (jwt !== undefined && cert !== undefined)) {
    throw new GeofenceError('request_validation', 'Invalid payload structure', {
      details: { check: 'credential_ambiguous', reason: 'send exactly one credential header, once' },
    });
  }
  if (jwt === undefined && cert === undefined) {
    throw new GeofenceError('signature_verification', 'Signature verification failed', {
      details: {
        check: 'credential_missing',
        reason: `a ${CREDENTIAL_HEADER} or ${CREDENTIAL_CERTIFICATE_HEADER} header is required`,
      },
    });
  }
  if (jwt !== undefined)
    return { ...(await verifyJwt(jwt.trim(), trust, now, skew)), header: CREDENTIAL_HEADER };
  return {
    ...(await verifyCertificate(cert as string, trust, now, skew)),
    header: CREDENTIAL_CERTIFICATE_HEADER,
  };
}
