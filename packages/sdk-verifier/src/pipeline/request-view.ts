import type { HttpMessage } from '@geofence/http-sig';
import { WORKLOAD_GEO_ID_HEADER } from '@geofence/protocol';
import { GeofenceError } from '../errors.js';
import type { VerifierRequest } from './types.js';

/** A header field by lowercase name, from any header shape a framework hands us. */
export function header(req: VerifierRequest, name: string): string | string[] | undefined {
  const h = req.headers;
  if (typeof Headers !== 'undefined' && h instanceof Headers) return h.get(name) ?? undefined;
  const rec = h as Record<string, string | string[] | undefined>;
  const direct = rec[name];
  if (direct !== undefined) return direct;
  for (const key in rec) {
    if (key.length === name.length && key.toLowerCase() === name && Object.hasOwn(rec, key)) return rec[key];
  }
  return undefined;
}

/** Header fields an accepted record keeps (SPEC §6.3 profile): enough to re-verify it offline. */
const KEPT_HEADERS = [
  'content-type',
  'content-digest',
  WORKLOAD_GEO_ID_HEADER,
  'signature-input',
  'signature',
];

/** The header fields an accepted record keeps (enough to re-verify it offline). */
export function keptHeaders(req: VerifierRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const v = joinedHeader(req, name);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** A header that must appear at most once; more than one line is ambiguous → 400. */
export function singleHeader(req: VerifierRequest, name: string): string | undefined {
  const v = header(req, name);
  if (v === undefined) return undefined;
  if (Array.isArray(v)) {
    if (v.length === 0) return undefined;
    if (v.length > 1) throw bad(`Duplicate ${name} header`);
    return v[0];
  }
  return v;
}

/** A header as one value, repeated lines joined with ", " (RFC 9110 §5.3). */
export function joinedHeader(req: VerifierRequest, name: string): string | undefined {
  const v = header(req, name);
  if (v === undefined) return undefined;
  return Array.isArray(v) ? (v.length ? v.join(', ') : undefined) : v;
}

/** A `request_validation` error (400 unless `status` says otherwise). */
export function bad(error: string, details?: Record<string, unknown>, status?: number): GeofenceError {
  return new GeofenceError('request_validation', error, {
    ...(details ? { details } : {}),
    ...(status ? { status } : {}),
  });
}

/** Whether the request carries either RFC 9421 header. */
export function hasSignatureHeaders(req: VerifierRequest): boolean {
  return header(req, 'signature') !== undefined || header(req, 'signature-input') !== undefined;
}

/** The request as http-sig sees it. */
export function httpMessage(req: VerifierRequest): HttpMessage {
  return { method: req.method, url: req.url, headers: req.headers };
}

/** Map an http-sig failure to the aligned model. Errors from our own callbacks pass through. */
