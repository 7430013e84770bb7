/**
 * The collector's web console at `/console` (enabled by `CONSOLE_ENABLED=true`): login with the admin
 * token, the page and its prebuilt assets, a JSON API for agents and records, approve/revoke
 * (session + CSRF token + same-origin check), and the live feed as Server-Sent Events.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type AgentRecord,
  findRegion,
  findState,
  GeofenceError,
  type Place,
  placeOutline,
  type RecordStore,
  type Registry,
  type RejectedBy,
} from '@geofence/verifier';
import express, { type Express, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from '../logger.js';
import { safeEqual, sendProblem } from '../server/http.js';
import { verifyStoredRecord } from '../verify-record.js';
import type { ConsoleAgent, ConsoleRecord, ConsoleSessionInfo, ConsoleState, PlaceOutline } from './api.js';
import type { ConsoleFeed } from './feed.js';
import { CONSOLE_CSP, consolePage, loginPage } from './page.js';
import { type ConsoleSession, ConsoleSessions, CSRF_HEADER } from './session.js';

/** SSE keep-alive comment interval: proxies close idle streams. */
const SSE_HEARTBEAT_MS = 15_000;

/**
 * Where the built console assets are: `dist/console` of this package, found from this module whether
 * it runs from `dist/` (bundled) or from `src/` (tests).
 */
export function defaultConsoleAssetsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return join(dir, 'dist', 'console');
}

/** What the console is mounted with. */
export interface ConsoleDeps {
  adminToken: string;
  registry: Registry;
  records: RecordStore;
  feed: ConsoleFeed;
  log: Logger;
  rejectedBy: RejectedBy;
  sessionTtlSeconds: number;
  /** Per-IP rate limit for the login form. */
  limited: RequestHandler;
  /** Built assets (`console.js`, `console.css`, `world.json`); default {@link defaultConsoleAssetsDir}. */
  assetsDir?: string | undefined;
}

const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('content-security-policy', CONSOLE_CSP);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('referrer-policy', 'no-referrer');
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('cross-origin-opener-policy', 'same-origin');
  res.setHeader('cross-origin-resource-policy', 'same-origin');
  next();
};

function trustLevel(r: AgentRecord): ConsoleAgent['trust_level'] {
  if (r.ek_cert_issuer) return 'tpm-ek-ca';
  if (r.ek_public_hash) return 'tpm-ek-hash';
  return 'key-only';
}

/** The table's place for an allow-list entry (its state when given, else its region). */
function allowPlace(entry: { region: string; state?: string | undefined }): Place | undefined {
  const region = findRegion(entry.region);
  if (!region) return undefined;
  return entry.state ? findState(region, entry.state) : region;
}

/**
 * Throws unless the built assets are in `dir`: failing at start beats serving a page whose script
 * is missing. Returns `dir`.
 */
export function requireConsoleAssets(dir: string = defaultConsoleAssetsDir()): string {
  if (!existsSync(join(dir, 'console.js'))) {
    throw new Error(
      `console assets not found in ${dir}; build them with \`npm run build -w apps/reference-server\``,
    );
  }
  return dir;
}

