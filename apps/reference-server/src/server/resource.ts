/**
 * `geofence resource-server` (issue 14): a protected resource — files such as model weights or
 * secrets — served only to requests that `requireGeofence` admits: a valid PoG credential from the
 * configured collector AND a request signature by the TPM key it binds, under the resource's own
 * policy. `/health` is the one unprotected route.
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  type GeofenceAdmittedMessage,
  GeofenceError,
  type GeofenceResourcePolicy,
  type Jwks,
  type RequireGeofenceOptions,
  requireGeofence,
} from '@geofence/verifier';
import express, { type RequestHandler } from 'express';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import type { Config } from '../config.js';
import { createLogger, type Logger } from '../logger.js';
import { resolveTls } from '../tls.js';
import { errorHandler, notFound, requestIdMiddleware, sendProblem } from './http.js';
import { type Listening, listen } from './listen.js';

const REJECTED_BY = 'resource' as const;

/** Options of {@link startResourceServer} beyond the configuration. */
export interface StartResourceServerOptions {
  log?: Logger;
  /** Use this JWKS instead of fetching the issuer's (tests, air-gapped setups). */
  jwks?: Jwks;
  /** Trust anchors (PEM) for fetching the issuer's JWKS over HTTPS; default the configured CA. */
  issuerCa?: string;
}

/** A running resource server. */
export interface RunningResourceServer extends Listening {
  /** The origin requests must be signed for. */
  origin: string;
}

/** The resource policy of the configuration. */
export function resourcePolicy(cfg: Config): GeofenceResourcePolicy {
  const r = cfg.resource;
  return {
    minTrustLevel: r.minTrustLevel,
    ...(r.allow.length > 0 ? { allow: r.allow } : {}),
    ...(r.workloadDigests.length > 0 ? { workloadDigests: r.workloadDigests } : {}),
    ...(r.maxAgeSeconds === undefined ? {} : { maxAgeSeconds: r.maxAgeSeconds }),
  };
}

/** Starts the resource server for `cfg.resource.dir`. */
export async function startResourceServer(
  cfg: Config & { port: number },
  o: StartResourceServerOptions = {},
): Promise<RunningResourceServer> {
  const log = o.log ?? createLogger({ level: cfg.logLevel, service: cfg.serviceName, file: cfg.logFile });
  const r = cfg.resource;
  if (!r.dir) throw new TypeError('resource-server needs a directory (--dir or RESOURCE_DIR)');
  const dir = resolve(r.dir);
  if (!statSync(dir).isDirectory()) throw new TypeError(`${dir} is not a directory`);
  if (!r.issuer)
    throw new TypeError('resource-server needs the trusted issuer (--issuer or RESOURCE_ISSUER)');
  const tls = cfg.tls.enabled ? await resolveTls(cfg) : undefined;

  // The guard needs the origin, which is known once the port is bound (port 0 in tests and the demo).
  let guard: RequestHandler | undefined;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestIdMiddleware());
  app.get('/health', (_req, res) => {
    res.json({ status: 'healthy', service: cfg.serviceName, role: 'resource' });
  });
  app.use((req, res, next) => {
    if (!guard) {
      const starting = new GeofenceError('upstream', 'Resource server starting', {
        status: 503,
        retryAfter: 1,
      });
      sendProblem(req, res, starting, REJECTED_BY);
      return;
    }
    guard(req, res, next);
  });
  app.use((req, _res, next) => {
    const admitted = (req as GeofenceAdmittedMessage).geofenceCredential;
    log.info(
      { agent_name: admitted?.agentName, path: req.path, format: admitted?.credential.format },
      'resource admitted',
    );
    next();
  });
  app.use(
    express.static(dir, {
      dotfiles: 'deny',
      index: false,
      redirect: false,
      fallthrough: true,
      setHeaders: (res) => res.setHeader('cache-control', 'no-store'),
    }),
  );
  app.use(notFound(REJECTED_BY));
  app.use(errorHandler(log, REJECTED_BY));

  const listening = await listen(app, {
    host: cfg.host,
    port: cfg.port,
    ...(tls ? { tls: { ...tls, minVersion: cfg.tls.minVersion } } : {}),
  });
  const origin = r.origin ?? listening.url;
  const issuerCa = o.issuerCa ?? tls?.ca;
  const dispatcher = issuerCa ? new UndiciAgent({ connect: { ca: issuerCa } }) : undefined;
  const trust: Pick<RequireGeofenceOptions, 'jwks' | 'caCertificates' | 'fetch'> = {};
  if (o.jwks) trust.jwks = o.jwks;
  else if (r.jwksUrl || !r.caCertPath)
    trust.jwks = r.jwksUrl ?? `${r.issuer.replace(/\/+$/, '')}/.well-known/jwks.json`;
  if (r.caCertPath) trust.caCertificates = readFileSync(r.caCertPath, 'utf8');
  if (dispatcher) {
    trust.fetch = ((url: string, init: RequestInit) =>
      undiciFetch(url, { ...(init as object), dispatcher })) as unknown as typeof fetch;
  }
  guard = requireGeofence({
    issuer: r.issuer,
    origin,
    clockSkewSeconds: cfg.clockSkewSeconds,
    policy: resourcePolicy(cfg),
    rejectedBy: REJECTED_BY,
    onReject: (e, requestId) =>
      log.info(
        { request_id: requestId, validation_type: e.validationType, details: e.details },
        'resource refused',
      ),
    ...trust,
  }) as unknown as RequestHandler;
  log.info({ url: listening.url, origin, dir }, 'resource server listening');
  return {
    ...listening,
    origin,
    close: async () => {
      await listening.close();
      await dispatcher?.close();
    },
  };
}
