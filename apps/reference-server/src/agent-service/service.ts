/**
 * The edge metrics agent service (`geofence agent`, original port 8442): wraps an `@geofence/agent`
 * Agent, sends system metrics periodically and on `POST /metrics/generate`, and reports its real state on
 * `GET /metrics/status`.
 *
 * It is not a signing oracle (SPEC §12.5): it listens on loopback by default, every endpoint except
 * `/health` needs the local bearer token, and it only ever signs payloads it builds itself (its own
 * nonce, timestamp and location; `custom_data` is carried inside `metrics`, size-limited).
 */

import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { Agent } from '@geofence/agent';
import { GeofenceError, type ValidationType } from '@geofence/verifier';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import type { Logger } from '../logger.js';
import { errorHandler, notFound, requestIdMiddleware, sendProblem } from '../server/http.js';
import { type Listening, type ListenOptions, listen } from '../server/listen.js';
import { collectSystemMetrics } from './system-metrics.js';

const REJECTED_BY = 'agent';
const MAX_CUSTOM_DATA_BYTES = 16 * 1024;

const generateSchema = z.strictObject({
  metric_type: z.enum(['system', 'application']).default('system'),
  custom_data: z.record(z.string(), z.unknown()).optional(),
});

/** Result of the last send, as reported on `/metrics/status`. */
export interface LastSend {
  at: string;
  ok: boolean;
  metric_type: string;
  record_id?: string;
  status?: number;
  validation_type?: string;
  rejected_by?: string;
  error?: string;
}

/** Options of {@link startAgentService}. */
export interface AgentServiceOptions {
  agent: Agent;
  agentName: string;
  log: Logger;
  /** Bearer token for the local API. */
  token: string;
  /** Seconds between periodic sends (0: only on request). */
  intervalSeconds: number;
  listen: ListenOptions;
  /** Host names accepted in `Host` besides IP literals, `localhost` and the listen host. */
  allowedHosts?: readonly string[];
  serviceName?: string;
}

/** A running agent service. */
export interface RunningAgentService extends Listening {
  /** Sends one message now (used by the periodic timer and `/metrics/generate`). */
  generate(metricType: 'system' | 'application', customData?: Record<string, unknown>): Promise<LastSend>;
}

function tokenAuth(token: string): RequestHandler {
  const expected = Buffer.from(token);
  return (req, res, next) => {
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const got = Buffer.from(m?.[1]?.trim() ?? '');
    if (got.length === expected.length && timingSafeEqual(got, expected)) return next();
    res.setHeader('www-authenticate', 'Bearer realm="geofence-agent"');
    sendProblem(req, res, new GeofenceError('agent_verification', 'Local API token required'), REJECTED_BY);
  };
}

/**
 * DNS-rebinding guard: a browser page that rebinds its own name to this host's address can reach the
 * local API, and then only the token stands in its way. Such requests carry that name in `Host` (and
 * its origin in `Origin`), so only IP literals, `localhost` and the configured listen host are
 * accepted as `Host` — plus the names the operator lists in `AGENT_ALLOWED_HOSTS` — and an `Origin`,
 * when sent, must be this very host and port.
 */
export function localHostGuard(listenHost: string, allowedHosts: readonly string[] = []): RequestHandler {
  const named = new Set(['localhost', listenHost.toLowerCase(), ...allowedHosts.map((h) => h.toLowerCase())]);
  const hostAllowed = (hostname: string) =>
    named.has(hostname) ||
    isIP(hostname) !== 0 ||
    (hostname.startsWith('[') && isIP(hostname.slice(1, -1)) === 6);
  return (req, res, next) => {
    const host = (req.headers.host ?? '').toLowerCase();
    const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!;
    let ok = host !== '' && hostAllowed(hostname);
    const origin = req.headers.origin;
    if (ok && origin !== undefined) {
      try {
        ok = new URL(origin).host.toLowerCase() === host;
      } catch {
        ok = false;
      }
    }
    if (ok) return next();
    sendProblem(
      req,
      res,
      new GeofenceError('agent_verification', 'Host or Origin not allowed for the local agent API'),
      REJECTED_BY,
    );
  };
}

