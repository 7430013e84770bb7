/**
 * Verify TPM-signed, geofenced edge data: registry, nonce stores, geo policy, aligned errors, attestation appraisal, Express middleware.
 * The Fastify plugin is the subpath `@geofence/verifier/fastify`.
 *
 * @packageDocumentation
 * @module @geofence/verifier
 */

export * from './attestation/index.js';
export * from './errors.js';
export * from './geo.js';
export { BUILTIN_REGION_TABLE, builtinReverseGeocode, lookupRegion, type RegionBox } from './geocode.js';
export { readBody } from './middleware/body.js';
export { headersStrippedByGateway, type MiddlewareOptions } from './middleware/common.js';
export type {
  ExpressCollectorOptions,
  ExpressGatewayOptions,
  ExpressNonceOptions,
  ForwardOptions,
  GeofenceHandler,
  GeofenceIncomingMessage,
} from './middleware/express.js';
export { type GeofenceExpress, type GeofenceIntegrations, geofence } from './middleware/index.js';
export { createMemoryRecordSink, type MemoryRecordSink } from './pipeline/records.js';
export type {
  AcceptedRecord,
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
  issueNonce,
  validateCollectorOptions,
  validateGatewayOptions,
  validateNonceOptions,
  verifyAtGateway,
  verifyMetrics,
} from './pipeline/verify.js';
export * from './protocol.js';
export { JsonFileRegistry, type JsonFileRegistryOptions } from './storage/json-registry.js';
export { MemoryNonceStore } from './storage/memory-nonce-store.js';
export {
  generateNonce,
  type IssuedNonce,
  type NonceConsumeResult,
  type NonceIssueOptions,
  type NonceStore,
  type NonceStoreOptions,
  type NonceStoreStats,
} from './storage/nonce-store.js';
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
