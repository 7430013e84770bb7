/**
 * Agent side of attestation: enrolment (Proof of Residency) and V-PEA location attestation (Proof of
 * Geofencing). `createAgent().enroll()` / `.attestLocation()` call these.
 */
export {
  type AttestationPost,
  type EnrollmentTpm,
  type PerformEnrollmentOptions,
  pcrValuesToJson,
  performEnrollment,
  type StoredEnrollment,
} from './enroll.js';
export { AttestationClientError, type AttestationClientErrorCode } from './errors.js';
export {
  type LocationAttestationOutcome,
  type LocationToSeal,
  type LocationTpm,
  type PerformLocationAttestationOptions,
  performLocationAttestation,
} from './location.js';
export { sensorInfoFromIdentity } from './sensor.js';
export { ensureWorkloadPcr, measureWorkload, type PcrTpm, type WorkloadIdentity } from './workload.js';
