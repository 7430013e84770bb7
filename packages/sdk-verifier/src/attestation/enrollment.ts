/**
 * Enrolment — Proof of Residency (SPEC §4): two round trips that prove the AppSK lives in a TPM
 * whose EK we trust, next to an AK that quoted an approved platform state, for an approved workload.
 */

import { randomBytes } from 'node:crypto';
import type { EnrollCompleteResponse, EnrollStartResponse } from '@geofence/protocol';
import {
  bytesEqual,
  type EnrollCompleteRequest,
  type EnrollRequest,
  enrollCompleteSchema,
  enrollmentQualifyingData,
  enrollRequestSchema,
  fromB64u,
  fromHex,
  geolocationIdHash,
  type PcrValuesJson,
  toB64u,
  toHex,
} from '@geofence/protocol';
import type { PcrValues } from '@geofence/tpm-wire';
import {
  keyIdOfPublic,
  makeCredential,
  objectName,
  publicToJwk,
  publicToKeyObject,
  publicToPem,
  publicToSpkiDer,
  TpmWireError,
  verifyCertify,
  verifyQuote,
} from '@geofence/tpm-wire';
import type { JWK } from 'jose';
import type { GeoPolicy } from '../geo.js';
import { type EkTrustAnchors, loadEkCaBundle, verifyEkCertificate } from './ek.js';
import { attestationError, requestError } from './errors.js';
import { checkAk, checkAppKey, checkEk, parseKey } from './keys.js';
import { MemoryPendingEnrollmentStore, type PendingEnrollmentStore } from './pending.js';
import {
  appraisePlatform,
  type PlatformPolicy,
  requiredPcrSelection,
  validatePlatformPolicy,
} from './policy.js';
import {
  type AgentRecord,
  type AgentRecordInput,
  expectationOf,
  type Registry,
  RegistryError,
} from './registry-port.js';
import type { AttestationResultSigner } from './result.js';

/**
 * An agent an operator registered before it enrolled (SPEC §4): its name, which EK it must use,
 * and its geo policy.
 * @public
 */
export interface PreRegisteredAgent {
  /** Agent name. */
  agentName: string;
  /**
   * The EK the agent must present: its hash (lowercase hex SHA-256 of the EK SPKI DER), or
   * `"any-trusted-ca"` for any EK whose certificate chains to the EK CA bundle.
   */
  ek: { hash: string } | 'any-trusted-ca';
  /** Geo policy written into the registry record. */
  geoPolicy: GeoPolicy;
}

/**
 * Enrolment policy: trust anchors, reference values and pre-registrations.
 * @public
 */
export interface EnrollmentPolicy extends PlatformPolicy {
  /** EK CA certificates (PEM text, or a list of PEM texts). EK certificates must be issued by one of them. */
  ekCaBundle?: string | readonly string[];
  /** EK hashes accepted without a certificate (lowercase hex SHA-256 of the EK SPKI DER). */
  approvedEkHashes?: readonly string[];
  /** Pre-registered agents. */
  agents?: readonly PreRegisteredAgent[];
  /**
   * What to do with an agent that is neither pre-registered nor already in the registry:
   * `pending` (default, SPEC §4) creates a record with status `pending` that an operator must
   * approve; `reject` refuses the enrolment.
   */
  unknownAgents?: 'pending' | 'reject';
  /** Geo policy of records created for agents that were not pre-registered. Default: `{}`. */
  defaultGeoPolicy?: GeoPolicy;
}

/**
 * Options of {@link EnrollmentService}.
 * @public
 */
export interface EnrollmentServiceOptions {
  /** Where enrolled agents are recorded (SPEC §10). */
  registry: Registry;
  /** Signs attestation results. */
  signer: AttestationResultSigner;
  /** Trust anchors and reference values. */
  policy: EnrollmentPolicy;
  /** Lifetime of a pending enrolment in seconds (default 300). */
  pendingTtlSeconds?: number;
  /** Where pending enrolments live (default: in this process). */
  pendingStore?: PendingEnrollmentStore;
  /** Clock (tests). */
  now?: () => Date;
}

const EK_HASH_RE = /^[0-9a-f]{64}$/;

