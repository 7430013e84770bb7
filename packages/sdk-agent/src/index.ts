/**
 * Edge agent SDK: TPM-signed, geofenced metrics with createAgent().send(metrics), enrolment, location providers, durable outbox, OpenTelemetry exporter.
 *
 * @packageDocumentation
 */

export { BUILTIN_REGION_TABLE, lookupRegion, type RegionBox } from './location/geocode.js';
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
  AgentState,
  AgentStateError,
  type AgentStateErrorCode,
  type AppKeyAlgorithm,
  type AppKeyTpm,
  defaultStateDir,
  type StoredTpmKey,
} from './state.js';
