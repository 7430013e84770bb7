import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PreRegisteredAgent } from '@geofence/verifier';
import { describe, expect, it } from 'vitest';
import { ensureAdminToken, ensureTokenFile } from '../src/admin-token.js';
import { crossModeViolations, matches, type ResultRow, renderTable } from '../src/demo/table.js';
import { HeaderLog, redactHeader } from '../src/header-log.js';
import { createLogger } from '../src/logger.js';
import {
  readPreRegistrations,
  upsertPreRegistration,
  watchPreRegistrations,
} from '../src/preregistrations.js';
import { claimedKeyid, RateLimiter } from '../src/rate-limit.js';
import { SqliteRecordStore } from '../src/records.js';
import { ensureDemoPki } from '../src/tls.js';
import { acceptedRecord } from './helpers/records.js';

const dir = mkdtempSync(join(tmpdir(), 'gf-blocks-'));

describe('demo PKI', () => {
  it('creates a CA and a server certificate for loopback, keys 0600, and reuses them', async () => {
    const a = await ensureDemoPki(dir);
    const cert = new X509Certificate(a.cert);
    const ca = new X509Certificate(a.ca);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(statSync(a.paths.key).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'tls')).mode & 0o777).toBe(0o700);
    const b = await ensureDemoPki(dir);
    expect(b.cert).toBe(a.cert);
    expect(b.ca).toBe(a.ca);
  });

  it('generates one CA when several services start at once on a fresh data directory', async () => {
    const fresh = mkdtempSync(join(tmpdir(), 'gf-pki-race-'));
    const all = await Promise.all([ensureDemoPki(fresh), ensureDemoPki(fresh), ensureDemoPki(fresh)]);
    const cas = new Set(all.map((m) => m.ca));
    expect(cas.size).toBe(1);
    for (const m of all)
      expect(new X509Certificate(m.cert).verify(new X509Certificate(m.ca).publicKey)).toBe(true);
  });
});

describe('generated bearer tokens', () => {
  it('are generated once (0600) and reused; configuration wins; a truncated file is refused', () => {
    const d = mkdtempSync(join(tmpdir(), 'gf-token-'));
    const t = ensureTokenFile(d, 'agent-token');
    expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(join(d, 'agent-token')).mode & 0o777).toBe(0o600);
    expect(ensureTokenFile(d, 'agent-token')).toBe(t);
    expect(ensureAdminToken({ dataDir: d, adminToken: 'configured-token-0123456789' })).toBe(
      'configured-token-0123456789',
    );
    const admin = ensureAdminToken({ dataDir: d });
    expect(admin).not.toBe(t);
    expect(readFileSync(join(d, 'admin-token'), 'utf8').trim()).toBe(admin);
    writeFileSync(join(d, 'admin-token'), '\n');
    expect(() => ensureAdminToken({ dataDir: d })).toThrow(/no usable token/);
  });
});

