/**
 * Allocation-free fast paths for the hot schema checks. Each returns true only for inputs the zod
 * schema accepts unchanged (a sound subset, checked by a property test); anything else goes through
 * zod, which stays the definition and produces the error details. zod copies every object it parses
 * (records included), which costs more than the rest of request validation together.
 */
import * as nodeCrypto from 'node:crypto';
import { hasDuplicateJsonKeys, LOCATION_QUALITIES } from '@geofence/protocol';
import { z } from 'zod';

const AGENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const KEYID = /^[0-9a-f]{64}$/;
const NONCE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const SIG = /^[A-Za-z0-9_-]{16,2048}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const isoDateTime = z.iso.datetime({ offset: true });
/** The very pattern the zod check tests (zod's datetime format is only this regex): no parse context per call. */
const ISO_DATETIME: RegExp | undefined = isoDateTime._zod.def.pattern;
function isIsoDateTime(v: string): boolean {
  return ISO_DATETIME !== undefined ? ISO_DATETIME.test(v) : isoDateTime.safeParse(v).success;
}
const QUALITIES: ReadonlySet<string> = new Set(LOCATION_QUALITIES);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function onlyKeys(o: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const k in o) if (!allowed.has(k)) return false;
  return true;
}

function optPlace(v: unknown): boolean {
  return v === undefined || (typeof v === 'string' && v.length <= 256);
}

function finiteIn(v: unknown, min: number, max: number): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;
}

const PAYLOAD_KEYS: ReadonlySet<string> = new Set([
  'version',
  'agent_name',
  'tpm_public_key_hash',
  'nonce',
  'timestamp',
  'metrics',
  'geographic_region',
  'location',
  'algorithm',
  'signature',
]);
const REGION_KEYS: ReadonlySet<string> = new Set(['region', 'state', 'city']);
const LOCATION_KEYS: ReadonlySet<string> = new Set([
  'lat',
  'lon',
  'accuracy',
  'quality',
  'fix_time',
  'sensor_id_hash',
]);

/** Fast path of `metricsPayloadSchema`: true only when zod would accept `v` as is. */
export function fastValidPayload(v: unknown): boolean {
  if (!isPlainObject(v) || !onlyKeys(v, PAYLOAD_KEYS)) return false;
  if (v.version !== 1) return false;
  if (typeof v.agent_name !== 'string' || !AGENT.test(v.agent_name)) return false;
  if (typeof v.tpm_public_key_hash !== 'string' || !KEYID.test(v.tpm_public_key_hash)) return false;
  if (typeof v.nonce !== 'string' || !NONCE.test(v.nonce)) return false;
  if (typeof v.timestamp !== 'string' || !isIsoDateTime(v.timestamp)) return false;
  const m = v.metrics;
  if (!isPlainObject(m) || Object.getPrototypeOf(m) !== Object.prototype || Object.hasOwn(m, '__proto__'))
    return false;
  const g = v.geographic_region;
  if (!isPlainObject(g) || !onlyKeys(g, REGION_KEYS)) return false;
  if (typeof g.region !== 'string' || g.region.length > 256 || !optPlace(g.state) || !optPlace(g.city))
    return false;
  if (v.location !== undefined) {
    const l = v.location;
    if (!isPlainObject(l) || !onlyKeys(l, LOCATION_KEYS)) return false;
    if (!finiteIn(l.lat, -90, 90) || !finiteIn(l.lon, -180, 180)) return false;
    if (l.accuracy !== undefined && !finiteIn(l.accuracy, 0, Number.MAX_VALUE)) return false;
    if (typeof l.quality !== 'string' || !QUALITIES.has(l.quality)) return false;
    if (l.fix_time !== undefined && (typeof l.fix_time !== 'string' || !isIsoDateTime(l.fix_time))) {
      return false;
    }
    if (
      l.sensor_id_hash !== undefined &&
      (typeof l.sensor_id_hash !== 'string' || !HEX64.test(l.sensor_id_hash))
    ) {
      return false;
    }
  }
  if (v.algorithm !== 'ecdsa-p256-sha256' && v.algorithm !== 'rsa-v1_5-sha256') return false;
  return typeof v.signature === 'string' && SIG.test(v.signature);
}

const GEO_KEYS: ReadonlySet<string> = new Set([
  'client_workload_id',
  'client_workload_location',
  'client_workload_location_type',
  'client_workload_location_quality',
  'client_type',
]);
const GEO_LOC_KEYS: ReadonlySet<string> = new Set(['region', 'state', 'city', 'lat', 'lon', 'accuracy']);

