/**
 * The collector (SPEC §8): an Express app composed from `@geofence/verifier` — nonce issuance and
 * metrics verification middleware, enrolment/location attestation handlers, registry, nonce store — plus
 * the reference server's own parts: durable record store, admin endpoints, rate limits, Prometheus
 * metrics, OTLP export.
 */

import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import type { RequestListener } from 'node:http';
import { ATTESTATION_CA_PATH } from '@geofence/protocol';
import {
  type AttestationResultSigner,
  builtinReverseGeocode,
  EnrollmentService,
  GeofenceError,
  type GeoPolicy,
  mountAttestationExpress,
  type NonceStore,
  type PendingEnrollmentStore,
  type PlatformPolicy,
  type PreRegisteredAgent,
  type RecordStore,
  type Registry,
  STORE_RETRY_AFTER_SECONDS,
  type StoreName,
} from '@geofence/verifier';
import express, { type Express, type Request, type Response } from 'express';
import { ensureAdminToken } from '../admin-token.js';
import { type AttestationIssuer, openAttestationIssuer } from '../attestation-issuer.js';
import type { Config } from '../config.js';
import { ConsoleFeed } from '../console/feed.js';
import { mountConsole, requireConsoleAssets } from '../console/routes.js';
import { createLogger, type Logger } from '../logger.js';
import { type PreRegistrationStore, preRegistrationSchema, toPolicyAgents } from '../preregistrations.js';
import { recordJson } from '../record-json.js';
import {
  globalGeoPolicy,
  maxSpeedOption,
  openDatabase,
  openNonceStore,
  openPendingEnrollments,
  openPreRegistrations,
  openRecords,
  openRegistry,
  openSharedRateLimiters,
  readEkCaBundle,
  redisErrorLogger,
  usesPostgres,
  warnPerWorkerLimits,
} from '../runtime.js';
import { resolveTls } from '../tls.js';
import { agentRoutesListener } from './hot-routes.js';
import { metricsExposition, type RateLimiters, sendProblem, serviceApp } from './http.js';
import { type Listening, listen } from './listen.js';
import { createOtlpForwarder, type OtlpForwarder } from './otlp.js';
import { createServiceMetrics, type ServiceMetrics } from './prom.js';
import { locationQualityOf, metricsRoute, nonceRoute } from './verification.js';

const REJECTED_BY = 'collector' as const;

/** Everything the collector app is composed from. */
export interface CollectorDeps {
  registry: Registry;
  nonces: NonceStore;
  records: RecordStore;
  signer: AttestationResultSigner;
  /** Attestation CA (PoG certificates) and the CA bundle it publishes; omit to refuse x509 credentials. */
  ca?: Pick<AttestationIssuer, 'ca' | 'caBundlePem'> | undefined;
  log: Logger;
  adminToken: string;
  /** Where `POST /agents` keeps pre-registrations (the data directory's file, or PostgreSQL). */
  preRegistrations?: PreRegistrationStore | undefined;
  /** Enrolment trust anchors and pre-registrations (mutable `agents` list, see preregistrations.ts). */
  enrollment: {
    ekCaBundle: string[];
    /** MNO CA certificates (PEM) for `mno-location` corroboration. */
    mnoCaBundle?: string[];
    approvedEkHashes: string[];
    approvedImageDigests: string[];
    agents: PreRegisteredAgent[];
    /** Where pending enrolments live (default: in this process). */
    pendingStore?: PendingEnrollmentStore | undefined;
  };
  globalGeoPolicy?: GeoPolicy | undefined;
  otlp?: OtlpForwarder | undefined;
  /** Rate limit buckets shared outside this process (Redis); in-process ones otherwise. */
  rateLimiters?: RateLimiters | undefined;
  /** The web console at `/console`, when enabled: its live feed and session lifetime. */
  console?: { feed: ConsoleFeed; sessionTtlSeconds: number; assetsDir?: string | undefined } | undefined;
}

