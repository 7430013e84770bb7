/**
 * `geofence doctor` and PostgreSQL (issue 15: "Redis/Postgres connectivity"): against a real
 * throwaway cluster, the check reports a reachable server without a schema as a warning (the doctor
 * migrates nothing), a migrated one as passing with its schema version, and a stopped one as failing
 * in one line that hides the password.
 */
import { PostgresDatabase } from '@geofence/verifier';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDoctor } from '../src/doctor.js';
import { testConfig, testDataDir } from './helpers/env.js';
import { startPostgres, type TestPostgres } from './helpers/postgres.js';

let pg: TestPostgres;
let dir: string;

beforeAll(async () => {
  pg = await startPostgres();
  dir = (await testDataDir('doctor-postgres')).dir;
}, 120_000);

afterAll(async () => {
  await pg?.destroy();
});

async function postgresCheck(url: string) {
  const cfg = testConfig('collector', dir, {
    registry: { kind: 'postgres' },
    database: { url },
  });
  // Only the PostgreSQL line matters here; the other checks find nothing configured or running.
  const checks = await runDoctor(cfg, { timeoutMs: 3000, url: 'https://127.0.0.1:9' });
  return checks.find((c) => c.check === 'postgres');
}

describe('geofence doctor: postgres', () => {
  it('warns on a reachable server without a schema and does not create one', async () => {
    expect(await postgresCheck(pg.url)).toMatchObject({ status: 'warn', detail: /no schema yet/ });
    expect(await postgresCheck(pg.url)).toMatchObject({ status: 'warn' });
  });

  it('passes with the schema version once a collector migrated the database', async () => {
    const db = await PostgresDatabase.open({ url: pg.url });
    await db.close();
    expect(await postgresCheck(pg.url)).toMatchObject({ status: 'pass', detail: /schema version \d+/ });
  });

  it('fails in one line without the password when the server is down', async () => {
    await pg.stop();
    try {
      const withPassword = pg.url.replace('postgres@', 'postgres:s3cret-pw@');
      const check = await postgresCheck(withPassword);
      expect(check?.status).toBe('fail');
      expect(check?.detail).not.toContain('s3cret-pw');
      expect(check?.detail).not.toContain('\n');
    } finally {
      await pg.start();
    }
  });
});
