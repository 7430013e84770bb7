import { AgentError } from '../errors.js';
/**
 * Errors of the agent side of attestation. Server refusals are `GeofenceRejection`s (with the
 * problem's `validation_type` and `details.check`); these are the agent's own failures.
 */

/**
 * Stable codes of {@link AttestationClientError}.
 * @public
 */
export type AttestationClientErrorCode =
  | 'not_enrolled'
  | 'no_ek_certificate'
  | 'workload_unmeasurable'
  | 'workload_pcr'
  | 'bad_response';

/**
 * A local failure while enrolling or attesting location.
 * @public
 */
export class AttestationClientError extends AgentError<AttestationClientErrorCode> {
  constructor(code: AttestationClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'AttestationClientError';
  }
}
