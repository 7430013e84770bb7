/**
 * The gateway (SPEC §6.4, §8). Standard mode: a pure proxy of explicit routes to the collector.
 * Policy-enforcement mode (`GATEWAY_POLICY_ENFORCEMENT=true`): `@geofence/verifier`'s gateway checks run
 * first (allowlist, RFC 9421 signature with the body digest, timestamp proximity, Workload-Geo-ID geo
 * policy; each switchable with `GATEWAY_VALIDATE_*`), then the request is forwarded without `Signature`,
 * `Signature-Input` and `Workload-Geo-ID`. Unknown routes are never proxied.
 */

import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import type { RequestListener } from 'node:http';
import { extname, join } from 'node:path';
import {
  createForwarder,
  type Forwarder,
  type GeoPolicy,
  geofence,
  headersStrippedByGateway,
  type Registry,
} from '@geofence/verifier';
import type { Express, Response } from 'express';
import { ensureAdminToken } from '../admin-token.js';
import { type Config, collectorUrlOf } from '../config.js';
import { HeaderLog } from '../header-log.js';
import { createLogger, type Logger } from '../logger.js';
import {
  globalGeoPolicy,
  openRegistry,
  openSharedRateLimiters,
  redisErrorLogger,
  warnPerWorkerLimits,
} from '../runtime.js';
import { ensureDemoPki, resolveTls } from '../tls.js';
import { workerSlot } from './cluster.js';
import { agentRoutesListener } from './hot-routes.js';
import { metricsExposition, type NodeHandler, type RateLimiters, serviceApp, targetOf } from './http.js';
import { type Listening, listen } from './listen.js';
import { createServiceMetrics, type ServiceMetrics } from './prom.js';
import { gatewayCheck } from './verification.js';

const REJECTED_BY = 'gateway' as const;

/** Options of {@link createGatewayApp}. */
export interface GatewayAppOptions {
  serviceName: string;
  policyEnforcement: boolean;
  validate: { publicKeyHash: boolean; signature: boolean; geolocation: boolean };
  bodyLimitBytes: number;
  clockSkewSeconds: number;
  trustProxy: boolean | string;
  rateLimit: Config['rateLimit'];
}

/** Dependencies of the gateway app. */
export interface GatewayDeps {
  /** The one forwarder to the collector(s) (`@geofence/verifier` `createForwarder`). */
  upstream: Forwarder;
  log: Logger;
  adminToken: string;
  headerLog?: HeaderLog | undefined;
  /** The allowlist (required in enforcement mode). */
  registry?: Registry | undefined;
  globalGeoPolicy?: GeoPolicy | undefined;
  /** Rate limit buckets shared outside this process (Redis); in-process ones otherwise. */
  rateLimiters?: RateLimiters | undefined;
}

/** The app and its metrics. */
export interface GatewayApp {
  /** Every route but the hot ones. */
  app: Express;
  /** What the server runs: `GET /nonce` and `POST /metrics` directly (hot-routes.ts), the rest on `app`. */
  listener: RequestListener;
  metrics: ServiceMetrics;
}