/**
 * The collector's enrolment logic (SPEC §4), framework-agnostic: {@link EnrollmentService.start}
 * answers `POST /enroll`, {@link EnrollmentService.complete} answers `POST /enroll/{id}/complete`.
 * Every rejection is a `GeofenceError`: `request_validation` (400) for malformed bodies,
 * `attestation` (403) with `details.check` naming the failed check otherwise.
 *
 * @example
 * ```ts
 * const enrollment = new EnrollmentService({ registry, signer, policy: { ekCaBundle: pem } });
 * const challenge = await enrollment.start(body);
 * const done = await enrollment.complete(challenge.enrollment_id, completionBody);
 * ```
 * @public
 */
export class EnrollmentService {
  private readonly registry: Registry;
  private readonly signer: AttestationResultSigner;
  private readonly policy: EnrollmentPolicy;
  private readonly anchors: EkTrustAnchors | undefined;
  private readonly pending: PendingEnrollmentStore;
  private readonly pendingTtlMs: number;
  private readonly now: () => Date;

  constructor(options: EnrollmentServiceOptions) {
    const policy = options.policy;
    validatePlatformPolicy(policy);
    for (const h of policy.approvedEkHashes ?? []) {
      if (!EK_HASH_RE.test(h)) throw new TypeError(`approved EK hash ${h} is not lowercase hex SHA-256`);
    }
    for (const a of policy.agents ?? []) {
      if (a.ek !== 'any-trusted-ca' && !EK_HASH_RE.test(a.ek.hash)) {
        throw new TypeError(`pre-registered agent ${a.agentName}: EK hash is not lowercase hex SHA-256`);
      }
    }
    const bundle = policy.ekCaBundle;
    this.anchors = bundle === undefined ? undefined : loadEkCaBundle(bundle);
    if (this.anchors && this.anchors.certificates.length === 0) {
      throw new TypeError('EK CA bundle contains no certificate');
    }
    this.registry = options.registry;
    this.signer = options.signer;
    this.policy = policy;
    const ttl = options.pendingTtlSeconds ?? 300;
    if (!(ttl > 0)) throw new TypeError('pendingTtlSeconds must be positive');
    this.pendingTtlMs = ttl * 1000;
    this.pending = options.pendingStore ?? new MemoryPendingEnrollmentStore(ttl);
    this.now = options.now ?? (() => new Date());
  }

  /** The PCR selection agents must quote under this policy. */
  pcrSelection(): Array<{ bank: string; pcrs: number[] }> {
    return requiredPcrSelection(this.policy).map((s) => ({ bank: s.bank, pcrs: [...s.pcrs] }));
  }

  /**
   * Step 1 (`POST /enroll`): checks the EK (certificate chain and key, or approved hash), the
   * registration state of the agent and the AK attributes, then runs MakeCredential for the AK.
   */
  async start(body: unknown): Promise<EnrollStartResponse> {
    const parsed = enrollRequestSchema.safeParse(body);
    if (!parsed.success) throw requestError('invalid enrolment request', parsed.error.issues);
    const request = parsed.data;
    const now = this.now();

    const ek = parseKey(request.ek.public, 'ek_public', 'EK public');
    checkEk(ek);
    const ekHash = keyIdOfPublic(ek);
    const preRegistered = this.policy.agents?.find((a) => a.agentName === request.agent_name);
    const existing = await this.registry.getByName(request.agent_name);
    this.checkRegistration(request.agent_name, ekHash, existing);

    let ekIssuer: string | undefined;
    if (request.ek.certificate !== undefined && this.anchors) {
      const der = fromB64u(request.ek.certificate);
      if (!der) throw attestationError('ek_certificate', 'EK certificate is not base64url');
      ekIssuer = verifyEkCertificate(der, publicToKeyObject(ek), this.anchors, now).issuer;
    }
    if (preRegistered) {
      if (preRegistered.ek === 'any-trusted-ca') {
        if (ekIssuer === undefined) {
          throw attestationError(
            'ek_not_registered_for_agent',
            'this agent must present an EK certificate from a trusted EK CA',
            { agent_name: request.agent_name },
          );
        }
      } else if (preRegistered.ek.hash !== ekHash) {
        throw attestationError(
          'ek_not_registered_for_agent',
          'the EK differs from the one registered for this agent',
          {
            agent_name: request.agent_name,
            ek_hash: ekHash,
          },
        );
      }
    }
    if (ekIssuer === undefined) {
      const approved =
        (this.policy.approvedEkHashes ?? []).includes(ekHash) ||
        (preRegistered !== undefined &&
          preRegistered.ek !== 'any-trusted-ca' &&
          preRegistered.ek.hash === ekHash);
      if (!approved) {
        throw attestationError(
          request.ek.certificate === undefined ? 'ek_hash_not_approved' : 'ek_certificate_chain',
          request.ek.certificate === undefined
            ? 'no EK certificate and the EK hash is not approved'
            : 'no EK CA bundle is configured and the EK hash is not approved',
          { ek_hash: ekHash },
        );
      }
    }

    const ak = parseKey(request.ak.public, 'ak_public', 'AK public');
    checkAk(ak);
    // Parsed now so a malformed AppSK fails before any TPM work; its attributes are checked in step 2.
    parseKey(request.app_key.public, 'app_key_public', 'AppSK public');

    const secret = new Uint8Array(randomBytes(32));
    let credential: { credentialBlob: Uint8Array; encryptedSecret: Uint8Array };
    try {
      credential = makeCredential({ ekPublic: ek, objectName: objectName(ak), secret });
    } catch (err) {
      throw attestationError('ek_public', 'MakeCredential to this EK failed', {}, err);
    }
    const id = toB64u(randomBytes(18));
    const nonce = toB64u(randomBytes(32));
    const expiresAt = new Date(now.getTime() + this.pendingTtlMs);
    await this.pending.put(
      id,
      {
        request,
        ek_hash: ekHash,
        ...(ekIssuer === undefined ? {} : { ek_cert_issuer: ekIssuer }),
        secret: toB64u(secret),
        nonce,
      },
      expiresAt,
    );
    return {
      enrollment_id: id,
      credential_blob: toB64u(credential.credentialBlob),
      encrypted_secret: toB64u(credential.encryptedSecret),
      nonce,
      expires_at: expiresAt.toISOString(),
      pcr_selection: this.pcrSelection(),
    };
  }

