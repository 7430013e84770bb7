/**
 * Optional OTLP/HTTP export of accepted metrics (`OTEL_EXPORTER_OTLP_ENDPOINT`). Accepted records
 * are turned into metric data with their own point times (otlp-points.ts), buffered, and sent every
 * export interval by the official OTLP/HTTP exporter (`OTLPMetricExporter.export(ResourceMetrics)`:
 * its JSON encoding, retries, `OTEL_EXPORTER_OTLP_HEADERS`). The SDK's MeterProvider is not used
 * because its instruments stamp every point with the collection time.
 */
import { ValueType } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { type Resource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  type DataPoint,
  DataPointType,
  type MetricData,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import type { Logger } from '../logger.js';
import { type ExportableRecord, recordPoints } from './otlp-points.js';

export type { ExportableRecord } from './otlp-points.js';

/** Forwards accepted metrics to an OpenTelemetry collector. */
export interface OtlpForwarder {
  /** Buffers the points of one accepted record (never throws, never waits). */
  record(rec: ExportableRecord): void;
  /** Exports what is buffered now; resolves when that export finished or failed (never rejects). */
  flush(): Promise<void>;
  /** Exports what is buffered and stops; resolves within `closeTimeoutMs` even if the receiver is dead. */
  close(): Promise<void>;
}

/** Options of {@link createOtlpForwarder}. */
export interface OtlpForwarderOptions {
  /** OTLP/HTTP base URL; `/v1/metrics` is appended when missing. */
  endpoint: string;
  /** Resource `service.name`. */
  serviceName: string;
  /** Where export failures are reported. */
  log: Logger;
  /** Export interval (default 10 s). */
  exportIntervalMs?: number;
  /** Deadline of one export including the exporter's own retries (default 5 s). */
  timeoutMs?: number;
  /** Longest time {@link OtlpForwarder.close} waits for the last export (default 1.5 s). */
  closeTimeoutMs?: number;
  /** Points kept while the receiver is slow; newer records are dropped beyond (default 100 000). */
  maxBufferedPoints?: number;
  /** At most one failure warning per this period (default 60 s); the next one says how many were folded in. */
  warnIntervalMs?: number;
}

const SCOPE = { name: '@geofence/reference-server' };
/** An export is started early once this many points wait, to keep request bodies moderate. */
const POINTS_PER_EXPORT = 10_000;

/** The endpoint as it may appear in a log: no user info, no query (either can hold a credential). */
function loggableEndpoint(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

/** A short, single-line error text: exporter errors may carry the receiver's whole response body. */
function errorText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s+/g, ' ').slice(0, 200);
}

