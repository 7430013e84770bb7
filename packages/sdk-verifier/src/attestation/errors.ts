/**
 * Every attestation rejection is a {@link GeofenceError} with validation type `attestation`
 * (HTTP 403) whose `details.check` names the check that failed, so operators and tests can tell
 * "EK certificate from an untrusted CA" from "PCR 7 differs from the reference value".
 */
import { GeofenceError } from '../errors.js';

/**
 * Names of the attestation checks, as reported in `details.check` of a rejection.
 * @public
 */
export type AttestationCheck =
  | 'ek_public'
  | 'ek_certificate'
  | 'ek_certificate_chain'
  | 'ek_certificate_key'
  | 'ek_hash_not_approved'
  | 'ek_not_registered_for_agent'
  | 'agent_not_registered'
  | 'agent_revoked'
  | 'registration_conflict'
  | 'ak_public'
  | 'ak_attributes'
  | 'app_key_public'
  | 'app_key_attributes'
  | 'enrollment_unknown'
  | 'enrollment_expired'
  | 'enrollment_already_used'
  | 'credential_secret'
  | 'certify'
  | 'quote'
  | 'pcr_selection'
  | 'pcr_policy'
  | 'workload_digest'
  | 'workload_pcr'
  | 'agent_not_enrolled'
  | 'ak_not_enrolled'
  | 'bundle_malformed'
  | 'privacy_technique'
  | 'geolocation_proof_hash'
  | 'geolocation_id_hash'
  | 'timestamp_window'
  | 'nonce'
  | 'geofence'
  | 'mno_location';

/**
 * Builds the rejection for a failed attestation check. `details` must not carry secrets (it is
 * sent to the client): callers pass identifiers, hashes and reason codes only.
 * @public
 */
export function attestationError(
  check: AttestationCheck,
  reason: string,
  details: Record<string, unknown> = {},
  cause?: unknown,
): GeofenceError {
  return new GeofenceError('attestation', 'Attestation evidence rejected', {
    details: { check, reason, ...details },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** `request_validation` (400) for bodies that do not match the schema. */
export function requestError(reason: string, issues?: unknown): GeofenceError {
  return new GeofenceError('request_validation', 'Invalid payload structure', {
    details: { reason, ...(issues === undefined ? {} : { issues }) },
  });
}