  /**
   * Step 2 (`POST /enroll/{id}/complete`): in SPEC §4 order, failing closed on the first failed
   * check — pending enrolment (unknown, expired, already used), activated secret, certify of the
   * AppSK, AppSK attributes, quote, PCR policy, workload digest — then writes the registry record
   * and issues the attestation result.
   */
  async complete(enrollmentId: string, body: unknown): Promise<EnrollCompleteResponse> {
    const parsed = enrollCompleteSchema.safeParse(body);
    if (!parsed.success) throw requestError('invalid enrolment completion', parsed.error.issues);
    const req: EnrollCompleteRequest = parsed.data;
    const now = this.now();
    const p = await this.takePending(enrollmentId, now);
    verifyActivation(p, req);
    const alg = verifyCertification(p, req);
    const platform = this.verifyPlatform(enrollmentId, p, req);
    // Re-read the registry: the agent may have been revoked or enrolled elsewhere meanwhile.
    const existing = await this.registry.getByName(p.request.agent_name);
    this.checkRegistration(p.request.agent_name, p.ekHash, existing);
    const status = this.statusFor(p.request.agent_name, existing);
    const record = this.recordOf(p, alg, platform, status, existing, now);
    await this.writeRecord(record, existing);

    const jwt = await this.signer.sign(
      record.agent_name,
      publicToJwk(p.app) as JWK,
      {
        keyid: record.keyid,
        ek_hash: p.ekHash,
        workload_digest: p.request.workload.image_digest,
        platform_integrity: platform.platformIntegrity,
        agent_integrity: platform.agentIntegrity,
        residency: 'tpm',
        trust_level: 'none',
        evidence: 'enrollment',
        status,
      },
      now,
    );
    return {
      status,
      agent_name: record.agent_name,
      keyid: record.keyid,
      alg,
      platform_integrity: platform.platformIntegrity,
      agent_integrity: platform.agentIntegrity,
      attestation_result: jwt,
    };
  }

  /** Step 2a — the pending enrolment, taken once (`enrollment_unknown` / `_already_used` / `_expired`). */
  private async takePending(enrollmentId: string, now: Date): Promise<PendingCompletion> {
    const taken = await this.pending.take(enrollmentId, now);
    if (taken.status === 'unknown') throw attestationError('enrollment_unknown', 'no such pending enrolment');
    if (taken.status === 'used') {
      throw attestationError('enrollment_already_used', 'this enrolment was already completed or attempted');
    }
    if (taken.status === 'expired')
      throw attestationError('enrollment_expired', 'the pending enrolment expired');
    const stored = taken.value;
    // Keys were checked at step 1; re-parse them from the stored request (stores hold plain JSON).
    return {
      request: stored.request,
      ak: parseKey(stored.request.ak.public, 'ak_public', 'AK public'),
      app: parseKey(stored.request.app_key.public, 'app_key_public', 'AppSK public'),
      ekHash: stored.ek_hash,
      ekIssuer: stored.ek_cert_issuer,
      nonce: stored.nonce,
      secret: fromB64u(stored.secret) ?? new Uint8Array(0),
    };
  }

