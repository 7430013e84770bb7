import { expect } from 'vitest';
import { GeofenceError } from '../../src/errors.js';

/** Asserts that `fn` rejects with an `attestation` GeofenceError whose details name `check`. */
export async function expectAttestationRejection(
  fn: () => unknown,
  check: string,
  extra?: Record<string, unknown>,
): Promise<GeofenceError> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected rejection with check ${check}`).toBeInstanceOf(GeofenceError);
  const ge = caught as GeofenceError;
  expect({ vt: ge.validationType, status: ge.status, check: ge.details?.check }).toEqual({
    vt: 'attestation',
    status: 403,
    check,
  });
  if (extra) expect(ge.details).toMatchObject(extra);
  return ge;
}