/** Starts the service. */
export async function startAgentService(opts: AgentServiceOptions): Promise<RunningAgentService> {
  const { agent, log } = opts;
  let last: LastSend | null = null;
  let sent = 0;
  let failed = 0;
  let inFlight: Promise<LastSend> | null = null;

  async function generate(
    metricType: 'system' | 'application',
    customData?: Record<string, unknown>,
  ): Promise<LastSend> {
    const system = await collectSystemMetrics();
    const metrics: Record<string, unknown> = {
      type: metricType,
      service: { name: opts.serviceName ?? 'geofence-agent', instance_id: opts.agentName },
      ...(metricType === 'system'
        ? { system }
        : {
            application: customData ?? {},
            system_summary: {
              cpu_percent: system.cpu_percent,
              memory_percent: system.memory_percent,
            },
          }),
    };
    const at = new Date().toISOString();
    try {
      const r = await agent.send(metrics);
      sent += 1;
      last = { at, ok: true, metric_type: metricType, record_id: r.recordId };
      log.info({ record_id: r.recordId, metric_type: metricType }, 'metrics accepted');
    } catch (err) {
      failed += 1;
      const e = err as { status?: number; validationType?: string; rejectedBy?: string; message?: string };
      last = {
        at,
        ok: false,
        metric_type: metricType,
        ...(e.status !== undefined ? { status: e.status } : {}),
        ...(e.validationType ? { validation_type: e.validationType } : {}),
        ...(e.rejectedBy ? { rejected_by: e.rejectedBy } : {}),
        error: e.message ?? String(err),
      };
      log.warn({ last }, 'metrics not accepted');
    }
    return last;
  }

  const app = express();
  app.disable('x-powered-by');
  app.set('case sensitive routing', true);
  app.set('strict routing', true);
  app.use(requestIdMiddleware());
  app.use(localHostGuard(opts.listen.host, opts.allowedHosts));

  app.get('/health', (_req, res) => {
    res.json({
      status: 'healthy',
      service: opts.serviceName ?? 'geofence-agent',
      timestamp: new Date().toISOString(),
    });
  });

  const auth = tokenAuth(opts.token);
  app.get('/metrics/status', auth, async (_req: Request, res: Response) => {
    const st = await agent.status();
    // Live check: a TPM that answered once may be gone now.
    const tpmReachable = await agent.probeTpm();
    res.json({
      agent_name: opts.agentName,
      ...st,
      tpm_reachable: tpmReachable,
      interval_seconds: opts.intervalSeconds,
      sent,
      failed,
      last_send: last,
      timestamp: new Date().toISOString(),
    });
  });

  app.post(
    '/metrics/generate',
    auth,
    express.json({ limit: MAX_CUSTOM_DATA_BYTES + 1024, type: ['application/json'] }),
    async (req: Request, res: Response) => {
      const parsed = generateSchema.safeParse(req.body ?? {});
      if (!parsed.success) {
        sendProblem(
          req,
          res,
          new GeofenceError('request_validation', 'Invalid payload structure', {
            details: { issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) },
          }),
          REJECTED_BY,
        );
        return;
      }
      // One send at a time: the TPM signs serially anyway, and this bounds queued work per caller.
      while (inFlight) await inFlight.catch(() => undefined);
      inFlight = generate(parsed.data.metric_type, parsed.data.custom_data);
      const result = await inFlight.finally(() => {
        inFlight = null;
      });
      if (result.ok) {
        res.json({
          status: 'success',
          message: 'Metrics generated and sent',
          metric_type: result.metric_type,
          record_id: result.record_id,
        });
        return;
      }
      // Pass the verifier's verdict through in the aligned format (same status and validation_type).
      let verdict: GeofenceError;
      try {
        verdict = new GeofenceError((result.validation_type ?? 'upstream') as ValidationType, result.error, {
          status: result.status && result.status >= 400 ? result.status : 502,
        });
      } catch {
        verdict = new GeofenceError('upstream', result.error ?? 'Metrics were not accepted', { status: 502 });
      }
      sendProblem(req, res, verdict, result.rejected_by ?? REJECTED_BY);
    },
  );

  app.use(notFound(REJECTED_BY));
  app.use(errorHandler(log, REJECTED_BY));

  const listening = await listen(app, opts.listen);
  let timer: NodeJS.Timeout | undefined;
  if (opts.intervalSeconds > 0) {
    timer = setInterval(() => {
      if (inFlight) return;
      inFlight = generate('system').finally(() => {
        inFlight = null;
      });
    }, opts.intervalSeconds * 1000);
    timer.unref();
  }
  return {
    ...listening,
    generate,
    close: async () => {
      if (timer) clearInterval(timer);
      await inFlight?.catch(() => undefined);
      await listening.close();
    },
  };
}