/** Options of the app beyond the stores. */
export interface CollectorAppOptions {
  serviceName: string;
  bodyLimitBytes: number;
  clockSkewSeconds: number;
  trustProxy: boolean | string;
  rateLimit: Config['rateLimit'];
  nonceStoreKind: string;
  /** `NONCE_MAX_OUTSTANDING`: the largest batch one `GET /nonce?…&count=n` may ask for. */
  nonceMaxOutstanding?: number | undefined;
  /** Movement plausibility limit (`MAX_SPEED_KMH`), `false` for none; default the verifier's. */
  maxSpeedKmh?: number | false;
}

/** The app and its metrics. */
export interface CollectorApp {
  /** Every route but the hot ones. */
  app: Express;
  /** What the server runs: `GET /nonce` and `POST /metrics` directly (hot-routes.ts), the rest on `app`. */
  listener: RequestListener;
  metrics: ServiceMetrics;
  enrollment: EnrollmentService;
}

const startedAt = Date.now();

/** Longest a `/ready` probe may take before its dependency counts as down. */
const READY_PROBE_TIMEOUT_MS = 1500;

/** Whether `fn` completes without error within {@link READY_PROBE_TIMEOUT_MS}. */
async function probeWithin(fn: () => unknown): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), READY_PROBE_TIMEOUT_MS);
  });
  const attempt = (async () => {
    await fn();
    return true;
  })().catch(() => false);
  try {
    return await Promise.race([attempt, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Builds the collector Express app. */
export function createCollectorApp(opts: CollectorAppOptions, deps: CollectorDeps): CollectorApp {
  const { log, records, registry, nonces } = deps;
  const metrics = createServiceMetrics(
    opts.serviceName,
    async () => (await nonces.stats()).outstanding,
    true,
  );
  const counters = { accepted: 0, rejected: 0 };

  const { app, limited, admin, first } = serviceApp(
    opts,
    metrics,
    deps.adminToken,
    REJECTED_BY,
    deps.rateLimiters,
  );

  app.get('/health', (_req, res) => {
    res.json({
      status: 'healthy',
      service: opts.serviceName,
      role: 'collector',
      timestamp: new Date().toISOString(),
    });
  });

  // Probes run side by side, each cut off at READY_PROBE_TIMEOUT_MS, so a frozen dependency cannot
  // hold /ready past a load balancer's health-check timeout; the body names what is down.
  app.get('/ready', async (req, res) => {
    const probes: Record<StoreName, () => unknown> = {
      registry: () => registry.list({ status: 'active' }),
      nonce_store: () => nonces.stats(),
      record_store: () => records.ping(),
    };
    const results = await Promise.all(
      Object.entries(probes).map(async ([name, fn]) => [name, await probeWithin(fn)] as const),
    );
    const checks = Object.fromEntries(results) as Record<StoreName, boolean>;
    const down = results.filter(([, ok]) => !ok).map(([name]) => name);
    const named = (store: string) =>
      store === 'nonce_store' ? `nonce_store (${opts.nonceStoreKind})` : store;
    if (down.length === 0) res.json({ status: 'ready', checks });
    else
      sendProblem(
        req,
        res,
        new GeofenceError('upstream', `Not ready: ${down.map(named).join(', ')} unavailable`, {
          status: 503,
          details: { checks, unavailable: down },
          retryAfter: STORE_RETRY_AFTER_SECONDS,
        }),
        REJECTED_BY,
      );
  });

  // One platform policy (approved image digests; PCR reference values once configured) for enrolment
  // and location attestation, so /attest/location enforces what /enroll enforced.
  const platformPolicy: PlatformPolicy = deps.enrollment.approvedImageDigests.length
    ? { workloadDigests: deps.enrollment.approvedImageDigests }
    : {};
  const enrollment = new EnrollmentService({
    registry,
    signer: deps.signer,
    policy: {
      ...platformPolicy,
      ...(deps.enrollment.ekCaBundle.length ? { ekCaBundle: deps.enrollment.ekCaBundle } : {}),
      approvedEkHashes: deps.enrollment.approvedEkHashes,
      agents: deps.enrollment.agents,
      unknownAgents: 'pending',
    },
    ...(deps.enrollment.pendingStore ? { pendingStore: deps.enrollment.pendingStore } : {}),
  });

  const nonceHandler = nonceRoute({
    registry,
    nonces,
    metrics,
    log,
    rejectedBy: REJECTED_BY,
    clockSkewSeconds: opts.clockSkewSeconds,
    maxNonceBatch: opts.nonceMaxOutstanding,
  });

  const metricsHandler = metricsRoute({
    registry,
    nonces,
    metrics,
    log,
    rejectedBy: REJECTED_BY,
    bodyLimitBytes: opts.bodyLimitBytes,
    clockSkewSeconds: opts.clockSkewSeconds,
    globalGeoPolicy: deps.globalGeoPolicy,
    ...(opts.maxSpeedKmh === undefined ? {} : { maxSpeedKmh: opts.maxSpeedKmh }),
    onRejected: (err, vr) => {
      counters.rejected += 1;
      deps.console?.feed.rejected(err, vr.rawBody, REJECTED_BY);
    },
    accept: async (rec) => {
      // Durable before the 200: the store's insert resolves only after its commit.
      const id = await records.insert(rec);
      metrics.recordsStored.inc();
      counters.accepted += 1;
      deps.console?.feed.accepted(rec, id);
      deps.otlp?.record({
        agentName: rec.agentName,
        metrics: rec.payload.metrics,
        timestamp: rec.payload.timestamp,
        region: rec.payload.geographic_region,
        locationQuality: locationQualityOf(rec),
      });
      return id;
    },
  });

  app.get('/metrics/status', async (_req, res) => {
    const st = await nonces.stats();
    res.json({
      status: 'running',
      service: opts.serviceName,
      uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
      records_stored: await records.count(),
      accepted_since_start: counters.accepted,
      rejected_since_start: counters.rejected,
      nonce_store: { kind: opts.nonceStoreKind, outstanding: st.outstanding, agents: st.agents },
      agents: {
        active: (await registry.list({ status: 'active' })).length,
        pending: (await registry.list({ status: 'pending' })).length,
        revoked: (await registry.list({ status: 'revoked' })).length,
      },
      timestamp: new Date().toISOString(),
    });
  });

  app.get('/metrics/records', admin, async (req: Request, res: Response) => {
    const q = req.query;
    const limit = Math.min(1000, Math.max(1, Number.parseInt(String(q.limit ?? '100'), 10) || 100));
    const since =
      typeof q.since === 'string' && !Number.isNaN(Date.parse(q.since))
        ? new Date(q.since).toISOString()
        : undefined;
    if (q.since !== undefined && !since) {
      sendProblem(
        req,
        res,
        new GeofenceError('request_validation', 'since must be an ISO 8601 time'),
        REJECTED_BY,
      );
      return;
    }
    const after =
      typeof q.after === 'string' && /^\d+$/.test(q.after) ? Number.parseInt(q.after, 10) : undefined;
    const page = await records.list({
      agent: typeof q.agent === 'string' ? q.agent : undefined,
      since,
      after,
      limit,
    });
    res.json({
      records: page.records.map(recordJson),
      next: page.next === null ? null : String(page.next),
    });
  });

  app.get('/nonces/stats', async (_req, res) => {
    // Keyed by keyid only; never raw nonces.
    res.json(await nonces.stats({ perAgent: true }));
  });

  app.post('/nonces/cleanup', admin, async (_req, res) => {
    const removed = await nonces.cleanup();
    log.info({ removed }, 'nonce cleanup');
    res.json({ status: 'success', removed });
  });

  const publicRecord = (r: Awaited<ReturnType<Registry['list']>>[number]) => ({
    agent_name: r.agent_name,
    keyid: r.keyid,
    alg: r.alg,
    status: r.status,
    geo_policy: r.geo_policy,
    app_public_key_pem: r.app_public_key_pem,
    ek_public_hash: r.ek_public_hash,
    ek_cert_issuer: r.ek_cert_issuer,
    workload_digest: r.workload_digest,
    enrolled_at: r.enrolled_at,
    updated_at: r.updated_at,
  });

  // The allowlist names every agent's keyid, geo policy, EK hash and workload digest: what an attacker
  // needs to pick victims. Reading it takes the admin token, like writing it.
  app.get('/agents', admin, async (_req, res) => {
    res.json({ agents: (await registry.list()).map(publicRecord) });
  });
  app.get('/agents/:agent_name', admin, async (req, res) => {
    const rec = await registry.getByName(String(req.params.agent_name));
    if (!rec) {
      sendProblem(
        req,
        res,
        new GeofenceError('agent_verification', 'Agent not found in allowlist', {
          details: { agent_name: req.params.agent_name },
        }),
        REJECTED_BY,
      );
      return;
    }
    res.json(publicRecord(rec));
  });
  // Pre-registration (SPEC §4): the agent becomes active when it completes enrolment.
  app.post('/agents', admin, express.json({ limit: '64kb' }), async (req, res) => {
    const parsed = preRegistrationSchema.safeParse(req.body);
    const store = deps.preRegistrations;
    if (!parsed.success || !store) {
      sendProblem(
        req,
        res,
        new GeofenceError('request_validation', 'Invalid pre-registration', {
          details: {
            issues: parsed.success
              ? ['no pre-registration store']
              : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
          },
        }),
        REJECTED_BY,
      );
      return;
    }
    await store.upsert(parsed.data);
    // Effective at once in this process; other processes pick the change up (file: within a second;
    // PostgreSQL: by the table's notification).
    const next = toPolicyAgents(await store.list());
    deps.enrollment.agents.splice(0, deps.enrollment.agents.length, ...next);
    log.info({ agent_name: parsed.data.agent_name }, 'agent pre-registered');
    res.status(201).json({ status: 'pre-registered', ...parsed.data });
  });

  for (const [verb, status] of [
    ['approve', 'active'],
    ['revoke', 'revoked'],
  ] as const) {
    app.post(`/agents/:agent_name/${verb}`, admin, async (req, res) => {
      const name = String(req.params.agent_name);
      const rec = await registry.getByName(name);
      if (!rec) {
        sendProblem(
          req,
          res,
          new GeofenceError('agent_verification', 'Agent not found in allowlist', {
            details: { agent_name: name },
          }),
          REJECTED_BY,
        );
        return;
      }
      const updated = await registry.setStatus(name, status);
      log.info({ agent_name: name, status }, `agent ${verb}d`);
      res.json(publicRecord(updated));
    });
  }

  app.get('/metrics-prometheus', metricsExposition(metrics.registry, REJECTED_BY));

  // Status of the agent behind a credential (`geofence.keyid`), for relying parties that honour
  // revocation before `exp` (docs/pog-credentials.md). Public: a keyid is not secret and the answer
  // names no agent; a store outage is a 503 through the error handler.
  app.get('/credentials/status', limited, async (req, res, next) => {
    const keyid = typeof req.query.keyid === 'string' ? req.query.keyid : '';
    if (!/^[0-9a-f]{64}$/.test(keyid)) {
      sendProblem(
        req,
        res,
        new GeofenceError('request_validation', 'keyid must be 64 lowercase hex characters'),
        REJECTED_BY,
      );
      return;
    }
    try {
      const rec = await registry.getByKeyid(keyid);
      res.setHeader('cache-control', 'no-store');
      res.json({ keyid, status: rec?.status ?? 'unknown' });
    } catch (err) {
      next(err);
    }
  });

  if (deps.ca) {
    const { caBundlePem } = deps.ca;
    app.get(ATTESTATION_CA_PATH, (_req, res) => {
      res.setHeader('cache-control', 'public, max-age=300');
      res.type('application/x-pem-file').send(caBundlePem);
    });
  }

  mountAttestationExpress(app, {
    enrollment,
    location: {
      registry,
      nonces,
      signer: deps.signer,
      ...(deps.ca ? { certificates: deps.ca.ca } : {}),
      ...(deps.enrollment.mnoCaBundle?.length ? { mnoCaCertificates: deps.enrollment.mnoCaBundle } : {}),
      policy: platformPolicy,
      // Names the sealed point for region/state/city policies (the table the agents name fixes with).
      reverseGeocode: builtinReverseGeocode,
      clockSkewSeconds: opts.clockSkewSeconds,
      ...(opts.maxSpeedKmh === undefined ? {} : { maxSpeedKmh: opts.maxSpeedKmh }),
      ...(deps.globalGeoPolicy ? { globalGeoPolicy: deps.globalGeoPolicy } : {}),
    },
    signer: deps.signer,
    rejectedBy: REJECTED_BY,
    bodyLimitBytes: opts.bodyLimitBytes,
    onRejection: (e, requestId) =>
      log.info(
        { request_id: requestId, validation_type: e.validationType, details: e.details },
        'attestation rejected',
      ),
  });

  if (deps.console) {
    mountConsole(app, {
      adminToken: deps.adminToken,
      registry,
      records,
      feed: deps.console.feed,
      log,
      rejectedBy: REJECTED_BY,
      sessionTtlSeconds: deps.console.sessionTtlSeconds,
      limited,
      assetsDir: deps.console.assetsDir,
    });
  }

  // The two routes of every flow, before the app: the same handlers an Express route would run.
  const listener = agentRoutesListener(app, log, REJECTED_BY, {
    nonce: [first, metrics.countedAs('/nonce'), limited, nonceHandler],
    metrics: [first, metrics.countedAs('/metrics'), limited, metricsHandler],
  });
  return { app, listener, metrics, enrollment };
}

/** A running collector. */
export interface RunningCollector extends Listening {
  app: CollectorApp;
  deps: CollectorDeps;
}

/** Options of {@link startCollector} beyond the configuration. */
export interface StartCollectorOptions {
  log?: Logger;
  /** Extra EK CA certificates (PEM), e.g. swtpm's local CA in the demo. */
  ekCaCertificates?: string[];
  /** Use this registry instead of opening the configured one (closed by the caller). */
  registry?: Registry;
  /** Where the console's built assets are (default: this package's `dist/console`). */
  consoleAssetsDir?: string;
}

/** The console's feed, seeded with each agent's last accepted record. */
async function consoleDeps(cfg: Config, records: RecordStore, assetsDir: string | undefined) {
  const feed = new ConsoleFeed();
  await feed.seed(records);
  return { feed, sessionTtlSeconds: cfg.console.sessionTtlSeconds, assetsDir };
}

/** Opens the stores of `cfg`, builds the app and listens. */
export async function startCollector(
  cfg: Config & { port: number },
  o: StartCollectorOptions = {},
): Promise<RunningCollector> {
  const log = o.log ?? createLogger({ level: cfg.logLevel, service: cfg.serviceName, file: cfg.logFile });
  // Before any store is opened: nothing to close when the console cannot be served.
  if (cfg.console.enabled) requireConsoleAssets(o.consoleAssetsDir);
  if (cfg.tls.insecureSkipVerify)
    log.warn('TLS_INSECURE_SKIP_VERIFY is set: peer certificates are not verified');
  if (!cfg.tls.enabled) log.warn('SSL_ENABLED=false: serving plain HTTP');
  const db = usesPostgres(cfg)
    ? await openDatabase(cfg, (e) => log.warn({ err: e.message }, 'PostgreSQL connection error'))
    : undefined;
  const registry =
    o.registry ?? (await openRegistry(cfg, (e) => log.error({ err: e }, 'registry error'), db));
  const nonces = await openNonceStore(cfg, redisErrorLogger(log, 'nonce store'));
  const records = await openRecords(cfg, db);
  const pendingStore = openPendingEnrollments(cfg, db);
  const shared = await openSharedRateLimiters(cfg, redisErrorLogger(log, 'rate limit store'));
  warnPerWorkerLimits(cfg, log);
  const scheme = cfg.tls.enabled ? 'https' : 'http';
  const issuer = await openAttestationIssuer(cfg, `${scheme}://${cfg.host}:${cfg.port}`);
  const { signer } = issuer;
  const agents: PreRegisteredAgent[] = [];
  const preRegistrations = await openPreRegistrations(cfg, db);
  const stopWatch = await preRegistrations.watch(agents, (e) =>
    log.error({ err: e.message }, 'invalid pre-registrations'),
  );
  const otlp = cfg.otel.endpoint
    ? createOtlpForwarder({
        endpoint: cfg.otel.endpoint,
        serviceName: cfg.serviceName,
        log,
        exportIntervalMs: cfg.otel.exportIntervalMs,
        timeoutMs: cfg.otel.timeoutMs,
      })
    : undefined;
  const deps: CollectorDeps = {
    registry,
    nonces,
    records,
    signer,
    ca: issuer,
    log,
    adminToken: ensureAdminToken(cfg),
    preRegistrations,
    enrollment: {
      ekCaBundle: [...readEkCaBundle(cfg), ...(o.ekCaCertificates ?? [])],
      mnoCaBundle: cfg.enrollment.mnoCaPaths.map((p) => readFileSync(p, 'utf8')),
      approvedEkHashes: cfg.enrollment.approvedEkHashes,
      approvedImageDigests: cfg.enrollment.approvedImageDigests,
      agents,
      pendingStore,
    },
    globalGeoPolicy: globalGeoPolicy(cfg),
    otlp,
    rateLimiters: shared?.limiters,
    console: cfg.console.enabled ? await consoleDeps(cfg, records, o.consoleAssetsDir) : undefined,
  };
  if (cfg.console.enabled && !cfg.tls.enabled)
    log.warn('console enabled without TLS: its Secure session cookie only works on a loopback address');
  const built = createCollectorApp(
    {
      serviceName: cfg.serviceName,
      bodyLimitBytes: cfg.bodyLimitBytes,
      clockSkewSeconds: cfg.clockSkewSeconds,
      trustProxy: cfg.trustProxy,
      rateLimit: cfg.rateLimit,
      nonceStoreKind: cfg.nonce.store,
      nonceMaxOutstanding: cfg.nonce.maxOutstanding,
      maxSpeedKmh: maxSpeedOption(cfg),
    },
    deps,
  );
  const tls = cfg.tls.enabled ? await resolveTls(cfg) : undefined;
  const listening = await listen(built.listener, {
    host: cfg.host,
    port: cfg.port,
    ...(tls
      ? { tls: { ...tls, minVersion: cfg.tls.minVersion, requestCert: cfg.tls.requireClientCert } }
      : {}),
  });
  log.info(
    {
      url: listening.url,
      nonce_store: cfg.nonce.store,
      registry: cfg.registry.kind,
      records_store: cfg.recordsStore,
      data_dir: cfg.dataDir,
    },
    // In a cluster worker the primary announces the service once all workers listen.
    cluster.isWorker ? 'collector worker ready' : 'collector listening',
  );
  return {
    ...listening,
    app: built,
    deps,
    close: async () => {
      await listening.close();
      await stopWatch();
      await preRegistrations.close();
      await otlp?.close();
      await nonces.close();
      await shared?.close();
      await records.close();
      pendingStore.close?.();
      if (!o.registry) await registry.close();
      await db?.close();
      log.info('collector stopped');
    },
  };
}

/** CLI entry (`geofence collector`). */
export async function startCollectorService(
  cfg: Config & { port: number },
): Promise<{ close(): Promise<void> }> {
  return startCollector(cfg);
}