/** Creates the forwarder and starts its export timer (unref'd: it never keeps the process alive). */
export function createOtlpForwarder(o: OtlpForwarderOptions): OtlpForwarder {
  const url = o.endpoint.endsWith('/v1/metrics') ? o.endpoint : `${o.endpoint.replace(/\/$/, '')}/v1/metrics`;
  const where = loggableEndpoint(url);
  const timeoutMs = o.timeoutMs ?? 5_000;
  const closeTimeoutMs = o.closeTimeoutMs ?? 1_500;
  const maxBuffered = o.maxBufferedPoints ?? 100_000;
  const warnEvery = o.warnIntervalMs ?? 60_000;
  const exporter = new OTLPMetricExporter({ url, timeoutMillis: timeoutMs });
  const resource: Resource = resourceFromAttributes({ 'service.name': o.serviceName });
  const startTime = hrNow();

  let pending: MetricData[] = [];
  let pendingPoints = 0;
  const accepted = new Map<string, number>();
  let acceptedDirty = false;
  const inflight = new Set<Promise<void>>();
  let inflightPoints = 0;
  let closing = false;
  let closed = false;

  // Rate limit: a dead receiver must not turn every export interval into a log line.
  let lastWarn = Number.NEGATIVE_INFINITY;
  let folded = 0;
  let lostSinceWarn = 0;
  const warn = (fields: Record<string, unknown>, msg: string, lost: number, force = false) => {
    lostSinceWarn += lost;
    const now = Date.now();
    if (!force && now - lastWarn < warnEvery) {
      folded++;
      return;
    }
    o.log.warn(
      {
        endpoint: where,
        ...fields,
        points_lost: lostSinceWarn,
        ...(folded ? { warnings_suppressed: folded } : {}),
      },
      msg,
    );
    lastWarn = now;
    folded = 0;
    lostSinceWarn = 0;
  };

  const acceptedMetric = (): MetricData => {
    const endTime = hrNow();
    const dataPoints: DataPoint<number>[] = [...accepted].map(([agent, n]) => ({
      startTime,
      endTime,
      attributes: { 'geofence.agent': agent },
      value: n,
    }));
    return {
      descriptor: {
        name: 'geofence.records.accepted',
        description: 'Verified records accepted',
        unit: '',
        valueType: ValueType.DOUBLE,
      },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.SUM,
      isMonotonic: true,
      dataPoints,
    };
  };

  const flush = (): Promise<void> => {
    if (pendingPoints === 0 && !acceptedDirty) return Promise.all([...inflight]).then(() => undefined);
    const metrics = [...pending, acceptedMetric()];
    const points = pendingPoints;
    pending = [];
    pendingPoints = 0;
    acceptedDirty = false;
    inflightPoints += points;
    const rm: ResourceMetrics = { resource, scopeMetrics: [{ scope: SCOPE, metrics }] };
    const run = new Promise<ExportResult>((resolve) => {
      try {
        exporter.export(rm, resolve);
      } catch (err) {
        resolve({ code: ExportResultCode.FAILED, error: err as Error });
      }
    }).then((r) => {
      inflightPoints -= points;
      // After close() gave up, its own warning already counted these points.
      if (r.code !== ExportResultCode.SUCCESS && !closed)
        warn({ err: errorText(r.error) }, 'OTLP export failed; these points are not retried', points);
    });
    inflight.add(run);
    void run.finally(() => inflight.delete(run));
    return Promise.all([...inflight]).then(() => undefined);
  };

  const timer = setInterval(() => void flush(), o.exportIntervalMs ?? 10_000);
  timer.unref();

  return {
    record(rec) {
      if (closing) return;
      accepted.set(rec.agentName, (accepted.get(rec.agentName) ?? 0) + 1);
      acceptedDirty = true;
      let r: ReturnType<typeof recordPoints>;
      try {
        r = recordPoints(rec);
      } catch (err) {
        warn({ err: errorText(err), agent: rec.agentName }, 'OTLP: could not convert a record', 0);
        return;
      }
      if (pendingPoints + r.points > maxBuffered) {
        warn({ buffered: pendingPoints }, 'OTLP export buffer full; dropping points', r.points);
        return;
      }
      pending.push(...r.metrics);
      pendingPoints += r.points;
      if (pendingPoints >= POINTS_PER_EXPORT) void flush();
    },
    flush,
    async close() {
      if (closing) return;
      closing = true;
      clearInterval(timer);
      const unexported = () => pendingPoints + inflightPoints;
      const finished = flush().then(() => exporter.shutdown().catch(() => undefined));
      let t: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<true>((resolve) => {
        t = setTimeout(() => resolve(true), closeTimeoutMs);
        t.unref();
      });
      const timedOut = await Promise.race([finished.then(() => false as const), gaveUp]);
      clearTimeout(t);
      closed = true;
      if (timedOut)
        warn(
          { timeout_ms: closeTimeoutMs },
          'OTLP export unfinished at shutdown; buffered points are not exported',
          unexported(),
          true,
        );
      // Failures folded by the rate limit would otherwise never be reported.
      else if (folded > 0) warn({}, 'OTLP export failures since the last warning', 0, true);
    },
  };
}

function hrNow(): [number, number] {
  const ms = Date.now();
  const s = Math.floor(ms / 1000);
  return [s, (ms - s * 1000) * 1e6];
}
