/**
 * The one rule of what an enforcing gateway removes before forwarding, used by every forwarder and
 * adapter (Express, Fastify, the reference gateway).
 */
import type { IncomingMessage } from 'node:http';

/** Headers an enforcing gateway removes from `POST /metrics` before forwarding (SPEC §6.4). */
const GATEWAY_STRIPPED_HEADERS: readonly string[] = Object.freeze([
  'signature',
  'signature-input',
  'workload-geo-id',
]);

const NOTHING_STRIPPED: readonly string[] = Object.freeze([]);

/**
 * What an enforcing gateway removes before forwarding a request: the signature headers of
 * `POST /metrics` (SPEC §6.4), and nothing else. A signed `GET /nonce` keeps its signature (SPEC
 * §16): the collector needs it to issue from the agent's authenticated pool, which anonymous callers
 * cannot evict; stripping it would put every nonce in the anonymous pool.
 * @public
 */
export function headersStrippedByGateway(method: string, path: string): readonly string[] {
  const bare = path.split('?', 1)[0]!.replace(/\/+$/, '');
  return method.toUpperCase() === 'POST' && bare.endsWith('/metrics')
    ? GATEWAY_STRIPPED_HEADERS
    : NOTHING_STRIPPED;
}

/** Remove what {@link headersStrippedByGateway} names for `req` (parsed and raw header forms). */
export function stripGatewayHeaders(req: IncomingMessage, path: string): void {
  const names = headersStrippedByGateway(req.method ?? 'GET', path);
  if (names.length === 0) return;
  for (const h of names) delete req.headers[h];
  const raw = req.rawHeaders;
  for (let i = raw.length - 2; i >= 0; i -= 2) {
    if (names.includes(raw[i]!.toLowerCase())) raw.splice(i, 2);
  }
}