  /** Step 2d — the quote over the enrolment's qualifying data, then the PCR and workload appraisal. */
  private verifyPlatform(
    enrollmentId: string,
    p: PendingCompletion,
    req: EnrollCompleteRequest,
  ): ReturnType<typeof appraisePlatform> {
    const pcrValues = pcrValuesFromJson(req.quote.pcrs);
    const quote = tpmCheck('quote', () =>
      verifyQuote({
        attest: b64uOrReject(req.quote.attest, 'quote'),
        signature: b64uOrReject(req.quote.signature, 'quote'),
        akPublic: p.ak,
        qualifyingData: enrollmentQualifyingData(enrollmentId, p.nonce, p.request),
        pcrValues,
      }),
    );
    return appraisePlatform(this.policy, quote.quote.pcrSelect, pcrValues, p.request.workload.image_digest);
  }

  /** The record's status: as before for a known agent, active when pre-registered, else by policy. */
  private statusFor(agentName: string, existing: AgentRecord | undefined): 'active' | 'pending' {
    if (existing) return existing.status === 'active' ? 'active' : 'pending';
    if (this.policy.agents?.some((a) => a.agentName === agentName)) return 'active';
    if ((this.policy.unknownAgents ?? 'pending') === 'pending') return 'pending';
    throw attestationError('agent_not_registered', 'the agent is not pre-registered', {
      agent_name: agentName,
    });
  }

  /** The registry record of SPEC §10 this enrolment writes. */
  private recordOf(
    p: PendingCompletion,
    alg: AgentRecordInput['alg'],
    platform: ReturnType<typeof appraisePlatform>,
    status: 'active' | 'pending',
    existing: AgentRecord | undefined,
    now: Date,
  ): AgentRecordInput {
    const preRegistered = this.policy.agents?.find((a) => a.agentName === p.request.agent_name);
    const iso = now.toISOString();
    return {
      agent_name: p.request.agent_name,
      keyid: keyIdOfPublic(p.app),
      alg,
      app_public_key_pem: publicToPem(p.app),
      ak_public_pem: publicToPem(p.ak),
      ek_public_hash: p.ekHash,
      ...(p.ekIssuer === undefined ? {} : { ek_cert_issuer: p.ekIssuer }),
      workload_digest: p.request.workload.image_digest,
      pcr_policy: { status: platform.platformIntegrity, values: platform.pcrs },
      // The location sensor bound to this AK (V-PEA geolocation-id-hash, hex); absent without a sensor.
      ...(p.request.sensor === undefined
        ? {}
        : {
            sensor_id_hash: toHex(
              fromB64u(geolocationIdHash(publicToSpkiDer(p.ak), p.request.sensor)) ?? new Uint8Array(0),
            ),
          }),
      // The operator's pre-registration is the source of truth; otherwise keep what the record has.
      geo_policy: preRegistered?.geoPolicy ?? existing?.geo_policy ?? this.policy.defaultGeoPolicy ?? {},
      status,
      enrolled_at: iso,
      updated_at: iso,
      metadata: {
        workload: p.request.workload,
        platform: p.request.platform,
        ...(p.request.sensor === undefined
          ? {}
          : { sensor: { type: p.request.sensor.type, model: p.request.sensor.model } }),
        pcr_selection: this.pcrSelection(),
        // The credential-activated AK's Name (its public area, attributes included).
        ak_name: toHex(objectName(p.ak)),
      },
    };
  }

