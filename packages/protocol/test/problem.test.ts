import { describe, expect, it } from 'vitest';
import {
  isProblem,
  isValidationType,
  type Problem,
  problemTypeUri,
  VALIDATION_TYPE_INFO,
  VALIDATION_TYPE_STATUSES,
  VALIDATION_TYPES,
} from '../src/index.js';

const problem: Problem = {
  type: problemTypeUri('nonce_validation'),
  title: VALIDATION_TYPE_INFO.nonce_validation.title,
  status: 401,
  error: VALIDATION_TYPE_INFO.nonce_validation.error,
  rejected_by: 'gateway',
  validation_type: 'nonce_validation',
  timestamp: '2026-11-28T21:00:00.000Z',
  request_id: 'r1',
};

describe('validation types', () => {
  it('are the closed SPEC §7 set, each with its default status among the allowed ones', () => {
    expect([...VALIDATION_TYPES]).toEqual([
      'request_validation',
      'agent_verification',
      'signature_verification',
      'timestamp_proximity',
      'nonce_validation',
      'geolocation_policy',
      'attestation',
      'rate_limit',
      'upstream',
      'internal',
    ]);
    for (const vt of VALIDATION_TYPES) {
      expect(isValidationType(vt)).toBe(true);
      expect(VALIDATION_TYPE_STATUSES[vt]).toContain(VALIDATION_TYPE_INFO[vt].status);
      expect(problemTypeUri(vt)).toBe(`urn:geofence:error:${vt}`);
    }
    expect(isValidationType('teapot')).toBe(false);
    expect(isValidationType(undefined)).toBe(false);
    expect(Object.isFrozen(VALIDATION_TYPE_STATUSES)).toBe(true);
  });
});

describe('isProblem', () => {
  it('accepts the aligned shape, with or without details', () => {
    expect(isProblem(problem)).toBe(true);
    expect(isProblem({ ...problem, details: { reason: 'unknown' } })).toBe(true);
  });

  it('rejects lookalikes', () => {
    expect(isProblem({ ...problem, type: 'about:blank' })).toBe(false);
    expect(isProblem({ ...problem, validation_type: 'other', type: 'urn:geofence:error:other' })).toBe(false);
    expect(isProblem({ ...problem, status: 401.5 })).toBe(false);
    expect(isProblem({ ...problem, details: null })).toBe(false);
    const { request_id: _omit, ...noId } = problem;
    expect(isProblem(noId)).toBe(false);
    expect(isProblem(null)).toBe(false);
    expect(isProblem('x')).toBe(false);
  });
});
