/**
 * Edge agent SDK: TPM-signed, geofenced metrics with createAgent().send(metrics), enrolment, location providers, durable outbox, OpenTelemetry exporter, and agent.fetch() with Proof-of-Geofencing credentials.
 *
 * @packageDocumentation
 * @module @geofence/agent
 */

export {
  Agent,
  type AgentAttestLocationOptions,
  type AgentEnrollOptions,
  type AgentStatusReport,
  createAgent,
} from './agent.js';
export * from './attestation/index.js';
export type { SendResult } from './delivery-queue.js';
export {
  AgentClosedError,
  AgentError,
  type AgentErrorCode,
  AgentOptionsError,
  CredentialRefusedError,
  DeliveryDeferredError,
  DeliveryError,
  DeliveryUncertainError,
  GeofenceRejection,
  OutboxFullError,
} from './errors.js';
export type { AgentIdentity, AgentTimings } from './identity.js';
export { builtinReverseGeocode, labelPoint, lookupRegion, type RegionBox } from './location/geocode.js';
export { type GpsdLocationOptions, gpsdLocation, sensorIdHash } from './location/gpsd.js';
export { type StaticLocationOptions, staticLocation } from './location/static.js';
export {
  type LocationObservation,
  type LocationProvider,
  type NoLocationCode,
  NoLocationError,
  type SensorIdentity,
} from './location/types.js';
export {
  asciiJson,
  buildMetricsRequest,
  type MetricsRequestInput,
  type SignedMetricsRequest,
  workloadGeoId,
} from './message.js';
export type { AgentLogger, AgentOptions, CredentialOptions, MnoLocationSource } from './options.js';
export { GeofenceMetricExporter, type GeofenceMetricExporterOptions, metricSets } from './otel.js';
export { OutboxLockedError } from './outbox.js';
export { backoffDelay, DEFAULT_RETRY, type RetryPolicy } from './retry.js';
export {
  AgentState,
  AgentStateError,
  type AgentStateErrorCode,
  type AppKeyAlgorithm,
  type AppKeyTpm,
  defaultStateDir,
  type StoredTpmKey,
} from './state.js';
export { RetriableError, type TlsOptions } from './transport.js';