/** Mounts the console on `app`. Call before the app's 404 handler. */
export function mountConsole(app: Express, deps: ConsoleDeps): void {
  const assetsDir = requireConsoleAssets(deps.assetsDir);
  const sessions = new ConsoleSessions(deps.sessionTtlSeconds);
  const { registry, records, feed, log, rejectedBy } = deps;
  const problem = (req: Request, res: Response, err: GeofenceError) => sendProblem(req, res, err, rejectedBy);
  const outlines = new Map<string, PlaceOutline>();

  const router = express.Router({ caseSensitive: true, strict: true });
  router.use(securityHeaders);
  router.use(
    '/assets',
    // A missing asset falls through to the app's 404 problem.
    express.static(assetsDir, { index: false, maxAge: 0 }),
  );

  router.get('/', (req, res) => {
    res.setHeader('cache-control', 'no-store');
    res.type('html').send(sessions.of(req) ? consolePage() : loginPage(req.query.login === 'failed'));
  });

  router.post('/login', deps.limited, express.urlencoded({ extended: false, limit: '4kb' }), (req, res) => {
    const token = typeof req.body?.token === 'string' ? req.body.token.trim() : '';
    if (!token || !safeEqual(token, deps.adminToken)) {
      log.info({ ip: req.ip }, 'console login failed');
      res.redirect(303, '/console/?login=failed');
      return;
    }
    const { id } = sessions.create();
    log.info({ ip: req.ip }, 'console login');
    res.setHeader('set-cookie', sessions.cookie(id));
    res.redirect(303, '/console/');
  });

  // Everything below needs a session.
  const authed: RequestHandler = (req, res, next) => {
    const s = sessions.of(req);
    if (!s) {
      problem(req, res, new GeofenceError('agent_verification', 'Console session required'));
      return;
    }
    res.locals.consoleSession = s;
    res.setHeader('cache-control', 'no-store');
    next();
  };

  // State changes: the session's CSRF token, and (when the browser says) a same-origin request.
  const csrf: RequestHandler = (req, res, next) => {
    const { session } = res.locals.consoleSession as { session: ConsoleSession };
    const sent = req.headers[CSRF_HEADER];
    const site = req.headers['sec-fetch-site'];
    const origin = req.headers.origin;
    const sameOrigin =
      (site === undefined || site === 'same-origin') &&
      (origin === undefined || origin === `${req.protocol}://${req.headers.host}`);
    if (typeof sent !== 'string' || !safeEqual(sent, session.csrfToken) || !sameOrigin) {
      problem(req, res, new GeofenceError('agent_verification', 'CSRF token missing or invalid'));
      return;
    }
    next();
  };

  router.get('/api/session', authed, (_req, res) => {
    const { session } = res.locals.consoleSession as { session: ConsoleSession };
    const info: ConsoleSessionInfo = {
      csrf_token: session.csrfToken,
      expires_at: new Date(session.expiresAt).toISOString(),
    };
    res.json(info);
  });

  router.post('/logout', authed, csrf, (_req, res) => {
    const { id } = res.locals.consoleSession as { id: string };
    sessions.destroy(id);
    res.setHeader('set-cookie', ConsoleSessions.clearCookie());
    res.status(204).end();
  });

  router.get('/api/state', authed, async (_req, res) => {
    const places: Record<string, PlaceOutline> = {};
    const agents = (await registry.list()).map((r): ConsoleAgent => {
      const codes: string[] = [];
      for (const entry of r.geo_policy.allow ?? []) {
        const place = allowPlace(entry);
        if (!place) continue;
        let o = outlines.get(place.code);
        if (!o) {
          o = { code: place.code, name: place.name, coordinates: placeOutline(place) };
          outlines.set(place.code, o);
        }
        places[place.code] = o;
        codes.push(place.code);
      }
      return {
        agent_name: r.agent_name,
        status: r.status,
        keyid: r.keyid,
        trust_level: trustLevel(r),
        ek_cert_issuer: r.ek_cert_issuer,
        allow: (r.geo_policy.allow ?? []).map((a) => [a.region, a.state, a.city].filter(Boolean).join('/')),
        place_codes: codes,
        fences: r.geo_policy.fences ?? [],
        ...feed.activityOf(r.agent_name),
      };
    });
    const state: ConsoleState = { agents, places };
    res.json(state);
  });

  for (const [verb, status] of [
    ['approve', 'active'],
    ['revoke', 'revoked'],
  ] as const) {
    router.post(`/api/agents/:agent_name/${verb}`, authed, csrf, async (req, res) => {
      const name = String(req.params.agent_name);
      if (!(await registry.getByName(name))) {
        problem(
          req,
          res,
          new GeofenceError('agent_verification', 'Agent not found in allowlist', {
            details: { agent_name: name },
          }),
        );
        return;
      }
      const updated = await registry.setStatus(name, status);
      log.info({ agent_name: name, status, via: 'console' }, `agent ${verb}d`);
      res.json({ agent_name: updated.agent_name, status: updated.status });
    });
  }

  router.get('/api/records/:id', authed, async (req, res) => {
    const rec = await records.get(String(req.params.id));
    if (!rec) {
      problem(req, res, new GeofenceError('request_validation', 'Record not found', { status: 404 }));
      return;
    }
    const out: ConsoleRecord = {
      record_id: rec.id,
      agent_name: rec.agentName,
      keyid: rec.keyid,
      received_at: rec.receivedAt,
      verdict: { ...rec.verdict },
      payload: rec.payload,
      reverification: await verifyStoredRecord(rec, registry),
    };
    res.json(out);
  });

  router.get('/api/events', authed, (req, res) => {
    const { id } = res.locals.consoleSession as { id: string };
    const last = req.headers['last-event-id'];
    const after = typeof last === 'string' && /^\d+$/.test(last) ? Number.parseInt(last, 10) : undefined;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // Tells nginx-style proxies not to buffer the stream.
      'x-accel-buffering': 'no',
    });
    // The stream ends with its session (sign-out, expiry): the browser's reconnect then gets a 403.
    const live = () => {
      if (sessions.alive(id)) return true;
      res.end();
      return false;
    };
    const send = (e: { seq: number }) => {
      if (live()) res.write(`id: ${e.seq}\nevent: record\ndata: ${JSON.stringify(e)}\n\n`);
    };
    res.write('retry: 2000\n\n');
    for (const e of feed.since(after)) send(e);
    const unsubscribe = feed.subscribe(send);
    const heartbeat = setInterval(() => {
      if (live()) res.write(': keep-alive\n\n');
    }, SSE_HEARTBEAT_MS);
    heartbeat.unref();
    res.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
    });
  });

  // `/console` without the slash: the page's relative asset URLs are absolute, but one canonical URL.
  app.get('/console', (_req, res) => res.redirect(301, '/console/'));
  app.use('/console', router);
}