/** Builds the gateway Express app. */
export function createGatewayApp(opts: GatewayAppOptions, deps: GatewayDeps): GatewayApp {
  const { upstream, log } = deps;
  if (opts.policyEnforcement && !deps.registry) {
    throw new TypeError('gateway policy enforcement needs the agent allowlist (registry)');
  }
  const metrics = createServiceMetrics(opts.serviceName, undefined, true);
  const { app, limiters, limited, admin, first } = serviceApp(
    opts,
    metrics,
    deps.adminToken,
    REJECTED_BY,
    deps.rateLimiters,
  );
  let allowlistLoadedAt = new Date().toISOString();

  const headerLog: NodeHandler = (req, res, next) => {
    if (deps.headerLog) {
      // Snapshot now: in enforcement mode the signature headers are stripped before forwarding.
      const headers = { ...req.headers };
      const { path, query } = targetOf(req.url);
      res.on('finish', () => {
        const validationType = (res as Response).validationType;
        deps.headerLog?.record({
          endpoint: path,
          method: req.method ?? 'GET',
          path,
          query,
          headers,
          decision: `${res.statusCode}${validationType ? ` ${validationType}` : ''}`,
        });
      });
    }
    next();
  };
  // The verifier's forwarder reads the body (limit → 413) when no check before it did, forwards the
  // bytes as received and strips by the one rule only when enforcing.
  const forward = (enforcing: boolean): NodeHandler =>
    geofence.express.forward({
      forwarder: upstream,
      rejectedBy: REJECTED_BY,
      bodyLimit: opts.bodyLimitBytes,
      enforcing,
      onAnswer: (answer, _req, res) => {
        (res as Response).validationType = answer.validationType;
      },
      onFailure: (err, req, res) => {
        (res as Response).validationType = err.validationType;
        const requestId = (req as { requestId?: string }).requestId;
        log.warn({ request_id: requestId, error: err.error, status: err.status }, 'upstream failure');
      },
    }) as NodeHandler;

  const enforce = opts.policyEnforcement;
  const checkCtx = {
    registry: deps.registry as Registry,
    rejectedBy: REJECTED_BY,
    validate: opts.validate,
    clockSkewSeconds: opts.clockSkewSeconds,
    bodyLimitBytes: opts.bodyLimitBytes,
    globalGeoPolicy: deps.globalGeoPolicy,
    metrics,
    log,
  };

  app.get('/health', (_req, res) => {
    res.json({
      status: 'healthy',
      service: opts.serviceName,
      role: 'gateway',
      mode: enforce ? 'gateway-policy-enforcement' : 'standard',
      allowlist_loaded: enforce ? allowlistLoadedAt : null,
      timestamp: new Date().toISOString(),
    });
  });

  const nonceHandlers = [
    first,
    metrics.countedAs('/nonce'),
    limited,
    headerLog,
    ...(enforce ? [gatewayCheck(checkCtx, '/nonce')] : []),
    forward(enforce),
  ];
  const metricsHandlers = [
    first,
    metrics.countedAs('/metrics'),
    limited,
    headerLog,
    // Enforcement: the verifier middleware reads the body (limit → 413) and keeps it in req.rawBody.
    ...(enforce ? [gatewayCheck(checkCtx, '/metrics')] : []),
    forward(enforce),
  ];
  // Enrolment and location attestation are verified by the collector only (the gateway cannot appraise TPM evidence).
  app.post('/enroll', limited, headerLog, forward(false));
  app.post('/enroll/:id/complete', limited, headerLog, forward(false));
  app.post('/attest/location', limited, headerLog, forward(false));
  app.get('/.well-known/jwks.json', limited, forward(false));

  app.get('/gateway/status', (_req, res) => {
    res.json({
      status: 'running',
      service: opts.serviceName,
      mode: enforce ? 'gateway-policy-enforcement' : 'standard',
      validation: enforce
        ? {
            public_key_hash: opts.validate.publicKeyHash,
            signature: opts.validate.signature,
            geolocation: opts.validate.geolocation,
          }
        : null,
      stripped_headers: enforce ? headersStrippedByGateway('POST', '/metrics') : [],
      upstream: { url: upstream.target, ...upstream.state },
      allowlist_loaded_at: enforce ? allowlistLoadedAt : null,
      timestamp: new Date().toISOString(),
    });
  });

  app.get('/gateway/rate-limits', (_req, res) => {
    res.json({
      enabled: opts.rateLimit.enabled,
      per_ip: { rate_per_second: opts.rateLimit.perIpPerSecond, burst: opts.rateLimit.perIpBurst },
      per_keyid: { rate_per_second: opts.rateLimit.perKeyidPerSecond, burst: opts.rateLimit.perKeyidBurst },
      store: limiters?.store ?? null,
      // Shared buckets are counted by Redis (they expire once full again), not by this process.
      tracked_keys: limiters
        ? { ip: limiters.ip.size ?? null, keyid: limiters.keyid.size ?? null }
        : { ip: 0, keyid: 0 },
    });
  });

  app.post('/reload-allowlist', admin, async (_req, res) => {
    if (!deps.registry) {
      res.json({ status: 'success', message: 'no allowlist in standard mode' });
      return;
    }
    await deps.registry.reload();
    allowlistLoadedAt = new Date().toISOString();
    const active = (await deps.registry.list({ status: 'active' })).length;
    log.info({ active }, 'allowlist reloaded');
    res.json({ status: 'success', active_agents: active, loaded_at: allowlistLoadedAt });
  });

  app.get('/metrics-prometheus', metricsExposition(metrics.registry, REJECTED_BY));

  // The two routes of every flow, before the app: the same handlers an Express route would run.
  const listener = agentRoutesListener(app, log, REJECTED_BY, {
    nonce: nonceHandlers,
    metrics: metricsHandlers,
  });
  return { app, listener, metrics };
}

/** A running gateway. */
export interface RunningGateway extends Listening {
  gateway: GatewayApp;
}

/** Options of {@link startGateway} beyond the configuration. */
export interface StartGatewayOptions {
  log?: Logger;
  /** Use this allowlist instead of opening the configured registry (not closed by the gateway). */
  registry?: Registry;
}

