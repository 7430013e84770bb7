/**
 * The one request-id rule of every endpoint (Express, Fastify, attestation, the reference server).
 * Our id is ours: a client's `X-Request-Id` is never adopted, or a caller could make its requests
 * carry another request's id in our problems and logs and so confuse an investigation. It is kept,
 * when well formed, as the *client* request id, next to ours.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The request id of this request: the `X-Request-Id` response header when the host application
 * already assigned one, otherwise a new UUID, which is then set on `res` (when given and its headers
 * are not sent yet) so the caller sees it.
 * @public
 */
export function requestIdOf(res?: Pick<ServerResponse, 'getHeader' | 'setHeader' | 'headersSent'>): string {
  const assigned = res?.getHeader('x-request-id');
  if (typeof assigned === 'string' && assigned !== '') return assigned;
  const id = randomUUID();
  if (res && !res.headersSent) res.setHeader('x-request-id', id);
  return id;
}

/**
 * The client's own `X-Request-Id` when well formed (1–128 of `A-Z a-z 0-9 . _ : -`), for logs as
 * `client_request_id`; never used as ours.
 * @public
 */
export function clientRequestIdOf(headers: IncomingHttpHeaders): string | undefined {
  const v = headers['x-request-id'];
  return typeof v === 'string' && CLIENT_REQUEST_ID.test(v) ? v : undefined;
}
