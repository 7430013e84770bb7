import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { HttpMessage } from './types.js';

/**
 * Overrides for {@link messageFromIncoming} when the server sits behind a proxy/gateway.
 *
 * @public
 */
export interface IncomingOptions {
  /** Scheme of the original request. Default: `https` on a TLS socket, else `http`. */
  scheme?: string;
  /** Authority (`host[:port]`) of the original request. Default: the `Host` header (HTTP/2: `:authority`). */
  authority?: string;
}

/**
 * Builds an {@link HttpMessage} from a Node `IncomingMessage` and its raw body bytes.
 *
 * Header field lines are taken from `headersDistinct`, so repeated fields stay separate lines (needed for the
 * `bs` parameter). Forwarding headers (`X-Forwarded-*`, `Forwarded`) are deliberately not trusted; pass
 * `scheme`/`authority` explicitly when a trusted proxy rewrote them.
 *
 * @public
 */
export function messageFromIncoming(
  req: IncomingMessage,
  rawBody?: Uint8Array,
  options: IncomingOptions = {},
): HttpMessage {
  const target = req.url ?? '/';
  const scheme =
    options.scheme ?? ((req.socket as TLSSocket | undefined)?.encrypted === true ? 'https' : 'http');
  const hostHeader = req.headers[':authority'] ?? req.headers.host;
  const authority = options.authority ?? (typeof hostHeader === 'string' ? hostHeader : undefined);
  let url: string;
  if (!target.startsWith('/')) {
    url = target; // absolute-form (proxy requests) or asterisk-form
  } else if (authority !== undefined && authority !== '') {
    url = `${scheme}://${authority}${target}`;
  } else {
    url = target; // HTTP/1.0 without Host: @authority/@scheme/@target-uri are unavailable
  }
  const message: HttpMessage = { method: req.method ?? 'GET', url, headers: req.headersDistinct };
  if (rawBody !== undefined) message.body = rawBody;
  return message;
}

/**
 * Builds an {@link HttpMessage} from a fetch/undici `Request`. The body is read from a clone, so the
 * request stays readable. Note that `Headers` joins repeated fields into one line.
 *
 * @public
 */
export async function messageFromFetchRequest(req: Request): Promise<HttpMessage> {
  const message: HttpMessage = { method: req.method, url: req.url, headers: req.headers };
  if (req.body !== null) message.body = new Uint8Array(await req.clone().arrayBuffer());
  return message;
}
