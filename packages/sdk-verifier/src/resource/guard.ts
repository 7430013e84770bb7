/**
 * The framework-neutral core of `requireGeofence` (SPEC §17): admits a request to a protected
 * resource only with a valid PoG credential from the trusted issuer AND an RFC 9421 signature by
 * the key that credential binds, over exactly `@method`, `@target-uri`, the credential header and
 * (with a body) `content-digest`, with `created` within the clock skew and a single-use `nonce`;
 * then applies the resource's own policy. A copied credential is useless without the TPM key.
 */

import { type HttpSigError, isHttpSigError, type VerifiedSignature, verifyRequest } from '@geofence/http-sig';
import type { GeographicRegion, RejectedBy } from '@geofence/protocol';
import {
  CREDENTIAL_SIGNATURE_COMPONENTS,
  CREDENTIAL_SIGNATURE_LABEL,
  CREDENTIAL_SIGNATURE_TAG,
  findRegion,
  findState,
  foldPlaceName,
} from '@geofence/protocol';
import type { ResidencyArea, TrustLevel } from '../attestation/result.js';
import { GeofenceError } from '../errors.js';
import { ExpiringSet } from '../storage/expiring-set.js';
import type { NonceStore } from '../storage/nonce-store.js';
import {
  type CompiledTrust,
  type CredentialTrust,
  compileTrust,
  credentialError,
  type VerifiedCredential,
  verifyPresentedCredential,
} from './credential.js';

/**
 * What a resource demands of a credential, beyond its validity.
 * @public
 */
export interface GeofenceResourcePolicy {
  /**
   * Minimum location trust level (default `low`). `none` (a result without location evidence, as
   * after enrolment) never satisfies a geofence requirement, whatever this says.
   */
  minTrustLevel?: Exclude<TrustLevel, 'none'>;
  /**
   * Allowed areas, hierarchical like agent geo policies (`{region}` allows every state of it). The
   * credential's decided area must match one; names compare after NFC and case folding, and a
   * region/state also matches by ISO 3166 code (`DE` = `Germany`). Omit to allow any area.
   */
  allow?: GeographicRegion[];
  /** Allowed fences by id (the `id` or `properties.name` of the agent-policy Feature that matched). */
  fences?: string[];
  /** Approved workload image digests (lowercase hex SHA-256); omit to accept any. */
  workloadDigests?: string[];
  /** Maximum age of the location evidence (`attested_at`, else `iat`) in seconds. */
  maxAgeSeconds?: number;
}

/**
 * Options of `requireGeofence` (Express) and `requireGeofenceFastify`.
 * @public
 */
export interface RequireGeofenceOptions extends CredentialTrust {
  /**
   * The absolute origin clients address this server by (`https://models.example:8446`):
   * `@target-uri` is rebuilt from it and the request target, never from the `Host` header, so a
   * request signed for another server does not verify here.
   */
  origin: string;
  /** The resource's policy. */
  policy?: GeofenceResourcePolicy;
  /**
   * Single-use store of request nonces: any {@link NonceStore} (memory, SQLite, Redis — share one
   * among replicas). Default: a process-local expiring set.
   */
  replay?: Pick<NonceStore, 'claimRequest'>;
  /** Accepted clock skew for `created` and credential expiry, seconds (default 60). */
  clockSkewSeconds?: number;
  /** Maximum body size in bytes (default 1 MiB). */
  bodyLimitBytes?: number;
  /** `rejected_by` of problems (default `resource`). */
  rejectedBy?: RejectedBy;
  /** Called with every rejection (logging, metrics). */
  onReject?: (error: GeofenceError, requestId: string) => void;
  /** Clock (tests). */
  now?: () => Date;
}

/**
 * A request as the guard sees it.
 * @public
 */
export interface GuardRequest {
  /** Method. */
  method: string;
  /** Request target as received (origin form: path and query). */
  target: string;
  /** Header fields (Node's lower-cased record). */
  headers: Record<string, string | string[] | undefined>;
  /** Body bytes, when the request has a body. */
  body?: Uint8Array | undefined;
}

/**
 * What an admitted request proved.
 * @public
 */
export interface AdmittedRequest {
  /** Agent (workload) name: the credential's `sub`. */
  agentName: string;
  /** The verified credential. */
  credential: VerifiedCredential;
  /** The verified request signature. */
  signature: VerifiedSignature;
}

const TRUST_RANK: Record<TrustLevel, number> = { none: 0, low: 1, medium: 2, high: 3, highest: 4 };
const DEFAULT_SKEW = 60;
/** At least 128 bits of base64url (22 characters), at most a sane bound. */
const NONCE_SYNTAX = /^[A-Za-z0-9_-]{22,128}$/;

