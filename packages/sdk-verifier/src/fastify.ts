/**
 * The Fastify (5) plugin of `@geofence/verifier`: `app.register(geofenceFastify, { collector, nonce })` or
 * `{ gateway: { …, forward } }`. A subpath of its own, so the package root carries no Fastify types and an
 * Express-only TypeScript project compiles without them; importing this entry point needs `fastify` (an
 * optional peer dependency). The option types it refers to (`ExpressCollectorOptions`, `GatewayVerdict`, …)
 * are exported from the package root.
 *
 * @packageDocumentation
 * @module @geofence/verifier/fastify
 */

export { type GeofenceFastifyOptions, geofenceFastify } from './middleware/fastify.js';
export { requireGeofenceFastify } from './resource/fastify.js';
