/**
 * Attestation: enrolment (Proof of Residency, SPEC §4) and location attestation (Proof of
 * Geofencing, V-PEA `lah-bundle`, SPEC §5.4), attestation results and HTTP wiring. The wire
 * schemas, response bodies and byte-exact evidence constructions are in `@geofence/protocol`.
 */
export {
  type AttestationFastifyOptions,
  attestationExpressHandlers,
  attestationFastifyPlugin,
  type ExpressLikeApp,
  type ExpressLikeHandler,
  type ExpressLikeRequest,
  type FastifyLikeInstance,
  type FastifyLikeReply,
  type FastifyLikeRequest,
  jwksHandler,
  mountAttestationExpress,
} from './adapters.js';
export { type EkCertificateInfo, type EkTrustAnchors, loadEkCaBundle, verifyEkCertificate } from './ek.js';
export {
  type EnrollmentPolicy,
  EnrollmentService,
  type EnrollmentServiceOptions,
  type PreRegisteredAgent,
} from './enrollment.js';
export { type AttestationCheck, attestationError } from './errors.js';
export {
  ATTESTATION_PATHS,
  type AttestationHandlers,
  type AttestationHandlersOptions,
  type AttestationHttpRequest,
  createAttestationHandlers,
} from './http.js';
export { appraiseLocationBundle, type LocationAppraisalContext } from './location.js';
export {
  MemoryPendingEnrollmentStore,
  type PendingEnrollmentRecord,
  type PendingEnrollmentStore,
  type TakeResult,
} from './pending.js';
export {
  type PcrBank,
  type PcrReferenceValues,
  type PlatformPolicy,
  requiredPcrSelection,
  validatePlatformPolicy,
} from './policy.js';
export {
  ATTESTATION_RESULT_TYP,
  type AttestationResultPayload,
  AttestationResultSigner,
  type AttestationResultSignerOptions,
  type GeofenceResultClaim,
  type Jwks,
  jwkThumbprint,
  type ResidencyArea,
  type TrustLevel,
  type VerifyAttestationResultOptions,
  verifyAttestationResult,
} from './result.js';
export {
  decodeClaimsExtension,
  encodeClaimsExtension,
  loadPogCaCertificates,
  PogCertificateAuthority,
  type PogCertificateAuthorityOptions,
  PogCertificateError,
  type VerifiedPogCertificate,
  verifyPogCertificate,
} from './x509.js';
