/**
 * Express and Fastify wiring of the attestation endpoints over the HTTP kit's endpoints
 * (kit/endpoints.ts). Both adapters are typed structurally (no import of either framework); the
 * Express one reads the body with the kit's one body reader, the Fastify one takes Fastify's bytes.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RejectedBy } from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import { type HttpAnswer, problemAnswer, writeAnswer } from '../kit/answer.js';
import { createAttestationEndpoints, type Endpoint } from '../kit/endpoints.js';
import { type KitIncomingMessage, runEndpoint } from '../kit/node.js';
import { requestIdOf } from '../request-id.js';
import {
  ATTESTATION_PATHS,
  type AttestationHandlers,
  type AttestationHandlersOptions,
  createAttestationHandlers,
} from './http.js';
import type { AttestationResultSigner } from './result.js';

/**
 * The part of an Express request the adapter uses (Express 4/5 requests satisfy it).
 * @public
 */
export type ExpressLikeRequest = IncomingMessage & {
  body?: unknown;
  params?: Record<string, string | undefined>;
};

/**
 * An Express-style handler.
 * @public
 */
export type ExpressLikeHandler = (
  req: ExpressLikeRequest,
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void;

/**
 * Express handlers for the four endpoints, for apps that mount them themselves.
 * @public
 */
export function attestationExpressHandlers(
  handlersOrOptions: AttestationHandlers | AttestationHandlersOptions,
  rejectedBy: RejectedBy = 'collector',
): {
  enroll: ExpressLikeHandler;
  complete: ExpressLikeHandler;
  location: ExpressLikeHandler;
  jwks: ExpressLikeHandler;
} {
  const e = createAttestationEndpoints(handlersOrOptions, rejectedBy);
  const route =
    (endpoint: Endpoint): ExpressLikeHandler =>
    (req, res, next) => {
      runEndpoint(endpoint, req as KitIncomingMessage, res).catch(next);
    };
  return {
    enroll: route(e.enroll),
    complete: route(e.complete),
    location: route(e.location),
    jwks: route(e.jwks),
  };
}

/**
 * A Node/Express handler serving the collector's JWKS (`GET /.well-known/jwks.json`).
 * @public
 */
export function jwksHandler(signer: Pick<AttestationResultSigner, 'jwks'>): ExpressLikeHandler {
  return (_req, res) => {
    writeAnswer(
      res,
      {
        status: 200,
        headers: { 'content-type': 'application/jwk-set+json', 'cache-control': 'public, max-age=300' },
        body: signer.jwks(),
      },
      requestIdOf(res),
    );
  };
}

/**
 * Anything with Express-style `get`/`post` route registration (an `express()` app or `Router()`).
 * @public
 */
export interface ExpressLikeApp {
  get(path: string, handler: ExpressLikeHandler): unknown;
  post(path: string, handler: ExpressLikeHandler): unknown;
}

/**
 * Mounts `POST /enroll`, `POST /enroll/:id/complete`, `POST /attest/location` and
 * `GET /.well-known/jwks.json` on an Express app or router.
 *
 * @example
 * ```ts
 * mountAttestationExpress(app, { enrollment, location, signer });
 * ```
 * @public
 */
export function mountAttestationExpress(
  app: ExpressLikeApp,
  handlersOrOptions: AttestationHandlers | AttestationHandlersOptions,
  rejectedBy: RejectedBy = 'collector',
): void {
  const e = attestationExpressHandlers(handlersOrOptions, rejectedBy);
  app.post(ATTESTATION_PATHS.enroll, e.enroll);
  app.post(ATTESTATION_PATHS.complete, e.complete);
  app.post(ATTESTATION_PATHS.location, e.location);
  app.get(ATTESTATION_PATHS.jwks, e.jwks);
}

/**
 * The part of a Fastify request the plugin uses.
 * @public
 */
export interface FastifyLikeRequest {
  /** Raw body bytes (the plugin installs a buffer parser). */
  body: unknown;
  /** Route parameters. */
  params: unknown;
  /** Request headers. */
  headers: Record<string, string | string[] | undefined>;
  /** Fastify request id. */
  id?: string;
}

/**
 * The part of a Fastify reply the plugin uses.
 * @public
 */
export interface FastifyLikeReply {
  code(status: number): FastifyLikeReply;
  header(name: string, value: string): FastifyLikeReply;
  send(payload?: unknown): FastifyLikeReply;
}

/**
 * The part of a Fastify instance the plugin uses (a real `FastifyInstance` satisfies it).
 * @public
 */
export interface FastifyLikeInstance {
  removeAllContentTypeParsers(): void;
  addContentTypeParser(
    contentType: string,
    opts: { parseAs: 'buffer'; bodyLimit?: number },
    parser: (req: unknown, body: Buffer, done: (err: Error | null, body?: unknown) => void) => void,
  ): unknown;
  setErrorHandler(
    handler: (error: unknown, req: FastifyLikeRequest, reply: FastifyLikeReply) => unknown,
  ): unknown;
  post(
    path: string,
    handler: (req: FastifyLikeRequest, reply: FastifyLikeReply) => Promise<unknown>,
  ): unknown;
  get(path: string, handler: (req: FastifyLikeRequest, reply: FastifyLikeReply) => Promise<unknown>): unknown;
}

function reply(r: FastifyLikeReply, res: HttpAnswer): FastifyLikeReply {
  r.code(res.status);
  for (const [k, v] of Object.entries(res.headers)) r.header(k, v);
  return r.send(JSON.stringify(res.body));
}

/**
 * Options of {@link attestationFastifyPlugin}.
 * @public
 */
export type AttestationFastifyOptions = AttestationHandlersOptions & { handlers?: AttestationHandlers };

/**
 * Fastify plugin serving the four attestation endpoints. Register it without `fastify-plugin`
 * wrapping (it is encapsulated: it replaces the body parsers only inside its own scope, to read raw
 * bodies and answer parse errors as problems).
 *
 * @example
 * ```ts
 * await app.register(attestationFastifyPlugin, { enrollment, location, signer });
 * ```
 * @public
 */
export async function attestationFastifyPlugin(
  fastify: FastifyLikeInstance,
  options: AttestationFastifyOptions,
): Promise<void> {
  const h = options.handlers ?? createAttestationHandlers(options);
  const rejectedBy = options.rejectedBy ?? 'collector';
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: h.bodyLimitBytes }, (_req, body, done) =>
    done(null, body),
  );
  fastify.setErrorHandler((error, req, r) => {
    const requestId = req.id;
    const status = (error as { statusCode?: unknown } | null)?.statusCode;
    const ge =
      error instanceof GeofenceError
        ? error
        : status === 413
          ? new GeofenceError('request_validation', 'Request body too large', { status: 413 })
          : status === 415
            ? new GeofenceError('request_validation', 'Content-Type must be application/json', {
                status: 415,
              })
            : typeof status === 'number' && status >= 400 && status < 500
              ? new GeofenceError('request_validation', 'Invalid request')
              : GeofenceError.from(error);
    reply(r, problemAnswer(ge, rejectedBy, requestId ?? randomUUID()));
  });
  const e = createAttestationEndpoints(h, rejectedBy);
  const route = (endpoint: Endpoint) => async (req: FastifyLikeRequest, r: FastifyLikeReply) => {
    const id = (req.params as { id?: unknown } | undefined)?.id;
    const result = await endpoint.handle({
      method: 'POST',
      url: '',
      headers: req.headers,
      requestId: req.id ?? randomUUID(),
      ...(req.body instanceof Uint8Array ? { rawBody: req.body } : {}),
      ...(typeof id === 'string' ? { params: { id } } : {}),
    });
    // Attestation endpoints always answer (only the gateway endpoint forwards).
    if (result.kind === 'answer') return reply(r, result.answer);
    return r;
  };
  fastify.post(ATTESTATION_PATHS.enroll, route(e.enroll));
  fastify.post(ATTESTATION_PATHS.complete, route(e.complete));
  fastify.post(ATTESTATION_PATHS.location, route(e.location));
  fastify.get(ATTESTATION_PATHS.jwks, route(e.jwks));
}