describe('RateLimiter', () => {
  it('allows the burst, then 429s with a retry hint, then refills', () => {
    let now = 0;
    const rl = new RateLimiter(2, 3, 100, () => now);
    expect([1, 2, 3].map(() => rl.take('k').allowed)).toEqual([true, true, true]);
    const denied = rl.take('k');
    expect(denied.allowed).toBe(false);
    expect(denied.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(rl.take('other').allowed).toBe(true);
    now = 1000;
    expect(rl.take('k').allowed).toBe(true);
  });

  it('bounds the number of tracked keys', () => {
    const rl = new RateLimiter(1, 1, 10);
    for (let i = 0; i < 1000; i++) rl.take(`k${i}`);
    expect(rl.size).toBe(10);
  });

  it('extracts a claimed keyid only when it is well formed', () => {
    const kid = 'a'.repeat(64);
    expect(claimedKeyid({ public_key_hash: kid }, undefined)).toBe(kid);
    expect(claimedKeyid({ public_key_hash: 'x' }, undefined)).toBeUndefined();
    expect(claimedKeyid({}, `geo=("@method");keyid="${kid}"`)).toBe(kid);
  });
});

describe('HeaderLog', () => {
  it('redacts secrets, hashes nonces and rotates by size', () => {
    const path = join(dir, 'logs', 'gateway_headers.log');
    const log = new HeaderLog(path, 4096, 2);
    for (let i = 0; i < 40; i++) {
      log.record({
        endpoint: '/metrics',
        method: 'POST',
        path: '/metrics',
        query: {},
        headers: {
          authorization: 'Bearer super-secret-token',
          'signature-input': 'geo=("@method");keyid="k";nonce="RAW-NONCE-VALUE"',
          'workload-geo-id': '{"client_workload_id":"agent-001"}',
        },
      });
    }
    log.close();
    expect(existsSync(`${path}.1`)).toBe(true);
    expect(existsSync(`${path}.2`)).toBe(true);
    expect(existsSync(`${path}.3`)).toBe(false);
    const all = readFileSync(path, 'utf8') + readFileSync(`${path}.1`, 'utf8');
    expect(all).not.toContain('super-secret-token');
    expect(all).not.toContain('RAW-NONCE-VALUE');
    expect(all).toContain('agent-001');
    const first = JSON.parse(readFileSync(`${path}.1`, 'utf8').split('\n')[0] ?? '{}');
    expect(first.headers.authorization).toBe('[redacted]');
    expect(statSync(path).size).toBeLessThanOrEqual(4096);
    expect(redactHeader('cookie', 'a=b')).toBe('[redacted]');
  });

  it('hashes the nonce parameter whether it is a quoted string or a bare token', () => {
    const quoted = redactHeader('signature-input', 'geo=("@method");created=1;nonce="SECRET-Q";keyid="k"');
    const token = redactHeader('signature-input', 'geo=("@method");created=1;nonce=SECRET-T;keyid="k"');
    expect(quoted).not.toContain('SECRET-Q');
    expect(token).not.toContain('SECRET-T');
    expect(token).toMatch(/nonce="\[sha256:[0-9a-f]{12}\]";keyid="k"/);
  });
});

describe('SqliteRecordStore', () => {
  it('stores raw bodies and pages with a cursor', async () => {
    const store = new SqliteRecordStore(join(dir, 'records.db'));
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(
        await store.insert(
          acceptedRecord(Buffer.from(`{"n":${i}}`), { agentName: i % 2 ? 'agent-b' : 'agent-a' }),
        ),
      );
    }
    expect(await store.count()).toBe(5);
    expect(Buffer.from((await store.get(ids[2] as string))?.rawBody ?? []).toString()).toBe('{"n":2}');
    const p1 = await store.list({ limit: 2 });
    expect(p1.records.map((r) => r.id)).toEqual(ids.slice(0, 2));
    expect(p1.next).not.toBeNull();
    const p2 = await store.list({ limit: 10, after: p1.next ?? 0 });
    expect(p2.records.map((r) => r.id)).toEqual(ids.slice(2));
    expect(p2.next).toBeNull();
    expect((await store.list({ limit: 10, agent: 'agent-b' })).records).toHaveLength(2);
    expect((await store.list({ limit: 10, since: '2999-01-01T00:00:00Z' })).records).toHaveLength(0);
    await store.close();
  });

  it('group-commits concurrent durable inserts and resolves each with its own record', async () => {
    const store = new SqliteRecordStore(join(dir, 'group.db'));
    const ids = await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.insert(acceptedRecord(Buffer.from(`{"i":${i}}`)))),
    );
    expect(new Set(ids).size).toBe(50);
    for (const [i, id] of ids.entries())
      expect(Buffer.from((await store.get(id))?.rawBody ?? []).toString()).toBe(`{"i":${i}}`);
    expect(await store.count()).toBe(50);
    await store.close();
  });
});

describe('pre-registrations', () => {
  it("reach a running collector's enrolment policy without restart", async () => {
    const d = mkdtempSync(join(tmpdir(), 'gf-prereg-'));
    const target: PreRegisteredAgent[] = [];
    const errors: Error[] = [];
    const stop = watchPreRegistrations(d, target, (e) => errors.push(e), 50);
    try {
      expect(target).toEqual([]);
      upsertPreRegistration(d, {
        agent_name: 'agent-9',
        ek: 'any-trusted-ca',
        geo_policy: { allow: [{ region: 'US' }] },
      });
      for (let i = 0; i < 100 && target.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(target).toEqual([
        { agentName: 'agent-9', ek: 'any-trusted-ca', geoPolicy: { allow: [{ region: 'US' }] } },
      ]);
      expect(() =>
        upsertPreRegistration(d, { agent_name: 'bad name!', ek: 'any-trusted-ca', geo_policy: {} }),
      ).toThrow();
      expect(readPreRegistrations(d)).toHaveLength(1);
      expect(errors).toEqual([]);
    } finally {
      stop();
    }
  });
});

describe('logger', () => {
  it('never writes Authorization values, tokens, keys or nonces', async () => {
    const file = join(dir, 'logs', 'service.log');
    const log = createLogger({ level: 'info', service: 'test', file });
    log.info(
      {
        headers: { authorization: 'Bearer SECRET-AUTH' },
        nonce: 'SECRET-NONCE',
        adminToken: 'SECRET-ADMIN',
        tls: { key: 'SECRET-KEY' },
        agent_name: 'agent-001',
      },
      'hello',
    );
    await new Promise<void>((resolve) => log.flush(() => resolve()));
    await new Promise((r) => setTimeout(r, 50));
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('agent-001');
    expect(text).not.toMatch(/SECRET-/);
    expect(JSON.parse(text.trim().split('\n')[0] ?? '{}')).toMatchObject({
      level: 'info',
      service: 'test',
      msg: 'hello',
    });
  });
});

describe('results table', () => {
  const row = (mode: ResultRow['mode'], status: number, vt: string | null): ResultRow => {
    const expected = { status: 403, validationType: 'geolocation_policy', rejectedBy: 'collector' };
    const observed = { status, validationType: vt, rejectedBy: 'collector' };
    return { scenario: 'geo', mode, expected, observed, ok: matches(expected, observed) };
  };
  it('flags mismatches and cross-mode differences', () => {
    const rows = [row('standard', 403, 'geolocation_policy'), row('gateway-policy-enforcement', 401, 'x')];
    expect(rows[0]?.ok).toBe(true);
    expect(rows[1]?.ok).toBe(false);
    expect(crossModeViolations(rows)).toHaveLength(1);
    const text = renderTable(rows);
    expect(text).toContain('geolocation_policy');
    expect(text).toContain('NO');
  });
});
