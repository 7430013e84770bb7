/**
 * `geofence doctor`: checks, with the configuration a service would use, what a deployment depends
 * on — the TPM, its EK certificate against the EK CA bundle, TLS trust in and clock skew against the
 * collector (or gateway), a gpsd fix, and the Redis nonce store — and prints a pass/fail table (or
 * JSON). Every check uses the same code path as the service (the agent's TPM and gpsd clients, the
 * collector's store opener), bounded by a deadline so that a dead dependency fails instead of hanging.
 */
import { existsSync, readFileSync } from 'node:fs';
import { gpsdLocation } from '@geofence/agent';
import { Tpm } from '@geofence/native-tpm';
import { publicToKeyObject } from '@geofence/tpm-wire';
import { loadEkCaBundle, urlWithoutPassword, verifyEkCertificate } from '@geofence/verifier';
import pg from 'pg';
import { request, Agent as UndiciAgent } from 'undici';
import { type Config, collectorUrlOf } from './config.js';
import { type OutputFormat, printJson, printTable } from './output.js';
import { openNonceStore, readEkCaBundle, usesPostgres } from './runtime.js';
import { demoCaPath } from './tls.js';

/** Outcome of one check: `warn` does not fail the run, `skip` means not configured. */
export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

/** One row of the doctor's report. */
export interface DoctorCheck {
  check: 'tpm' | 'ek_certificate' | 'tls_trust' | 'clock_skew' | 'gpsd_fix' | 'redis' | 'postgres';
  status: CheckStatus;
  detail: string;
}

/** Options of {@link runDoctor}. */
export interface DoctorOptions {
  /** Base URL of the service to check TLS and clock against (default: the agent's gateway, else the collector). */
  url?: string | undefined;
  /** Deadline of each check (ms). */
  timeoutMs?: number | undefined;
}

const DEFAULT_TIMEOUT_MS = 5000;

