/**
 * Running an {@link Endpoint} on a Node request/response pair — what Express (4 and 5), Connect and
 * plain `node:http` servers share. The body is read here, by the one body reader, only when the
 * endpoint wants it and no earlier layer kept the bytes in `req.rawBody`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GeofenceError } from '../errors.js';
import { requestIdOf } from '../request-id.js';
import { writeAnswer } from './answer.js';
import { readBody } from './body.js';
import type { Endpoint, EndpointRequest, EndpointResult } from './endpoints.js';

/**
 * A Node request as the kit reads it (an Express request satisfies it).
 * @public
 */
export interface KitIncomingMessage extends IncomingMessage {
  /** Express: the URL before mount-path stripping (used for `@path`). */
  originalUrl?: string;
  /** The body bytes exactly as received: set by the kit, honoured when an earlier layer set it. */
  rawBody?: Buffer;
  /** Express route parameters. */
  params?: Record<string, string | undefined>;
}

/**
 * The body of `req` for a handler that reads at most `limit` bytes (0: none): the bytes an earlier
 * layer kept in `req.rawBody`, else read by the one body reader (413 beyond the limit) and kept there.
 * @public
 */
export async function bodyOf(req: KitIncomingMessage, limit: number): Promise<Buffer | undefined> {
  if (limit === 0) return undefined;
  if (Buffer.isBuffer(req.rawBody)) return req.rawBody;
  if (req.readableEnded || (req as { _body?: boolean })._body) {
    // A body parser ran before us and the bytes are gone: verification is impossible.
    throw GeofenceError.from(
      new Error(
        'request body was consumed before the geofence handler; mount it before body parsers or set req.rawBody',
      ),
    );
  }
  req.rawBody = await readBody(req, limit);
  return req.rawBody;
}

/**
 * Run `endpoint` for `req`: reads the body when needed, writes the answer to `res`, and resolves
 * with the endpoint's result (`forward` results are left to the caller; nothing is written then).
 * @public
 */
export async function runEndpoint(
  endpoint: Endpoint,
  req: KitIncomingMessage,
  res: ServerResponse,
): Promise<EndpointResult> {
  const requestId = requestIdOf(res);
  const method = req.method ?? 'GET';
  const view: EndpointRequest = {
    method,
    url: req.originalUrl ?? req.url ?? '/',
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    requestId,
    ...(req.params ? { params: req.params } : {}),
  };
  let result: EndpointResult;
  try {
    const body = await bodyOf(req, endpoint.bodyLimit(method));
    if (body) view.rawBody = body;
    result = await endpoint.handle(view);
  } catch (err) {
    result = { kind: 'answer', answer: endpoint.reject(err, view) };
  }
  if (result.kind === 'answer') writeAnswer(res, result.answer, requestId);
  return result;
}
