/**
 * Verify TPM-signed, geofenced edge data: registry, nonce stores, geo policy, aligned errors, attestation appraisal, Express and Fastify middleware.
 *
 * @packageDocumentation
 */
export * from './errors.js';
export * from './geo.js';
export * from './protocol.js';
