import type { ServerResponse } from 'node:http';
import {
  collector,
  type ExpressCollectorOptions,
  type ExpressGatewayOptions,
  type ExpressNonceOptions,
  errorHandler,
  type ForwardOptions,
  forward,
  type GeofenceHandler,
  type GeofenceIncomingMessage,
  gateway,
  nonce,
} from './express.js';

/**
 * Express middleware factories (see the README for complete examples).
 * @public
 */
export interface GeofenceExpress {
  /** `POST /metrics` handler of the collector (answers 200 or a problem). */
  collector(options: ExpressCollectorOptions): GeofenceHandler;
  /** Gateway (policy-enforcement) middleware for `POST /metrics` and `GET /nonce`; calls `next()` on success. */
  gateway(options: ExpressGatewayOptions): GeofenceHandler;
  /** `GET /nonce` handler of the collector. */
  nonce(options: ExpressNonceOptions): GeofenceHandler;
  /** Forwarding handler for the gateway (relays to the collector; 502/504 `upstream` on failure). */
  forward(options: ForwardOptions): GeofenceHandler;
  /** Express error handler rendering thrown errors as problem+json. */
  errorHandler(options?: {
    rejectedBy?: string;
  }): (
    err: unknown,
    req: GeofenceIncomingMessage,
    res: ServerResponse,
    next: (err?: unknown) => void,
  ) => void;
}

/**
 * Framework integrations.
 * @public
 */
export interface GeofenceIntegrations {
  /** Express middleware factories. */
  express: GeofenceExpress;
}

/**
 * Framework integrations: `geofence.express.{collector, gateway, nonce, forward, errorHandler}`. The
 * Fastify plugin is `geofenceFastify` from `@geofence/verifier/fastify` (kept out of the package root so
 * that it carries no Fastify types).
 * @public
 */
export const geofence: GeofenceIntegrations = Object.freeze({
  express: Object.freeze({ collector, gateway, nonce, forward, errorHandler }),
});
