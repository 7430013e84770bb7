/**
 * The wire contract of geofence, shared by the agent and the verifier: payload schema and types, the
 * JCS signing input, payload signing and verification, Workload-Geo-ID, RFC 9421 signature
 * components and labels, the closed `validation_type` set and problem shape, the nonce and
 * attestation bodies, the byte-exact attestation evidence constructions and the region table.
 * Pure TypeScript over `node:crypto`: no I/O, no native code.
 *
 * @packageDocumentation
 * @module @geofence/protocol
 */

export { bytesEqual, fromB64u, fromHex, jcsBytes, sha256, toB64u, toHex } from './attestation/encoding.js';
export {
  decodeQuoteSeal,
  encodeQuoteSeal,
  enrollmentQualifyingData,
  type GeolocationPayload,
  geolocationIdHash,
  geolocationProofHash,
  type LahSealedFields,
  lahImageDigest,
  lahQualifyingData,
  sensorIdentifierBytes,
} from './attestation/evidence.js';
export type {
  EnrollCompleteResponse,
  EnrollStartResponse,
  LocationAttestationResponse,
} from './attestation/responses.js';
export {
  type EnrollCompleteRequest,
  type EnrollRequest,
  enrollCompleteSchema,
  enrollRequestSchema,
  type LahBundle,
  type LocationAttestationRequest,
  lahBundleSchema,
  locationAttestationRequestSchema,
  MNO_LOCATION_MEMBER,
  type MnoLocation,
  mnoLocationSchema,
  type PcrValuesJson,
  pcrValuesSchema,
  rawGeolocationPayloadSchema,
  type SensorInfo,
  sensorInfoSchema,
} from './attestation/schemas.js';
export { expectedWorkloadPcr } from './attestation/workload.js';
export { compileSchemaCheck, type SchemaCheck } from './compile-schema.js';
export {
  ATTESTATION_CA_PATH,
  CREDENTIAL_CERTIFICATE_HEADER,
  CREDENTIAL_CERTIFICATE_RESPONSE_MEMBER,
  CREDENTIAL_FORMAT_REQUEST_MEMBER,
  CREDENTIAL_FORMATS,
  CREDENTIAL_HEADER,
  CREDENTIAL_SIGNATURE_COMPONENTS,
  CREDENTIAL_SIGNATURE_LABEL,
  CREDENTIAL_SIGNATURE_TAG,
  CREDENTIAL_X509_EXTENSION_OID,
  type CredentialFormat,
  DEFAULT_CREDENTIAL_LIFETIME_SECONDS,
} from './credential.js';
export { boxContains, builtinReverseGeocode, lookupRegion, type RegionBox } from './geocode.js';
export { hasDuplicateJsonKeys } from './json-duplicates.js';
export { jwkThumbprint } from './jwk-thumbprint.js';
export { caseFold, foldPlaceName } from './places/fold.js';
export {
  type CompiledPolygon,
  circleInside,
  circleOutside,
  compilePolygonList,
  pointInside,
} from './places/polygon.js';
export {
  findRegion,
  findState,
  hasSubdivisions,
  labelPoint,
  PLACE_DATA_SOURCES,
  type Place,
  placeAt,
  placeContainsCircle,
  placeContainsPoint,
  placeExcludesCircle,
  placeLineage,
  placeOutline,
} from './places/table.js';
export {
  isProblem,
  isValidationType,
  PROBLEM_CONTENT_TYPE,
  type Problem,
  problemTypeUri,
  type RejectedBy,
  VALIDATION_TYPE_INFO,
  VALIDATION_TYPE_STATUSES,
  VALIDATION_TYPES,
  type ValidationType,
} from './problem.js';
export {
  agentNameSchema,
  DEFAULT_BODY_LIMIT_BYTES,
  DEFAULT_CLOCK_SKEW_SECONDS,
  DEFAULT_NONCE_MAX_OUTSTANDING,
  DEFAULT_NONCE_TTL_SECONDS,
  decodeBase64url,
  encodeBase64url,
  type GeographicRegion,
  geographicRegionSchema,
  jcs,
  keyidSchema,
  LOCATION_QUALITIES,
  type LocationQuality,
  type LocationReading,
  locationReadingSchema,
  MAX_SIGNATURE_VALIDITY_SECONDS,
  METRICS_SIGNATURE_COMPONENTS,
  type MetricsPayload,
  metricsPayloadSchema,
  NONCE_COUNT_PARAMETER,
  NONCE_SIGNATURE_COMPONENTS,
  type NonceBatchResponse,
  type NonceResponse,
  nonceBatchResponseSchema,
  nonceResponseSchema,
  nonceSchema,
  PAYLOAD_ALGORITHMS,
  PAYLOAD_VERSION,
  type PayloadAlgorithm,
  type PayloadSigner,
  payloadSigningInput,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
  signPayload,
  type UnsignedMetricsPayload,
  verifyPayloadSignature,
  WORKLOAD_GEO_ID_HEADER,
  type WorkloadGeoId,
  workloadGeoIdSchema,
} from './protocol.js';
