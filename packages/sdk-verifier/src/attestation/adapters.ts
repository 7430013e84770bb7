/**
 * Express and Fastify wiring of the attestation endpoints. Both adapters are typed structurally
 * (no import of either framework), read the raw body themselves when no body parser ran, and
 * answer every error as `application/problem+json`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RejectedBy } from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import { problemHeaders } from '../problem-headers.js';
import { requestIdOf } from '../request-id.js';
import {
  ATTESTATION_PATHS,
  type AttestationHandlers,
  type AttestationHandlersOptions,
  type AttestationHttpResponse,
  createAttestationHandlers,
} from './http.js';
import type { AttestationResultSigner } from './result.js';

function isHandlers(h: AttestationHandlers | AttestationHandlersOptions): h is AttestationHandlers {
  return typeof (h as Partial<AttestationHandlers>).enroll === 'function';
}

function handlersOf(h: AttestationHandlers | AttestationHandlersOptions): AttestationHandlers {
  return isHandlers(h) ? h : createAttestationHandlers(h);
}

/** Reads a request body up to `limit` bytes; rejects with 413 beyond it. */
export function readRequestBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    // A body parser that ran before us may have consumed the stream already: 'end' will not come.
    if (req.readableEnded) {
      resolve(new Uint8Array(0));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const fail = (err: unknown) => {
      if (done) return;
      done = true;
      reject(err);
    };
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.byteLength;
      if (size > limit) {
        fail(
          new GeofenceError('request_validation', 'Request body too large', {
            status: 413,
            details: { limit_bytes: limit },
          }),
        );
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(new Uint8Array(Buffer.concat(chunks)));
    });
    req.on('error', fail);
  });
}

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

function send(res: ServerResponse, r: AttestationHttpResponse): void {
  res.statusCode = r.status;
  for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
  res.end(JSON.stringify(r.body));
}

async function expressBody(req: ExpressLikeRequest, limit: number): Promise<unknown> {
  // A JSON body parser that ran before us leaves the parsed value; otherwise read the stream.
  if (req.body !== undefined && !(req.body instanceof Uint8Array)) return req.body;
  if (req.body instanceof Uint8Array) return req.body;
  return readRequestBody(req, limit);
}

function problemOf(
  err: unknown,
  rejectedBy: RejectedBy,
  requestId: string | undefined,
): AttestationHttpResponse {
  const ge = GeofenceError.from(err);
  return {
    status: ge.status,
    headers: problemHeaders(ge),
    body: ge.toProblem({ rejectedBy, requestId: requestId ?? crypto.randomUUID() }),
  };
}

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
  const h = handlersOf(handlersOrOptions);
  const wrap =
    (
      fn: (
        req: ExpressLikeRequest,
        body: unknown,
        requestId: string | undefined,
      ) => Promise<AttestationHttpResponse>,
    ) =>
    (req: ExpressLikeRequest, res: ServerResponse, next: (err?: unknown) => void) => {
      const requestId = requestIdOf(res);
      expressBody(req, h.bodyLimitBytes)
        .then((body) => fn(req, body, requestId))
        .catch((err: unknown) => problemOf(err, rejectedBy, requestId))
        .then((r) => send(res, r))
        .catch(next);
    };
  const ct = (req: IncomingMessage) => req.headers['content-type'];
  return {
    enroll: wrap((req, body, requestId) => h.enroll({ body, contentType: ct(req), requestId })),
    complete: wrap((req, body, requestId) =>
      h.completeEnrollment(req.params?.id ?? '', { body, contentType: ct(req), requestId }),
    ),
    location: wrap((req, body, requestId) => h.attestLocation({ body, contentType: ct(req), requestId })),
    jwks: (_req, res) => send(res, h.jwks()),
  };
}

/**
 * A Node/Express handler serving the collector's JWKS (`GET /.well-known/jwks.json`).
 * @public
 */
export function jwksHandler(signer: Pick<AttestationResultSigner, 'jwks'>): ExpressLikeHandler {
  return (_req, res) => {
    send(res, {
      status: 200,
      headers: { 'content-type': 'application/jwk-set+json', 'cache-control': 'public, max-age=300' },
      body: signer.jwks(),
    });
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

function reply(r: FastifyLikeReply, res: AttestationHttpResponse): FastifyLikeReply {
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
    reply(r, problemOf(ge, rejectedBy, requestId));
  });
  const input = (req: FastifyLikeRequest) => {
    const ct = req.headers['content-type'];
    return {
      body: req.body instanceof Uint8Array ? req.body : undefined,
      contentType: typeof ct === 'string' ? ct : undefined,
      requestId: req.id,
    };
  };
  fastify.post(ATTESTATION_PATHS.enroll, async (req, r) => reply(r, await h.enroll(input(req))));
  fastify.post(ATTESTATION_PATHS.complete, async (req, r) => {
    const id = (req.params as { id?: unknown }).id;
    return reply(r, await h.completeEnrollment(typeof id === 'string' ? id : '', input(req)));
  });
  fastify.post(ATTESTATION_PATHS.location, async (req, r) => reply(r, await h.attestLocation(input(req))));
  fastify.get(ATTESTATION_PATHS.jwks, async (_req, r) => reply(r, h.jwks()));
}
