/**
 * The credential keeper's decisions on a controlled clock: when it renews, that concurrent callers
 * share one renewal, which failures are refusals (the credential is forgotten) and which leave an
 * unexpired credential in use. The end-to-end behaviour (swtpm, collector) is in agent-fetch.test.ts.
 */
import { problemTypeUri } from '@geofence/protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CredentialKeeper } from '../src/credential.js';
import { CredentialRefusedError, GeofenceRejection } from '../src/errors.js';
import { RetriableError } from '../src/transport.js';

const JKT = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs';
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

function jwt(claims: Record<string, unknown>): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'ES256', typ: 'geofence-ar+jwt' })}.${part(claims)}.c2ln`;
}

/** A keeper over a scripted collector: each attestation answers with the next script entry. */
function keeper(script: Array<() => Promise<string>>, marginSeconds = 60) {
  let calls = 0;
  const k = new CredentialKeeper({
    attest: () => {
      const step = script[calls++];
      if (!step) throw new Error('unexpected attestation');
      return step();
    },
    jkt: async () => JKT,
    marginSeconds,
    logger: quiet,
  });
  return { k, calls: () => calls };
}

const issued =
  (lifetime: number, jkt = JKT) =>
  async () => {
    const iat = Math.floor(Date.now() / 1000);
    return jwt({ iat, exp: iat + lifetime, cnf: { jkt } });
  };
const refusal = (status: number) => async (): Promise<string> => {
  const validationType = status === 503 ? 'upstream' : status === 429 ? 'rate_limit' : 'attestation';
  throw new GeofenceRejection(status, {
    type: problemTypeUri(validationType),
    title: 'refused',
    status,
    error: 'outside the fence',
    validation_type: validationType,
    rejected_by: 'collector',
    timestamp: new Date().toISOString(),
    request_id: 'r',
    details: { check: 'geofence' },
  });
};

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(T0);
});
afterEach(() => {
  vi.useRealTimers();
});

describe('CredentialKeeper', () => {
  it('renews at expiry minus the margin, the margin capped at half the lifetime', async () => {
    const long = keeper([issued(600), issued(600)]);
    const a = await long.k.current();
    expect(a.refreshAt - T0).toBe(540_000);
    vi.setSystemTime(T0 + 539_999);
    expect(await long.k.current()).toBe(a);
    vi.setSystemTime(T0 + 540_000);
    expect((await long.k.current()).jwt).not.toBe(a.jwt);
    expect(long.calls()).toBe(2);

    const t = Date.now();
    const short = keeper([issued(30)]);
    const b = await short.k.current();
    expect({ refresh: b.refreshAt - t, expires: b.expiresAt - t }).toEqual({
      refresh: 15_000,
      expires: 30_000,
    });
  });

  it('concurrent callers share one renewal', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { k, calls } = keeper([
      async () => {
        await gate;
        return issued(600)();
      },
    ]);
    const all = Promise.all([k.current(), k.current(), k.current()]);
    release();
    const got = await all;
    expect(calls()).toBe(1);
    expect(new Set(got.map((c) => c.jwt)).size).toBe(1);
  });

  it('a 4xx refusal throws CredentialRefusedError and forgets the unexpired credential', async () => {
    const { k, calls } = keeper([issued(600), refusal(403), issued(600)]);
    await k.current();
    vi.setSystemTime(T0 + 541_000);
    const err = (await k.current().catch((e: unknown) => e)) as CredentialRefusedError;
    expect(err).toBeInstanceOf(CredentialRefusedError);
    expect(err).toMatchObject({ status: 403, validationType: 'attestation', check: 'geofence' });
    expect(err.cause).toBeInstanceOf(GeofenceRejection);
    // Not served from the old credential: the next call attests again.
    await k.current();
    expect(calls()).toBe(3);
  });

  it('unavailability (5xx, 429, network) keeps the unexpired credential, with a pause before the next try', async () => {
    const { k, calls } = keeper([
      issued(600),
      refusal(503),
      refusal(429),
      async () => {
        throw new RetriableError('connect ECONNREFUSED');
      },
    ]);
    const a = await k.current();
    vi.setSystemTime(T0 + 541_000);
    expect(await k.current()).toBe(a);
    expect(calls()).toBe(2);
    vi.setSystemTime(T0 + 545_000);
    expect(await k.current()).toBe(a);
    expect(calls()).toBe(2);
    vi.setSystemTime(T0 + 546_000);
    expect(await k.current()).toBe(a);
    expect(calls()).toBe(3);
    // Once it has expired, the failure is the caller's.
    vi.setSystemTime(T0 + 600_000);
    await expect(k.current()).rejects.toBeInstanceOf(RetriableError);
    expect(calls()).toBe(4);
  });

  it('refuses a credential bound to another key or without iat/exp/cnf.jkt', async () => {
    const other = keeper([issued(600, 'another-thumbprint')]);
    await expect(other.k.current()).rejects.toMatchObject({
      name: 'AttestationClientError',
      code: 'bad_response',
    });
    for (const bad of [
      'not-a-jwt',
      jwt({ iat: 1, cnf: { jkt: JKT } }),
      jwt({ iat: 5, exp: 5, cnf: { jkt: JKT } }),
    ]) {
      const k = keeper([async () => bad]).k;
      await expect(k.current()).rejects.toMatchObject({ code: 'bad_response' });
    }
  });
});
