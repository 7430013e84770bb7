/**
 * Verify TPM-signed, geofenced edge data: registry, nonce stores, geo policy, aligned errors, attestation appraisal, Express middleware.
 * The Fastify plugin is the subpath `@geofence/verifier/fastify`.
 *
 * @packageDocumentation
 * @module @geofence/verifier
 */

// The wire contract (payload, signatures, problems, attestation bodies, region table) is defined in
// @geofence/protocol; re-exported here so verifier users need one import.
export {
  agentNameSchema,
  builtinReverseGeocode,
  caseFold,
  DEFAULT_BODY_LIMIT_BYTES,
  DEFAULT_CLOCK_SKEW_SECONDS,
  DEFAULT_NONCE_MAX_OUTSTANDING,
  DEFAULT_NONCE_TTL_SECONDS,
  decodeBase64url,
  decodeQuoteSeal,
  type EnrollCompleteRequest,
  type EnrollCompleteResponse,
  type EnrollRequest,
  type EnrollStartResponse,
  encodeBase64url,
  encodeQuoteSeal,
  enrollCompleteSchema,
  enrollmentQualifyingData,
  enrollRequestSchema,
  expectedWorkloadPcr,
  findRegion,
  findState,
  foldPlaceName,
  type GeographicRegion,
  type GeolocationPayload,
  geographicRegionSchema,
  geolocationIdHash,
  geolocationProofHash,
  hasDuplicateJsonKeys,
  hasSubdivisions,
  isProblem,
  isValidationType,
  jcs,
  keyidSchema,
  type LahBundle,
  type LahSealedFields,
  LOCATION_QUALITIES,
  type LocationAttestationRequest,
  type LocationAttestationResponse,
  type LocationQuality,
  type LocationReading,
  labelPoint,
  lahBundleSchema,
  lahQualifyingData,
  locationAttestationRequestSchema,
  locationReadingSchema,
  lookupRegion,
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
  type PcrValuesJson,
  PLACE_DATA_SOURCES,
  type Place,
  PROBLEM_CONTENT_TYPE,
  type Problem,
  payloadSigningInput,
  pcrValuesSchema,
  placeAt,
  placeContainsCircle,
  placeContainsPoint,
  placeExcludesCircle,
  placeLineage,
  placeOutline,
  problemTypeUri,
  type RegionBox,
  type RejectedBy,
  rawGeolocationPayloadSchema,
  type SensorInfo,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
  sensorIdentifierBytes,
  sensorInfoSchema,
  signPayload,
  type UnsignedMetricsPayload,
  VALIDATION_TYPE_INFO,
  VALIDATION_TYPES,
  type ValidationType,
  verifyPayloadSignature,
  WORKLOAD_GEO_ID_HEADER,
  type WorkloadGeoId,
  workloadGeoIdSchema,
} from '@geofence/protocol';
export * from './attestation/index.js';
export { GeofenceError, type GeofenceErrorOptions, geofenceErrorFromProblem } from './errors.js';
export {
  compileGeoPolicy,
  DEFAULT_MIN_QUALITY,
  evaluateGeoPolicy,
  type FenceRef,
  type GeoCheck,
  type GeoDecision,
  type GeoFence,
  type GeoMatch,
  type GeoObservation,
  type GeoPolicy,
  geoAllowEntrySchema,
  geoFenceSchema,
  geoPolicyRestricts,
  geoPolicySchema,
} from './geo.js';
export { type HttpAnswer, jsonAnswer, problemAnswer, sendProblem, writeAnswer } from './kit/answer.js';
export { readBody } from './kit/body.js';
export {
  type AttestationEndpoints,
  createAttestationEndpoints,
  createGatewayEndpoint,
  createMetricsEndpoint,
  createNonceEndpoint,
  type Endpoint,
  type EndpointRequest,
  type EndpointResult,
} from './kit/endpoints.js';
export {
  createForwarder,
  FORWARDED_REQUEST_HEADERS,
  type ForwardedAnswer,
  type Forwarder,
  type ForwarderOptions,
  type ForwarderState,
  type ForwardRequest,
} from './kit/forwarder.js';
export { headersStrippedByGateway } from './kit/gateway-headers.js';
export { bodyOf, type KitIncomingMessage, runEndpoint } from './kit/node.js';
export type { MiddlewareOptions } from './middleware/common.js';
export type {
  ExpressCollectorOptions,
  ExpressGatewayOptions,
  ExpressNonceOptions,
  ForwardOptions,
  GeofenceHandler,
  GeofenceIncomingMessage,
} from './middleware/express.js';
export { type GeofenceExpress, type GeofenceIntegrations, geofence } from './middleware/index.js';
export {
  validateCollectorOptions,
  validateGatewayOptions,
  validateNonceOptions,
} from './pipeline/options.js';
export {
  type RecordCheck,
  type RecordReverification,
  reverifyRecord,
  type StoredMetricsRequest,
} from './pipeline/reverify.js';
export type {
  CollectorOptions,
  GatewayOptions,
  GatewayVerdict,
  MetricsVerdict,
  NonceEndpointOptions,
  NonceVerdict,
  RecordSink,
  VerifierBaseOptions,
  VerifierRequest,
} from './pipeline/types.js';
export {
  type CollectorVerifier,
  createCollectorVerifier,
  createGatewayVerifier,
  createNonceIssuer,
  type GatewayVerifier,
  issueNonce,
  type NonceIssuer,
  verifyAtGateway,
  verifyMetrics,
} from './pipeline/verify.js';
export {
  assessMovement,
  checkMovement,
  DEFAULT_MAX_SPEED_KMH,
  greatCircleMetres,
  type MovementAssessment,
  positionRetentionSeconds,
  resolveMaxSpeed,
} from './plausibility.js';
export { clientRequestIdOf, requestIdOf } from './request-id.js';
export type { CredentialTrust, VerifiedCredential } from './resource/credential.js';
export {
  type AdmittedRequest,
  createGeofenceGuard,
  type GeofenceGuard,
  type GeofenceResourcePolicy,
  type GuardRequest,
  type RequireGeofenceOptions,
} from './resource/guard.js';
export { type GeofenceAdmittedMessage, requireGeofence } from './resource/require-geofence.js';
export { JsonFileRegistry, type JsonFileRegistryOptions } from './storage/json-registry.js';
export { MemoryNonceStore } from './storage/memory-nonce-store.js';
export { createMemoryRecordSink, type MemoryRecordSink } from './storage/memory-record-store.js';
export {
  type AcceptedPosition,
  generateNonce,
  type IssuedNonce,
  type NonceConsumeResult,
  type NonceIssueOptions,
  type NonceStore,
  type NonceStoreOptions,
  type NonceStoreStats,
} from './storage/nonce-store.js';
export {
  PostgresDatabase,
  type PostgresOptions,
  type PostgresQuery,
  type PostgresRows,
  type PostgresSubscription,
  urlWithoutPassword,
} from './storage/postgres.js';
export { PostgresPendingEnrollmentStore } from './storage/postgres-pending-store.js';
export { PostgresRecordStore } from './storage/postgres-record-store.js';
export { PostgresRegistry, type PostgresRegistryOptions } from './storage/postgres-registry.js';
export {
  type AcceptedRecord,
  type RecordHttpSignature,
  type RecordPage,
  type RecordQuery,
  type RecordStore,
  type RecordVerdict,
  readRecordVerdict,
  type StoredRecord,
} from './storage/record-store.js';
export { RedisNonceStore, type RedisNonceStoreOptions } from './storage/redis-nonce-store.js';
export {
  AGENT_STATUSES,
  type AgentRecord,
  type AgentRecordInput,
  type AgentStatus,
  agentRecordSchema,
  expectationOf,
  keyidOfPublicKey,
  type Registry,
  RegistryError,
  type RegistryErrorCode,
  type RegistryExpectation,
  recordPublicKey,
  validateAgentRecord,
} from './storage/registry.js';
export { SqliteNonceStore, type SqliteNonceStoreOptions } from './storage/sqlite-nonce-store.js';
export { SqliteRegistry, type SqliteRegistryOptions } from './storage/sqlite-registry.js';
export {
  DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
  isSqliteFault,
  SqliteFaultGuard,
  STORE_RETRY_AFTER_SECONDS,
  type StoreName,
  StoreUnavailableError,
} from './storage/store-fault.js';
