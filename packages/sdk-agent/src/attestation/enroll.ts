/**
 * Agent side of enrolment (SPEC §4): both round trips with the TPM — EK public and certificate, a
 * new AK, the AppSK from the state directory, ActivateCredential, Certify with the nonce, Quote.
 */
import { release, type } from 'node:os';
import type { KeyAlg, Tpm, TpmKey } from '@geofence/native-tpm';
import {
  type EnrollCompleteResponse,
  type EnrollRequest,
  type EnrollStartResponse,
  enrollmentQualifyingData,
  type SensorInfo,
} from '@geofence/protocol';
import { keyIdOfPublic } from '@geofence/tpm-wire';
import { GeofenceRejection } from '../errors.js';
import type { AgentState, AppKeyAlgorithm } from '../state.js';
import { AttestationClientError } from './errors.js';
import { ensureWorkloadPcr, measureWorkload, type WorkloadIdentity } from './workload.js';

/**
 * Sends a JSON body with `POST` to a path of the collector (through the gateway) and returns the
 * status and the parsed JSON answer. The agent plugs its undici client in here.
 * @public
 */
export type AttestationPost = (path: string, json: unknown) => Promise<{ status: number; body: unknown }>;

/**
 * TPM operations enrolment uses (a `Tpm` of `@geofence/native-tpm` satisfies it).
 * @public
 */
export type EnrollmentTpm = Pick<
  Tpm,
  | 'ekPublic'
  | 'ekCertificate'
  | 'createAk'
  | 'certify'
  | 'quote'
  | 'activateCredential'
  | 'pcrRead'
  | 'pcrExtend'
  | 'createSigningKey'
  | 'loadKey'
>;

/**
 * Options of {@link performEnrollment}.
 * @public
 */
export interface PerformEnrollmentOptions {
  /** Agent name. */
  agentName: string;
  /** The host TPM. */
  tpm: EnrollmentTpm;
  /** State directory: the AppSK is created once / reloaded here, and the result is saved here. */
  state: AgentState;
  /** HTTP `POST` to the collector. */
  post: AttestationPost;
  /** Workload identity and measurement. */
  workload: WorkloadIdentity;
  /** AppSK algorithm (default `ecc-p256`). */
  appKeyAlgorithm?: AppKeyAlgorithm;
  /** AK algorithm (default `ecc-p256`). */
  akAlgorithm?: KeyAlg;
  /** Which EK to use (default `rsa-2048`, the one every TPM and swtpm certify). */
  ekAlgorithm?: KeyAlg;
  /** Send the EK certificate from NV (default true; an absent certificate is then an error). */
  sendEkCertificate?: boolean;
  /** Platform description (default: `os.type()`, `os.release()`). */
  platform?: { os: string; kernel: string };
  /** Location sensor identity, bound to the AK for location attestation. */
  sensor?: SensorInfo;
}

/**
 * What enrolment stores in the state directory (`AgentState.saveEnrollment`), and returns.
 * @public
 */
export interface StoredEnrollment {
  /** Format version. */
  version: 1;
  /** Agent name. */
  agent_name: string;
  /** keyid of the AppSK. */
  keyid: string;
  /** RFC 9421 algorithm of the AppSK. */
  alg: 'ecdsa-p256-sha256' | 'rsa-v1_5-sha256';
  /** Registry status (`pending` until an operator approves). */
  status: 'active' | 'pending';
  /** Attestation result JWT. */
  attestation_result: string;
  /** When the enrolment completed (ISO 8601). */
  enrolled_at: string;
  /** EK algorithm used. */
  ek_alg: KeyAlg;
  /** The enrolled AK (public, Name, loadable blob), reused for location quotes. */
  ak: TpmKey;
  /** PCRs the collector wants quoted. */
  pcr_selection: Array<{ bank: 'sha1' | 'sha256' | 'sha384' | 'sha512'; pcrs: number[] }>;
  /** Workload as enrolled. */
  workload: { name: string; version: string; image_digest: string; image_path?: string; extend_pcr?: number };
  /** Sensor bound to the AK. */
  sensor?: SensorInfo;
  /** Collector's verdicts. */
  platform_integrity: 'verified' | 'recorded';
  /** Collector's verdicts. */
  agent_integrity: 'verified' | 'recorded';
}

const b64u = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
const fromB64u = (s: unknown, what: string): Uint8Array => {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]+$/.test(s)) {
    throw new AttestationClientError('bad_response', `collector answer: ${what} is not base64url`);
  }
  return new Uint8Array(Buffer.from(s, 'base64url'));
};

/** PCR values as `{bank: {index: hex}}` for the wire. */
export function pcrValuesToJson(values: {
  [bank: string]: { [pcr: number]: Uint8Array };
}): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [bank, entries] of Object.entries(values)) {
    out[bank] = Object.fromEntries(
      Object.entries(entries).map(([i, v]) => [i, Buffer.from(v).toString('hex')]),
    );
  }
  return out;
}

async function expectStatus<T>(
  post: AttestationPost,
  path: string,
  json: unknown,
  status: number,
): Promise<T> {
  const r = await post(path, json);
  if (r.status !== status) throw new GeofenceRejection(r.status, r.body);
  if (r.body === null || typeof r.body !== 'object') {
    throw new AttestationClientError('bad_response', `collector answer to ${path} is not a JSON object`);
  }
  return r.body as T;
}

