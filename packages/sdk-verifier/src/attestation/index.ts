/**
 * Attestation: enrolment (Proof of Residency, SPEC §4) and location attestation (Proof of
 * Geofencing, V-PEA `lah-bundle`, SPEC §5.4), attestation results and HTTP wiring.
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
  type EnrollCompleteResponse,
  type EnrollmentPolicy,
  EnrollmentService,
  type EnrollmentServiceOptions,
  type EnrollStartResponse,
  type PreRegisteredAgent,
} from './enrollment.js';
export { type AttestationCheck, attestationError } from './errors.js';
export {
  decodeQuoteSeal,
  encodeQuoteSeal,
  enrollmentQualifyingData,
  type GeolocationPayload,
  geolocationIdHash,
  geolocationProofHash,
  type LahSealedFields,
  lahQualifyingData,
  sensorIdentifierBytes,
} from './evidence.js';
export {
  ATTESTATION_PATHS,
  type AttestationHandlers,
  type AttestationHandlersOptions,
  type AttestationHttpRequest,
  type AttestationHttpResponse,
  createAttestationHandlers,
} from './http.js';
export {
  appraiseLocationBundle,
  type LocationAppraisalContext,
  type LocationAttestationResponse,
} from './location.js';
export {
  MemoryPendingEnrollmentStore,
  type PendingEnrollmentRecord,
  type PendingEnrollmentStore,
  type TakeResult,
} from './pending.js';
export {
  expectedWorkloadPcr,
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
  type TrustLevel,
  type VerifyAttestationResultOptions,
  verifyAttestationResult,
} from './result.js';
export {
  type EnrollCompleteRequest,
  type EnrollRequest,
  enrollCompleteSchema,
  enrollRequestSchema,
  type LahBundle,
  type LocationAttestationRequest,
  lahBundleSchema,
  locationAttestationRequestSchema,
  type PcrValuesJson,
  pcrValuesSchema,
  rawGeolocationPayloadSchema,
  type SensorInfo,
  sensorInfoSchema,
} from './schemas.js';