  /**
   * Compare-and-set against what was checked: a second enrolment (or an operator) that wrote this
   * name in the meantime, in any process, makes this one fail (`registration_conflict`) instead of
   * winning.
   */
  private async writeRecord(record: AgentRecordInput, existing: AgentRecord | undefined): Promise<void> {
    try {
      await this.registry.putIfMatch(record, expectationOf(existing));
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'keyid_conflict') {
        throw attestationError('app_key_public', 'this AppSK is already enrolled for another agent', {}, err);
      }
      if (err instanceof RegistryError && err.code === 'conflict') {
        throw attestationError(
          'registration_conflict',
          'the agent record changed during this enrolment (another enrolment or an operator wrote it)',
          { agent_name: record.agent_name },
          err,
        );
      }
      throw err;
    }
  }

  /**
   * A record's identity only changes through an enrolment bound to the same EK (SPEC §4.3), or with
   * the operator's say-so: a record that carries no EK binding (written through the registry API or
   * an allowlist file) is replaced only when the operator pre-registered the name for enrolment.
   * Anything else fails closed — otherwise any TPM whose EK chains to a trusted CA could take over
   * an active agent's name and keep its geo policy.
   */
  private checkRegistration(agentName: string, ekHash: string, existing: AgentRecord | undefined): void {
    const preRegistered = this.policy.agents?.some((a) => a.agentName === agentName) ?? false;
    if (!existing) {
      if (!preRegistered && this.policy.unknownAgents === 'reject') {
        throw attestationError('agent_not_registered', 'the agent is not pre-registered', {
          agent_name: agentName,
        });
      }
      return;
    }
    if (existing.status === 'revoked') {
      throw attestationError('agent_revoked', 'the agent is revoked', { agent_name: agentName });
    }
    if (existing.ek_public_hash === undefined) {
      if (!preRegistered) {
        throw attestationError(
          'ek_not_registered_for_agent',
          'the agent is registered without an EK binding: pre-register it for enrolment ' +
            '(geofence agents add) before its key can be replaced',
          { agent_name: agentName, ek_hash: ekHash },
        );
      }
      return;
    }
    if (existing.ek_public_hash !== ekHash) {
      throw attestationError('ek_not_registered_for_agent', 'the agent is enrolled with another EK', {
        agent_name: agentName,
        ek_hash: ekHash,
      });
    }
  }
}

function b64uOrReject(text: string, check: 'certify' | 'quote'): Uint8Array {
  const bytes = fromB64u(text);
  if (!bytes) throw attestationError(check, 'evidence is not base64url', { code: 'malformed' });
  return bytes;
}

/** Runs a tpm-wire verification, turning its error code into the rejection naming `check`. */
function tpmCheck<T>(check: 'certify' | 'quote', fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof TpmWireError) {
      throw attestationError(check, `${check} verification failed: ${err.code}`, { code: err.code }, err);
    }
    throw err;
  }
}

/** Converts reported PCR values from hex JSON to the byte map tpm-wire takes. */
export function pcrValuesFromJson(json: PcrValuesJson): PcrValues {
  const out: PcrValues = {};
  for (const [bank, entries] of Object.entries(json)) {
    const values: Record<number, Uint8Array> = {};
    for (const [idx, hex] of Object.entries(entries ?? {})) {
      const bytes = fromHex(hex);
      if (bytes) values[Number(idx)] = bytes;
    }
    out[bank] = values;
  }
  return out;
}

/** A pending enrolment as taken for completion: the stored start request with its keys re-parsed. */
interface PendingCompletion {
  request: EnrollRequest;
  ak: ReturnType<typeof parseKey>;
  app: ReturnType<typeof parseKey>;
  ekHash: string;
  ekIssuer: string | undefined;
  nonce: string;
  /** The credential secret that only the EK's TPM could recover. */
  secret: Uint8Array;
}

/** Step 2b — credential activation: only the TPM holding the EK and this AK could recover the secret. */
function verifyActivation(p: PendingCompletion, req: EnrollCompleteRequest): void {
  const secret = fromB64u(req.secret);
  if (!secret || p.secret.byteLength === 0 || !bytesEqual(secret, p.secret)) {
    throw attestationError(
      'credential_secret',
      'the activated credential does not match: the AK is not resident with the EK',
    );
  }
}

/** Step 2c — TPM2_Certify of the AppSK by the activated AK over the nonce; returns the AppSK's algorithm. */
function verifyCertification(
  p: PendingCompletion,
  req: EnrollCompleteRequest,
): ReturnType<typeof checkAppKey> {
  tpmCheck('certify', () =>
    verifyCertify({
      attest: b64uOrReject(req.certify.attest, 'certify'),
      signature: b64uOrReject(req.certify.signature, 'certify'),
      akPublic: p.ak,
      objectPublic: p.app,
      qualifyingData: fromB64u(p.nonce) ?? new Uint8Array(0),
    }),
  );
  return checkAppKey(p.app);
}