/** `fn`, or a rejection naming the deadline once `ms` passed. */
async function within<T>(ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([fn(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** An error as one line, with its code when the message does not already name it. */
function oneLine(e: unknown): string {
  const msg = ((e as Error)?.message ?? String(e)).replace(/\s*\n\s*/g, ' ').trim();
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && !msg.includes(code) ? `${msg} (${code})` : msg;
}

async function tpmChecks(cfg: Config, ms: number): Promise<DoctorCheck[]> {
  let tpm: Tpm | undefined;
  try {
    tpm = await within(ms, 'TPM', () => Tpm.open({ tcti: cfg.agent.tcti }));
    const t = tpm;
    const info = await within(ms, 'TPM', () => t.info());
    const checks: DoctorCheck[] = [
      {
        check: 'tpm',
        status: 'pass',
        detail: `${cfg.agent.tcti}: ${info.manufacturer.trim()} ${info.vendorString}, firmware ${info.firmwareVersion}, TPM ${info.family} rev ${info.specRevision}`,
      },
    ];
    checks.push(await ekCheck(cfg, t, ms));
    return checks;
  } catch (e) {
    return [
      { check: 'tpm', status: 'fail', detail: `${cfg.agent.tcti}: ${oneLine(e)}` },
      { check: 'ek_certificate', status: 'skip', detail: 'no TPM' },
    ];
  } finally {
    await tpm?.close().catch(() => undefined);
  }
}

/** The EK certificate (RSA EK, as enrolment sends it by default) against the EK CA bundle. */
async function ekCheck(cfg: Config, tpm: Tpm, ms: number): Promise<DoctorCheck> {
  try {
    const [der, pub] = await within(ms, 'TPM', () =>
      Promise.all([tpm.ekCertificate('rsa-2048'), tpm.ekPublic('rsa-2048')]),
    );
    if (!der) {
      return {
        check: 'ek_certificate',
        status: 'fail',
        detail: 'no EK certificate in the TPM NV index (enrolment needs one, or an approved EK hash)',
      };
    }
    const bundle = readEkCaBundle(cfg);
    if (bundle.length === 0) {
      return {
        check: 'ek_certificate',
        status: 'warn',
        detail: 'present; not verified: no EK CA bundle configured (EK_CA_BUNDLE)',
      };
    }
    const info = verifyEkCertificate(der, publicToKeyObject(pub), loadEkCaBundle(bundle));
    return { check: 'ek_certificate', status: 'pass', detail: `issued by ${info.issuer}` };
  } catch (e) {
    return { check: 'ek_certificate', status: 'fail', detail: oneLine(e) };
  }
}

/** TLS trust (the configured CA verifies the service certificate) and clock skew (its `/health` time). */
async function serviceChecks(cfg: Config, url: string, ms: number): Promise<DoctorCheck[]> {
  let ca: string;
  try {
    // What the agent would trust, without creating anything: a diagnosis must not mint a demo CA.
    const path = cfg.tls.caPath ?? demoCaPath(cfg.dataDir);
    if (!cfg.tls.caPath && !existsSync(path))
      throw new Error(`SSL_CA_PATH not set and no demo CA at ${path}`);
    ca = readFileSync(path, 'utf8');
  } catch (e) {
    return [
      { check: 'tls_trust', status: 'fail', detail: `trust anchor: ${oneLine(e)}` },
      { check: 'clock_skew', status: 'skip', detail: 'no connection' },
    ];
  }
  const dispatcher = new UndiciAgent({
    connect: { ca, rejectUnauthorized: !cfg.tls.insecureSkipVerify, timeout: ms },
  });
  try {
    const sent = Date.now();
    const r = await within(ms, url, () => request(`${url}/health`, { dispatcher }));
    const body = (await r.body.json().catch(() => ({}))) as { timestamp?: unknown };
    const received = Date.now();
    const tls: DoctorCheck = url.startsWith('https:')
      ? {
          check: 'tls_trust',
          status: cfg.tls.insecureSkipVerify ? 'warn' : 'pass',
          detail: cfg.tls.insecureSkipVerify
            ? `${url}: connected with verification OFF (TLS_INSECURE_SKIP_VERIFY)`
            : `${url}: certificate verified`,
        }
      : { check: 'tls_trust', status: 'warn', detail: `${url}: plain HTTP, nothing to verify` };
    const theirs = typeof body.timestamp === 'string' ? Date.parse(body.timestamp) : Number.NaN;
    if (r.statusCode !== 200 || Number.isNaN(theirs)) {
      return [
        tls,
        {
          check: 'clock_skew',
          status: 'fail',
          detail: `${url}/health answered ${r.statusCode} without a time`,
        },
      ];
    }
    // Their clock read somewhere between our send and receive: compare with the midpoint.
    const skew = (theirs - (sent + received) / 2) / 1000;
    const bound = cfg.clockSkewSeconds;
    const status: CheckStatus =
      Math.abs(skew) > bound ? 'fail' : Math.abs(skew) > bound / 2 ? 'warn' : 'pass';
    return [
      tls,
      {
        check: 'clock_skew',
        status,
        detail: `${skew >= 0 ? '+' : ''}${skew.toFixed(3)} s vs ${url} (± ${((received - sent) / 2000).toFixed(3)} s; limit ${bound} s)`,
      },
    ];
  } catch (e) {
    const msg = oneLine(e);
    const code = (e as { code?: string }).code ?? (e as { cause?: { code?: string } }).cause?.code ?? '';
    return [
      // Unverified or unreachable: either way the agent could not talk to it.
      {
        check: 'tls_trust',
        status: 'fail',
        detail: `${url}: ${msg}${code && !msg.includes(code) ? ` (${code})` : ''}`,
      },
      { check: 'clock_skew', status: 'skip', detail: `no connection to ${url}` },
    ];
  } finally {
    await dispatcher.close();
  }
}

async function gpsdCheck(cfg: Config, ms: number): Promise<DoctorCheck> {
  if (!cfg.agent.gpsdHost) return { check: 'gpsd_fix', status: 'skip', detail: 'GPSD_HOST not set' };
  const where = `${cfg.agent.gpsdHost}:${cfg.agent.gpsdPort}`;
  const source = gpsdLocation({
    host: cfg.agent.gpsdHost,
    port: cfg.agent.gpsdPort,
    fixTimeoutMs: ms,
    connectTimeoutMs: ms,
  });
  try {
    const obs = await within(ms + 1000, `gpsd ${where}`, () => source.current());
    const r = obs.reading;
    return {
      check: 'gpsd_fix',
      status: 'pass',
      detail: r
        ? `${where}: ${r.lat.toFixed(5)}, ${r.lon.toFixed(5)}${r.accuracy !== undefined ? ` ±${Math.round(r.accuracy)} m` : ''} (${obs.quality})`
        : `${where}: fix (${obs.quality})`,
    };
  } catch (e) {
    return { check: 'gpsd_fix', status: 'fail', detail: `${where}: ${oneLine(e)}` };
  } finally {
    await source.close?.().catch(() => undefined);
  }
}

async function redisCheck(cfg: Config, ms: number): Promise<DoctorCheck> {
  if (cfg.nonce.store !== 'redis' || !cfg.nonce.redisUrl)
    return { check: 'redis', status: 'skip', detail: `nonce store is ${cfg.nonce.store}` };
  const where = urlWithoutPassword(cfg.nonce.redisUrl);
  try {
    const store = await within(ms, `Redis ${where}`, () => openNonceStore(cfg));
    try {
      await within(ms, `Redis ${where}`, () => store.stats());
    } finally {
      await store.close();
    }
    return { check: 'redis', status: 'pass', detail: `${where}: connected` };
  } catch (e) {
    return { check: 'redis', status: 'fail', detail: oneLine(e) };
  }
}

/**
 * PostgreSQL, when a store is configured on it: connects with `DATABASE_URL` and reads the schema
 * version, without migrating (the doctor changes nothing; the collector migrates at start).
 */
async function postgresCheck(cfg: Config, ms: number): Promise<DoctorCheck> {
  if (!usesPostgres(cfg))
    return { check: 'postgres', status: 'skip', detail: 'no PostgreSQL store configured' };
  const url = cfg.database.url;
  if (!url) return { check: 'postgres', status: 'fail', detail: 'DATABASE_URL is not set' };
  const where = urlWithoutPassword(url);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: ms, query_timeout: ms });
  try {
    await within(ms, `PostgreSQL ${where}`, () => client.connect());
    // Two statements: PostgreSQL resolves a table name while planning, even in an untaken branch.
    const table = await within(ms, `PostgreSQL ${where}`, () =>
      client.query<{ t: string | null }>("SELECT to_regclass('geofence_schema')::text AS t"),
    );
    const rows =
      table.rows[0]?.t == null
        ? [{ v: null }]
        : (
            await within(ms, `PostgreSQL ${where}`, () =>
              client.query<{ v: number | null }>('SELECT max(version) AS v FROM geofence_schema'),
            )
          ).rows;
    const v = rows[0]?.v ?? null;
    return v === null
      ? {
          check: 'postgres',
          status: 'warn',
          detail: `${where}: connected; no schema yet (the collector creates it at start)`,
        }
      : { check: 'postgres', status: 'pass', detail: `${where}: connected, schema version ${v}` };
  } catch (e) {
    return { check: 'postgres', status: 'fail', detail: `${where}: ${oneLine(e)}` };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Runs every check (side by side where independent). */
export async function runDoctor(cfg: Config, o: DoctorOptions = {}): Promise<DoctorCheck[]> {
  const ms = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // The first collector when several replicas are listed.
  const target = o.url ?? cfg.agent.gatewayUrl ?? collectorUrlOf(cfg).split(',')[0] ?? '';
  const url = target.trim().replace(/\/+$/, '');
  const [tpm, service, gpsd, redis, postgres] = await Promise.all([
    tpmChecks(cfg, ms),
    serviceChecks(cfg, url, ms),
    gpsdCheck(cfg, ms),
    redisCheck(cfg, ms),
    postgresCheck(cfg, ms),
  ]);
  return [...tpm, ...service, gpsd, redis, postgres];
}

/** CLI entry: prints the report; exit code 0 when no check failed, 1 otherwise. */
export async function doctorCommand(
  cfg: Config,
  o: DoctorOptions,
  format: OutputFormat = 'table',
): Promise<number> {
  const checks = await runDoctor(cfg, o);
  const ok = !checks.some((c) => c.status === 'fail');
  if (format === 'json') printJson({ ok, checks });
  else
    printTable([
      ['check', 'status', 'detail'],
      ...checks.map((c) => [c.check, c.status.toUpperCase(), c.detail]),
    ]);
  return ok ? 0 : 1;
}