/** The client certificate the gateway presents to the collector: configured, or the demo one. */
async function gatewayClientCert(cfg: Config): Promise<{ cert: string; key: string } | undefined> {
  if (cfg.tls.clientCertPath && cfg.tls.clientKeyPath) {
    return {
      cert: readFileSync(cfg.tls.clientCertPath, 'utf8'),
      key: readFileSync(cfg.tls.clientKeyPath, 'utf8'),
    };
  }
  if (cfg.tls.certPath || cfg.tls.caPath) return undefined; // own PKI without a client certificate
  const demo = await ensureDemoPki(cfg.dataDir);
  return { cert: demo.clientCert, key: demo.clientKey };
}

/**
 * A file of this process: `path` itself, or in cluster worker slot k `name.wk.ext`. Each worker
 * rotates its own header log: several processes rotating one file would rename it under each other.
 */
function perWorker(path: string): string {
  const slot = workerSlot();
  if (slot === undefined) return path;
  const ext = extname(path);
  return `${path.slice(0, path.length - ext.length)}.w${slot}${ext}`;
}

/** Starts the gateway of `cfg`. */
export async function startGateway(
  cfg: Config & { port: number },
  o: StartGatewayOptions = {},
): Promise<RunningGateway> {
  const log = o.log ?? createLogger({ level: cfg.logLevel, service: cfg.serviceName, file: cfg.logFile });
  const tlsOn = cfg.tls.enabled;
  const collectorUrl = collectorUrlOf(cfg);
  if (cfg.tls.insecureSkipVerify)
    log.warn('TLS_INSECURE_SKIP_VERIFY is set: the collector certificate is not verified');
  const tls = tlsOn || collectorUrl.startsWith('https:') ? await resolveTls(cfg) : undefined;
  const upstream = createForwarder({
    target: collectorUrl,
    ca: tls?.ca,
    // Presented only when the collector asks for it (TLS_REQUIRE_CLIENT_CERT on the collector).
    clientCert: await gatewayClientCert(cfg),
    insecureSkipVerify: cfg.tls.insecureSkipVerify,
    minVersion: cfg.tls.minVersion,
    timeoutMs: cfg.gateway.upstreamTimeoutMs,
    connections: cfg.gateway.upstreamConnections,
  });
  const enforce = cfg.gateway.policyEnforcement;
  const registry = enforce
    ? (o.registry ?? (await openRegistry(cfg, (e) => log.error({ err: e }, 'allowlist error'))))
    : undefined;
  const shared = await openSharedRateLimiters(cfg, redisErrorLogger(log, 'rate limit store'));
  warnPerWorkerLimits(cfg, log);
  const headerLog = new HeaderLog(
    perWorker(cfg.gateway.headerLogPath ?? join(cfg.dataDir, 'logs', 'gateway_headers.log')),
    cfg.gateway.headerLogMaxBytes,
    cfg.gateway.headerLogFiles,
  );
  const gateway = createGatewayApp(
    {
      serviceName: cfg.serviceName,
      policyEnforcement: enforce,
      validate: {
        publicKeyHash: cfg.gateway.validatePublicKeyHash,
        signature: cfg.gateway.validateSignature,
        geolocation: cfg.gateway.validateGeolocation,
      },
      bodyLimitBytes: cfg.bodyLimitBytes,
      clockSkewSeconds: cfg.clockSkewSeconds,
      trustProxy: cfg.trustProxy,
      rateLimit: cfg.rateLimit,
    },
    {
      upstream,
      log,
      adminToken: ensureAdminToken(cfg),
      headerLog,
      registry,
      globalGeoPolicy: globalGeoPolicy(cfg),
      rateLimiters: shared?.limiters,
    },
  );
  const listening = await listen(gateway.listener, {
    host: cfg.host,
    port: cfg.port,
    ...(tlsOn && tls ? { tls: { ...tls, minVersion: cfg.tls.minVersion } } : {}),
  });
  log.info(
    {
      url: listening.url,
      collector: collectorUrl,
      mode: enforce ? 'gateway-policy-enforcement' : 'standard',
    },
    // In a cluster worker the primary announces the service once all workers listen.
    cluster.isWorker ? 'gateway worker ready' : 'gateway listening',
  );
  return {
    ...listening,
    gateway,
    close: async () => {
      await listening.close();
      await upstream.close();
      await shared?.close();
      headerLog.close();
      if (registry && !o.registry) await registry.close();
      log.info('gateway stopped');
    },
  };
}

/** CLI entry (`geofence gateway`). */
export async function startGatewayService(
  cfg: Config & { port: number },
): Promise<{ close(): Promise<void> }> {
  return startGateway(cfg);
}
