import { collector, errorHandler, forward, gateway, nonce } from './express.js';
import { geofenceFastify } from './fastify.js';

/**
 * Framework integrations: `geofence.express.{collector, gateway, nonce, forward, errorHandler}` and
 * the Fastify plugin `geofence.fastify`.
 * @public
 */
export const geofence = Object.freeze({
  /** Express middleware factories. */
  express: Object.freeze({ collector, gateway, nonce, forward, errorHandler }),
  /** Fastify plugin. */
  fastify: geofenceFastify,
});