function parseSelection(sel: unknown): StoredEnrollment['pcr_selection'] {
  const banks = ['sha1', 'sha256', 'sha384', 'sha512'];
  if (
    !Array.isArray(sel) ||
    !sel.every(
      (s) =>
        s !== null &&
        typeof s === 'object' &&
        banks.includes((s as { bank?: unknown }).bank as string) &&
        Array.isArray((s as { pcrs?: unknown }).pcrs) &&
        (s as { pcrs: unknown[] }).pcrs.every(
          (p) => Number.isInteger(p) && (p as number) >= 0 && (p as number) <= 23,
        ),
    )
  ) {
    throw new AttestationClientError('bad_response', 'collector answer: invalid pcr_selection');
  }
  return sel as StoredEnrollment['pcr_selection'];
}

/**
 * Enrols the agent (SPEC §4): creates or reloads the AppSK in `state`, measures the workload
 * (extending it into a PCR when configured), creates a new AK, sends `POST /enroll`, activates the
 * credential, certifies the AppSK with the AK over the collector's nonce, quotes the requested PCRs
 * over SHA-256(JCS({enrollment_id, nonce, request})), sends `POST /enroll/{id}/complete`, and saves
 * the result in `state`. Collector refusals throw `GeofenceRejection` (validation type
 * `attestation`, `details.check` naming the check).
 *
 * @example
 * ```ts
 * const result = await performEnrollment({ agentName: 'agent-001', tpm, state, post,
 *   workload: { name: 'metrics-agent', version: '1.0.0' } });
 * ```
 * @public
 */
export async function performEnrollment(options: PerformEnrollmentOptions): Promise<StoredEnrollment> {
  const { tpm, state, post, workload } = options;
  const ekAlg = options.ekAlgorithm ?? 'rsa-2048';
  const appKey = await state.loadOrCreateAppKey(tpm, options.appKeyAlgorithm ?? 'ecc-p256');

  const imageDigest = await measureWorkload(workload.imagePath);
  if (workload.extendPcr !== undefined) await ensureWorkloadPcr(tpm, workload.extendPcr, imageDigest);

  const ekPublic = await tpm.ekPublic(ekAlg);
  const ekCert = options.sendEkCertificate === false ? null : await tpm.ekCertificate(ekAlg);
  if (options.sendEkCertificate !== false && !ekCert) {
    throw new AttestationClientError(
      'no_ek_certificate',
      `the TPM has no ${ekAlg} EK certificate in NV; pass sendEkCertificate: false to enrol by approved EK hash`,
    );
  }
  const ak = await tpm.createAk({ alg: options.akAlgorithm ?? 'ecc-p256' });

  const request: EnrollRequest = {
    agent_name: options.agentName,
    ek: { public: b64u(ekPublic), ...(ekCert ? { certificate: b64u(ekCert) } : {}) },
    ak: { public: b64u(ak.public) },
    app_key: { public: b64u(appKey.public) },
    workload: { name: workload.name, version: workload.version, image_digest: imageDigest },
    platform: options.platform ?? { os: type(), kernel: release() },
    ...(options.sensor ? { sensor: options.sensor } : {}),
  };
  const challenge = await expectStatus<EnrollStartResponse>(post, '/enroll', request, 201);
  if (typeof challenge.enrollment_id !== 'string' || typeof challenge.nonce !== 'string') {
    throw new AttestationClientError(
      'bad_response',
      'collector answer to /enroll lacks enrollment_id or nonce',
    );
  }
  const selection = parseSelection(challenge.pcr_selection);

  const secret = await tpm.activateCredential(
    ak,
    fromB64u(challenge.credential_blob, 'credential_blob'),
    fromB64u(challenge.encrypted_secret, 'encrypted_secret'),
    { ekAlg },
  );
  const certify = await tpm.certify(appKey, ak, fromB64u(challenge.nonce, 'nonce'));
  const quote = await tpm.quote(
    ak,
    selection,
    enrollmentQualifyingData(challenge.enrollment_id, challenge.nonce, request),
  );

  const done = await expectStatus<EnrollCompleteResponse>(
    post,
    `/enroll/${encodeURIComponent(challenge.enrollment_id)}/complete`,
    {
      secret: b64u(secret),
      certify: { attest: b64u(certify.attest), signature: b64u(certify.signature) },
      quote: {
        attest: b64u(quote.attest),
        signature: b64u(quote.signature),
        pcrs: pcrValuesToJson(quote.pcrValues),
      },
    },
    200,
  );
  const keyid = keyIdOfPublic(appKey.public);
  if (done.keyid !== keyid || typeof done.attestation_result !== 'string') {
    throw new AttestationClientError('bad_response', 'collector answer to /complete does not name our AppSK');
  }

  const result: StoredEnrollment = {
    version: 1,
    agent_name: options.agentName,
    keyid,
    alg: done.alg,
    status: done.status,
    attestation_result: done.attestation_result,
    enrolled_at: new Date().toISOString(),
    ek_alg: ekAlg,
    ak: { public: ak.public, name: ak.name, ...(ak.blob ? { blob: ak.blob } : {}) },
    pcr_selection: selection,
    workload: {
      name: workload.name,
      version: workload.version,
      image_digest: imageDigest,
      ...(workload.imagePath !== undefined ? { image_path: workload.imagePath } : {}),
      ...(workload.extendPcr !== undefined ? { extend_pcr: workload.extendPcr } : {}),
    },
    ...(options.sensor ? { sensor: options.sensor } : {}),
    platform_integrity: done.platform_integrity,
    agent_integrity: done.agent_integrity,
  };
  state.saveEnrollment(result);
  return result;
}