function sigError(check: string, reason: string, err?: HttpSigError): GeofenceError {
  const time = err?.code === 'expired' || err?.code === 'not_yet_valid';
  return new GeofenceError(
    time ? 'timestamp_proximity' : 'signature_verification',
    time ? 'Request timestamp outside allowed window' : 'Signature verification failed',
    { details: { check, reason, ...(err ? { code: err.code } : {}) }, ...(err ? { cause: err } : {}) },
  );
}

function mapSigError(err: HttpSigError): GeofenceError {
  switch (err.code) {
    case 'missing_signature':
    case 'tag_mismatch':
      return sigError(
        'signature_missing',
        `no ${CREDENTIAL_SIGNATURE_LABEL} signature with tag ${CREDENTIAL_SIGNATURE_TAG}`,
        err,
      );
    case 'missing_component':
      return sigError('signature_components', err.message, err);
    case 'missing_param':
      return sigError('signature_params', err.message, err);
    case 'unknown_key':
      return sigError('keyid', 'the signature keyid is not the cnf.jkt of the credential', err);
    case 'expired':
    case 'not_yet_valid':
      return sigError('created', 'created is not within the clock skew of this server', err);
    case 'digest_mismatch':
      return new GeofenceError('request_validation', 'Content-Digest does not match the body', {
        details: { check: 'content_digest' },
        cause: err,
      });
    default:
      return sigError('signature', 'the request signature does not verify under the credential key', err);
  }
}

function rsAlg(cred: VerifiedCredential): 'ecdsa-p256-sha256' | 'rsa-v1_5-sha256' {
  return cred.key.asymmetricKeyType === 'rsa' ? 'rsa-v1_5-sha256' : 'ecdsa-p256-sha256';
}

function samePlaceName(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && a !== '' && foldPlaceName(a) === foldPlaceName(b);
}

function sameRegion(entry: string, area: string | undefined): boolean {
  if (samePlaceName(entry, area)) return true;
  const e = findRegion(entry);
  return e !== undefined && area !== undefined && findRegion(area)?.code === e.code;
}

function sameState(region: string, entry: string, area: string | undefined): boolean {
  if (samePlaceName(entry, area)) return true;
  const r = findRegion(region);
  if (!r || area === undefined) return false;
  const e = findState(r, entry);
  return e !== undefined && findState(r, area)?.code === e.code;
}

/** Whether the decided `area` lies in one of the `allow` entries. */
function areaAllowed(allow: readonly GeographicRegion[], area: ResidencyArea | undefined): boolean {
  if (!area) return false;
  return allow.some(
    (e) =>
      sameRegion(e.region, area.region) &&
      (!e.state || sameState(e.region, e.state, area.state)) &&
      (!e.city || samePlaceName(e.city, area.city)),
  );
}

function policyError(check: string, reason: string, expected: unknown, received: unknown): GeofenceError {
  return new GeofenceError('geolocation_policy', 'Geolocation verification failed', {
    details: { check, reason, expected, received },
  });
}

/** Applies the resource policy to a verified credential. */
function applyPolicy(policy: GeofenceResourcePolicy, cred: VerifiedCredential, nowSec: number): void {
  const g = cred.payload.geofence;
  if (g.residency !== 'tpm+geofence') {
    throw policyError(
      'residency',
      'the credential proves no location (Proof of Geofencing)',
      'tpm+geofence',
      g.residency,
    );
  }
  const min = policy.minTrustLevel ?? 'low';
  const rank = TRUST_RANK[g.trust_level] ?? 0;
  if (rank === 0 || rank < TRUST_RANK[min]) {
    throw policyError(
      'trust_level',
      'the location trust level is below what this resource requires',
      min,
      g.trust_level,
    );
  }
  const area = g.area;
  if (policy.allow !== undefined && !areaAllowed(policy.allow, area)) {
    throw policyError(
      'region',
      'the credential area is outside the areas this resource allows',
      policy.allow,
      area ?? null,
    );
  }
  if (
    policy.fences !== undefined &&
    (area?.fence_id === undefined || !policy.fences.includes(area.fence_id))
  ) {
    throw policyError(
      'fence',
      'the credential was not decided by a fence this resource allows',
      policy.fences,
      area?.fence_id ?? null,
    );
  }
  if (policy.workloadDigests !== undefined && !policy.workloadDigests.includes(g.workload_digest)) {
    throw credentialError('workload_digest', 'the workload digest is not approved for this resource', {
      workload_digest: g.workload_digest,
    });
  }
  if (policy.maxAgeSeconds !== undefined) {
    const at = g.attested_at ?? cred.payload.iat;
    if (nowSec - at > policy.maxAgeSeconds) {
      throw credentialError('credential_age', 'the location evidence is older than this resource accepts', {
        max_age_seconds: policy.maxAgeSeconds,
        attested_at: at,
      });
    }
  }
}

