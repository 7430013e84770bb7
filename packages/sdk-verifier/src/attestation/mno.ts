/**
 * MNO corroboration of a location attestation (V-PEA §5.3.4 / §6.2.4): a signed `mno-location`
 * raises the trust level from `low` (one unauthenticated GNSS fix) to `medium` when
 * - its `mno-key-cert` is issued by a configured MNO CA and valid now,
 * - its `mno-sig` (ECDSA P-256 / SHA-256, raw r‖s) verifies over the JCS of its `geolocation-payload`,
 * - that payload answers this attestation (same nonce; timestamp within the freshness window), and
 * - its area agrees with the GNSS point: the two circles (centre, accuracy) overlap.
 * Any failure refuses the attestation (`mno_location`): a corroboration that does not hold is
 * evidence of a problem, not a reason to quietly fall back to `low`.
 */
import { verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { fromB64u, jcsBytes, mnoLocationSchema } from '@geofence/protocol';
import { attestationError } from './errors.js';

/** Mean Earth radius (m), for the great-circle distance between the two estimates. */
const EARTH_RADIUS_M = 6_371_008.8;

/** Great-circle distance in metres (haversine). */
function distanceMetres(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

function parseCertificate(text: string): X509Certificate | undefined {
  try {
    if (text.includes('-----BEGIN')) return new X509Certificate(text);
    const der = fromB64u(text.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''));
    return der ? new X509Certificate(der) : undefined;
  } catch {
    return undefined;
  }
}

/** What the appraisal of an `mno-location` needs from the bundle and the collector. */
export interface MnoAppraisalInput {
  /** The `mno-location` / `mno-endorsement` object as received. */
  statement: unknown;
  /** The sealed GNSS point and its accuracy (metres). */
  gnss: { lat: number; lon: number; accuracy: number };
  /** The bundle's nonce (sealed by the quote): the MNO statement must answer it. */
  nonce: string;
  /** Now, Unix seconds. */
  nowSeconds: number;
  /** Freshness window (seconds) and clock skew. */
  maxAgeSeconds: number;
  clockSkewSeconds: number;
  /** Configured MNO CA certificates. */
  cas: readonly X509Certificate[];
}

/** Appraises one MNO statement; resolves when it corroborates the point, throws `mno_location` otherwise. */
export function appraiseMnoLocation(input: MnoAppraisalInput): void {
  if (input.cas.length === 0) {
    throw attestationError('mno_location', 'the bundle carries an MNO location but no MNO CA is configured', {
      mno_check: 'not_configured',
    });
  }
  const parsed = mnoLocationSchema.safeParse(input.statement);
  if (!parsed.success) {
    throw attestationError(
      'mno_location',
      'mno-location must be {geolocation-payload, mno-key-cert, mno-sig}',
      {
        mno_check: 'malformed',
        issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
      },
    );
  }
  const m = parsed.data;
  const cert = parseCertificate(m['mno-key-cert']);
  if (!cert)
    throw attestationError('mno_location', 'mno-key-cert is not an X.509 certificate', { mno_check: 'cert' });
  const now = input.nowSeconds * 1000;
  const valid = Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
  const issuer = input.cas.find((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
  if (!issuer || !valid) {
    throw attestationError('mno_location', 'mno-key-cert does not chain to a configured MNO CA', {
      mno_check: 'chain',
    });
  }
  const key = cert.publicKey;
  const sig = fromB64u(m['mno-sig']);
  const ok =
    key.asymmetricKeyType === 'ec' &&
    key.asymmetricKeyDetails?.namedCurve === 'prime256v1' &&
    sig !== undefined &&
    sig.length === 64 &&
    cryptoVerify('sha256', jcsBytes(m['geolocation-payload']), { key, dsaEncoding: 'ieee-p1363' }, sig);
  if (!ok) {
    throw attestationError(
      'mno_location',
      'mno-sig does not verify over the JCS of the MNO geolocation-payload',
      {
        mno_check: 'signature',
      },
    );
  }
  const p = m['geolocation-payload'];
  if (p.nonce !== input.nonce) {
    throw attestationError('mno_location', 'the MNO statement answers another nonce', { mno_check: 'nonce' });
  }
  if (
    p.timestamp < input.nowSeconds - input.maxAgeSeconds ||
    p.timestamp > input.nowSeconds + input.clockSkewSeconds
  ) {
    throw attestationError('mno_location', 'the MNO statement is outside the freshness window', {
      mno_check: 'timestamp',
    });
  }
  const distance = distanceMetres(input.gnss, p);
  if (distance > input.gnss.accuracy + p.accuracy) {
    throw attestationError(
      'mno_location',
      'the MNO area does not agree with the GNSS point within their accuracies',
      {
        mno_check: 'area',
        distance_m: Math.round(distance),
        gnss_accuracy_m: input.gnss.accuracy,
        mno_accuracy_m: p.accuracy,
      },
    );
  }
}
