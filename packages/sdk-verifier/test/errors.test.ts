import { describe, expect, it } from 'vitest';
import {
  GeofenceError,
  geofenceErrorFromProblem,
  isProblem,
  problemTypeUri,
  VALIDATION_TYPE_INFO,
  VALIDATION_TYPES,
} from '../src/index.js';

describe('GeofenceError', () => {
  it('maps every validation type to its documented status and URN', () => {
    const expected = {
      request_validation: 400,
      agent_verification: 403,
      signature_verification: 401,
      timestamp_proximity: 401,
      nonce_validation: 401,
      geolocation_policy: 403,
      attestation: 403,
      rate_limit: 429,
      upstream: 502,
      internal: 500,
    };
    expect(Object.keys(expected)).toEqual([...VALIDATION_TYPES]);
    for (const vt of VALIDATION_TYPES) {
      const err = new GeofenceError(vt);
      expect(err.status).toBe(expected[vt]);
      expect(err.error).toBe(VALIDATION_TYPE_INFO[vt].error);
      const p = err.toProblem({ rejectedBy: 'collector', requestId: 'r1', now: new Date(0) });
      expect(p.type).toBe(`urn:geofence:error:${vt}`);
      expect(problemTypeUri(vt)).toBe(p.type);
      expect(p).toMatchObject({ status: expected[vt], validation_type: vt, rejected_by: 'collector' });
      expect(p.timestamp).toBe('1970-01-01T00:00:00.000Z');
      expect(isProblem(p)).toBe(true);
      expect(geofenceErrorFromProblem(p)?.validationType).toBe(vt);
    }
  });

  it('only allows documented statuses', () => {
    expect(new GeofenceError('request_validation', 'Payload too large', { status: 413 }).status).toBe(413);
    expect(new GeofenceError('upstream', undefined, { status: 504 }).status).toBe(504);
    expect(() => new GeofenceError('agent_verification', 'x', { status: 500 })).toThrow(TypeError);
  });

  it('never leaks the cause of internal errors', () => {
    const err = GeofenceError.from(new Error('secret /etc/key.pem'));
    const p = err.toProblem({ rejectedBy: 'gateway', requestId: 'r' });
    expect(JSON.stringify(p)).not.toContain('secret');
    expect(p.status).toBe(500);
  });

  it('isProblem rejects lookalikes', () => {
    const p = new GeofenceError('nonce_validation').toProblem({ rejectedBy: 'collector', requestId: 'r' });
    expect(isProblem({ ...p, type: 'about:blank' })).toBe(false);
    expect(isProblem({ ...p, validation_type: 'other' })).toBe(false);
    expect(isProblem(null)).toBe(false);
    expect(isProblem('x')).toBe(false);
  });
});
