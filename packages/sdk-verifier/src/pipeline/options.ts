import {
  DEFAULT_BODY_LIMIT_BYTES,
  DEFAULT_CLOCK_SKEW_SECONDS,
  DEFAULT_NONCE_MAX_OUTSTANDING,
  MAX_SIGNATURE_VALIDITY_SECONDS,
} from '@geofence/protocol';
import { evaluateGeoPolicy } from '../geo.js';
import { resolveMaxSpeed } from '../plausibility.js';
import type { CollectorOptions, GatewayOptions, NonceEndpointOptions, VerifierBaseOptions } from './types.js';

/** Options of a role, validated and defaulted once, when its verifier is built (see {@link resolveBase}). */
export interface Resolved {
  /** Largest `count` of a nonce batch (nonce role only). */
  maxNonceBatch: number;
  skewMs: number;
  maxAgeMs: number;
  bodyLimit: number;
  requireGeoPolicy: boolean;
  /** Movement plausibility limit, km/h (collector only; `undefined`: no check). */
  maxSpeedKmh: number | undefined;
  now: () => Date;
}

function positive(name: string, v: number | undefined, dflt: number, allowZero = false): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new TypeError(
      `@geofence/verifier: option ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`,
    );
  }
  return v;
}

/**
 * Validate options and fill defaults; throws TypeError with a clear message. Called once by each
 * role's factory (`createCollector`, …), which keeps the result for its own requests.
 * @internal
 */
export function resolveBase(
  o: Partial<VerifierBaseOptions> & { registry?: unknown; maxSpeedKmh?: number | false },
  role: string,
): Resolved {
  if (o === null || typeof o !== 'object')
    throw new TypeError(`@geofence/verifier ${role}: options object required`);
  const reg = o.registry as Record<string, unknown> | undefined;
  if (!reg || typeof reg.getByKeyid !== 'function' || typeof reg.getByName !== 'function') {
    throw new TypeError(
      `@geofence/verifier ${role}: option registry must be a Registry (SqliteRegistry, JsonFileRegistry, ...)`,
    );
  }
  const r: Resolved = {
    skewMs: positive('clockSkewSeconds', o.clockSkewSeconds, DEFAULT_CLOCK_SKEW_SECONDS, true) * 1000,
    maxAgeMs: positive('maxMessageAgeSeconds', o.maxMessageAgeSeconds, MAX_SIGNATURE_VALIDITY_SECONDS) * 1000,
    bodyLimit: positive('bodyLimit', o.bodyLimit, DEFAULT_BODY_LIMIT_BYTES),
    requireGeoPolicy: o.requireGeoPolicy ?? true,
    maxNonceBatch: DEFAULT_NONCE_MAX_OUTSTANDING,
    maxSpeedKmh: undefined,
    now: o.now ?? (() => new Date()),
  };
  if (role === 'collector') {
    try {
      r.maxSpeedKmh = resolveMaxSpeed(o.maxSpeedKmh);
    } catch (err) {
      throw new TypeError(`@geofence/verifier ${role}: option ${(err as Error).message}`);
    }
  }
  if (o.now !== undefined && typeof o.now !== 'function')
    throw new TypeError(`@geofence/verifier ${role}: option now must be a function`);
  if (o.geoPolicy !== undefined) {
    try {
      evaluateGeoPolicy(o.geoPolicy, {});
    } catch (err) {
      throw new TypeError(
        `@geofence/verifier ${role}: option geoPolicy is invalid: ${(err as Error).message}`,
      );
    }
  }
  return r;
}

function checkNonceStore(o: { nonces?: unknown }, role: string): void {
  const n = o.nonces as Record<string, unknown> | undefined;
  if (!n || typeof n.issue !== 'function' || typeof n.consume !== 'function') {
    throw new TypeError(
      `@geofence/verifier ${role}: option nonces must be a NonceStore (MemoryNonceStore, ...)`,
    );
  }
}

/**
 * Validate collector options (throws TypeError with a clear message) and return them resolved.
 * @internal
 */
export function resolveCollectorOptions(o: CollectorOptions): Resolved {
  const r = resolveBase(o, 'collector');
  checkNonceStore(o, 'collector');
  if (o.onAccept !== undefined && typeof o.onAccept !== 'function') {
    throw new TypeError(
      '@geofence/verifier collector: option onAccept must be a function returning the record id',
    );
  }
  return r;
}

/**
 * Validate gateway options (throws TypeError with a clear message) and return them resolved.
 * @internal
 */
export function resolveGatewayOptions(o: GatewayOptions): Resolved {
  const r = resolveBase(o, 'gateway');
  // The collector behind decides how many nonces one request may have; the gateway checks only form.
  r.maxNonceBatch = 1000;
  for (const k of ['validatePublicKeyHash', 'validateSignature', 'validateGeolocation'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean')
      throw new TypeError(`@geofence/verifier gateway: option ${k} must be a boolean`);
  }
  return r;
}

/**
 * Validate `GET /nonce` options (throws TypeError with a clear message) and return them resolved.
 * @internal
 */
export function resolveNonceOptions(o: NonceEndpointOptions): Resolved {
  const r = resolveBase(o, 'nonce');
  checkNonceStore(o, 'nonce');
  const max = o.maxNonceBatch;
  if (max !== undefined && (!Number.isInteger(max) || max < 1 || max > 1000)) {
    throw new TypeError('@geofence/verifier nonce: option maxNonceBatch must be an integer in 1..1000');
  }
  r.maxNonceBatch = max ?? DEFAULT_NONCE_MAX_OUTSTANDING;
  return r;
}

/**
 * Validate collector options (throws TypeError with a clear message).
 * @public
 */
export function validateCollectorOptions(o: CollectorOptions): void {
  resolveCollectorOptions(o);
}

/**
 * Validate gateway options (throws TypeError with a clear message).
 * @public
 */
export function validateGatewayOptions(o: GatewayOptions): void {
  resolveGatewayOptions(o);
}

/**
 * Validate `GET /nonce` options (throws TypeError with a clear message).
 * @public
 */
export function validateNonceOptions(o: NonceEndpointOptions): void {
  resolveNonceOptions(o);
}
