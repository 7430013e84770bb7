/**
 * Edge agent SDK: TPM-signed, geofenced metrics with createAgent().send(metrics), enrolment, location providers, durable outbox, OpenTelemetry exporter.
 *
 * @packageDocumentation
 */
export {
  AgentState,
  AgentStateError,
  type AgentStateErrorCode,
  type AppKeyAlgorithm,
  type AppKeyTpm,
  defaultStateDir,
  type StoredTpmKey,
} from './state.js';