function processLocalReplay(): Pick<NonceStore, 'claimRequest'> {
  const set = new ExpiringSet();
  return {
    claimRequest: async (keyid, id, until) => set.claim(`${keyid} ${id}`, until.getTime(), Date.now()),
  };
}

function checkPolicy(policy: GeofenceResourcePolicy | undefined): void {
  if (policy === undefined) return;
  if (
    policy.minTrustLevel !== undefined &&
    !(policy.minTrustLevel in TRUST_RANK && (policy.minTrustLevel as string) !== 'none')
  )
    throw new TypeError(
      '@geofence/verifier requireGeofence: policy.minTrustLevel must be low, medium, high or highest',
    );
  if (
    policy.maxAgeSeconds !== undefined &&
    !(Number.isInteger(policy.maxAgeSeconds) && policy.maxAgeSeconds > 0)
  )
    throw new TypeError(
      '@geofence/verifier requireGeofence: policy.maxAgeSeconds must be a positive integer',
    );
}

/**
 * The guard: `admit(request)` resolves with what the request proved or throws the
 * {@link GeofenceError} to answer with (`details.check` names the failed check).
 * @public
 */
export interface GeofenceGuard {
  /** Checks one request. */
  admit(request: GuardRequest): Promise<AdmittedRequest>;
}

/**
 * Builds the framework-neutral guard behind `requireGeofence`. Order: credential (signature,
 * issuer, expiry, key binding) → request signature (label `pog`, tag, exact components, params,
 * `keyid` = `cnf.jkt`, `created` within the skew, Content-Digest) → nonce (single use) → policy.
 * @public
 */
export function createGeofenceGuard(options: RequireGeofenceOptions): GeofenceGuard {
  const trust: CompiledTrust = compileTrust(options);
  let origin: URL;
  try {
    origin = new URL(options.origin);
  } catch {
    throw new TypeError('@geofence/verifier requireGeofence: option origin must be an absolute URL');
  }
  if (
    (origin.protocol !== 'https:' && origin.protocol !== 'http:') ||
    origin.pathname !== '/' ||
    origin.search
  )
    throw new TypeError(
      '@geofence/verifier requireGeofence: option origin must be scheme://host[:port] only',
    );
  checkPolicy(options.policy);
  const base = origin.origin;
  const skew = options.clockSkewSeconds ?? DEFAULT_SKEW;
  const replay = options.replay ?? processLocalReplay();
  const now = options.now ?? (() => new Date());
  const policy = options.policy ?? {};

  return {
    async admit(request) {
      const at = now();
      const cred = await verifyPresentedCredential(request.headers, trust, at, skew);
      const hasBody = request.body !== undefined && request.body.byteLength > 0;
      const expected = [
        ...CREDENTIAL_SIGNATURE_COMPONENTS,
        cred.header,
        ...(hasBody ? ['content-digest'] : []),
      ];
      const alg = rsAlg(cred);
      let signature: VerifiedSignature;
      try {
        signature = await verifyRequest(
          {
            method: request.method,
            url: base + (request.target.startsWith('/') ? request.target : `/${request.target}`),
            headers: request.headers,
            ...(hasBody ? { body: request.body } : {}),
          },
          {
            label: CREDENTIAL_SIGNATURE_LABEL,
            tag: CREDENTIAL_SIGNATURE_TAG,
            requiredComponents: expected,
            requiredParams: ['created', 'keyid', 'alg', 'tag', 'nonce'],
            algorithms: [alg],
            keyLookup: async (keyid) => (keyid === cred.jkt ? { key: cred.key, alg } : undefined),
            maxAgeSeconds: 0,
            clockSkewSeconds: skew,
            now: at,
          },
        );
      } catch (err) {
        if (isHttpSigError(err)) throw mapSigError(err);
        throw err;
      }
      const extra = signature.components.filter((c) => !expected.includes(c));
      if (extra.length > 0) {
        throw sigError(
          'signature_components',
          `the signature covers components beyond the profile: ${extra.join(', ')}`,
        );
      }
      const nonce = signature.nonce as string;
      if (!NONCE_SYNTAX.test(nonce)) {
        throw new GeofenceError('nonce_validation', 'Invalid or expired nonce for this agent', {
          details: { check: 'nonce_length', reason: 'the nonce must be at least 128 random bits, base64url' },
        });
      }
      // The mark lasts as long as `created` could still be accepted, so a replay always finds it.
      const until = new Date(((signature.created as number) + skew + 1) * 1000);
      if (!(await replay.claimRequest(`pog:${cred.jkt}`, nonce, until))) {
        throw new GeofenceError('nonce_validation', 'Invalid or expired nonce for this agent', {
          details: { check: 'nonce_reused', reason: 'this request nonce was already used' },
        });
      }
      applyPolicy(policy, cred, Math.floor(at.getTime() / 1000));
      return { agentName: cred.payload.sub, credential: cred, signature };
    },
  };
}