/** Fast path of `workloadGeoIdSchema`: true only when zod would accept `v` as is. */
export function fastValidWorkloadGeoId(v: unknown): boolean {
  if (!isPlainObject(v) || !onlyKeys(v, GEO_KEYS)) return false;
  const id = v.client_workload_id;
  if (typeof id !== 'string' || id.length < 1 || id.length > 256) return false;
  const l = v.client_workload_location;
  if (!isPlainObject(l) || !onlyKeys(l, GEO_LOC_KEYS)) return false;
  if (typeof l.region !== 'string' || l.region.length > 256 || !optPlace(l.state) || !optPlace(l.city))
    return false;
  if (l.lat !== undefined && !finiteIn(l.lat, -90, 90)) return false;
  if (l.lon !== undefined && !finiteIn(l.lon, -180, 180)) return false;
  if (l.accuracy !== undefined && !finiteIn(l.accuracy, 0, Number.MAX_VALUE)) return false;
  if (
    v.client_workload_location_type !== 'geographic-region' &&
    v.client_workload_location_type !== 'precise'
  ) {
    return false;
  }
  const q = v.client_workload_location_quality;
  if (typeof q !== 'string' || !QUALITIES.has(q)) return false;
  return v.client_type === undefined || (typeof v.client_type === 'string' && v.client_type.length <= 64);
}

/** One-shot `crypto.hash` (Node ≥ 20.12) skips the Hash object; older Node 20 releases use createHash. */
const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'base64') => string }).hash;
function sha256Base64(body: Uint8Array): string {
  return oneShot !== undefined
    ? oneShot('sha256', body, 'base64')
    : nodeCrypto.createHash('sha256').update(body).digest('base64');
}

const SHA256_MEMBER = /^sha-256=:([A-Za-z0-9+/]{43}=):$/;

/**
 * Fast path for the one form agents send, `sha-256=:<base64>:`: returns true (match), false
 * (mismatch) or undefined (any other form: let `verifyContentDigest` of `@geofence/http-sig` decide).
 */
export function fastContentDigest(header: string, body: Uint8Array): boolean | undefined {
  const m = SHA256_MEMBER.exec(header);
  if (!m) return undefined;
  // A plain comparison is fine: the digest of a body the client sent is no secret. Canonical base64
  // of 32 bytes is the only text that can equal the computed one.
  return sha256Base64(body) === m[1];
}

/** Own member names in a parsed JSON value (own keys only, so a polluted prototype cannot add any). */
function countParsedMembers(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  let n = 0;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) n += countParsedMembers(v[i]);
    return n;
  }
  const keys = Object.keys(v);
  n = keys.length;
  for (let i = 0; i < keys.length; i++) n += countParsedMembers((v as Record<string, unknown>)[keys[i]!]);
  return n;
}

/**
 * Member names in a valid JSON text: string tokens followed (after optional whitespace) by `:`.
 * Returns -1 when the text does not look like valid JSON (the caller then scans).
 */
function countTextMembers(t: string): number {
  let n = 0;
  let i = 0;
  for (;;) {
    const open = t.indexOf('"', i);
    if (open < 0) return n;
    let close = open + 1;
    for (;;) {
      close = t.indexOf('"', close);
      if (close < 0) return -1;
      let b = close - 1;
      while (t.charCodeAt(b) === 0x5c /* \ */) b--;
      if ((close - 1 - b) % 2 === 0) break; // an even run of backslashes: the quote is not escaped
      close++;
    }
    let j = close + 1;
    for (;;) {
      const c = t.charCodeAt(j);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      j++;
    }
    if (t.charCodeAt(j) === 0x3a /* : */) n++;
    i = close + 1;
  }
}

/**
 * `hasDuplicateJsonKeys(text)` for `parsed = JSON.parse(text)`, usually without building sets of names:
 * `JSON.parse` keeps one member per name, so the parsed value has as many members as the text has
 * member names exactly when no object repeats a name. Equal counts → false; anything else (a
 * duplicate, or input the counters do not expect) → the exact scanner decides.
 */
export function fastHasDuplicateJsonKeys(text: string, parsed: unknown): boolean {
  let inTree: number;
  try {
    inTree = countParsedMembers(parsed);
  } catch {
    inTree = -2; // nesting too deep to recurse: let the scanner decide
  }
  return inTree !== countTextMembers(text) && hasDuplicateJsonKeys(text);
}
