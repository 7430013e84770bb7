/**
 * The response headers of a problem answer, in one place for every adapter (Express, Fastify,
 * attestation handlers), so a `Retry-After` (rate limits, store outages) is never dropped by one of them.
 */
import { PROBLEM_CONTENT_TYPE } from '@geofence/protocol';
import type { GeofenceError } from './errors.js';

/** `content-type`, `cache-control` and, when the error has one, `retry-after` (whole seconds). */
export function problemHeaders(err: GeofenceError): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': PROBLEM_CONTENT_TYPE,
    'cache-control': 'no-store',
  };
  if (err.retryAfter !== undefined) headers['retry-after'] = String(Math.ceil(err.retryAfter));
  return headers;
}
