/** Accepted records built from raw bytes, for tests that fill a record store directly. */
import type { AcceptedRecord, MetricsPayload } from '@geofence/verifier';

/**
 * An accepted record for `body` as the collector would hand it to the store (payload parsed from
 * the bytes; no HTTP-signature facts unless given).
 */
export function acceptedRecord(
  body: Uint8Array,
  o: Partial<Omit<AcceptedRecord, 'rawBody' | 'payload'>> = {},
): AcceptedRecord {
  return {
    agentName: 'agent-a',
    keyid: 'k',
    receivedAt: new Date().toISOString(),
    httpSignature: null,
    verdict: { checks: ['request_validation'] },
    headers: {},
    ...o,
    rawBody: body,
    payload: JSON.parse(Buffer.from(body).toString('utf8')) as MetricsPayload,
  };
}
