/**
 * A minimal OTLP/HTTP metrics receiver, run as its own process by otlp-receiver.ts (an OpenTelemetry
 * Collector binary cannot be installed here). It accepts `POST /v1/metrics` with
 * `application/json` (the OTLP/JSON encoding the official `@opentelemetry/exporter-metrics-otlp-http`
 * sends), decodes it following the OTLP proto3 JSON mapping, and prints one JSON line per request on
 * stdout: `{ "points": [ … ] }`, one entry per data point with its metric, resource service.name,
 * times and attributes. `@opentelemetry/otlp-transformer` 0.223 has request serialisers and response
 * deserialisers only, so decoding the request is done here, strictly: anything malformed is a 400.
 *
 * argv[2] = `hang` makes it accept requests and never answer (a receiver that is up but dead).
 * The first stdout line is `{ "port": N }`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ReceivedPoint } from './otlp-receiver.js';

type AnyValue = Record<string, unknown>;

/** One decoded data point, as reported to the test. */
type Point = ReceivedPoint;

class Malformed extends Error {}

function need(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Malformed(what);
}

function anyValue(v: AnyValue): unknown {
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('arrayValue' in v) {
    const values = (v.arrayValue as { values?: AnyValue[] }).values ?? [];
    return values.map(anyValue);
  }
  throw new Malformed(`unsupported AnyValue ${Object.keys(v).join(',')}`);
}

function attributes(list: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (list === undefined) return out;
  need(Array.isArray(list), 'attributes must be an array');
  for (const kv of list as Array<{ key?: unknown; value?: AnyValue }>) {
    need(typeof kv.key === 'string' && kv.value && typeof kv.value === 'object', 'bad KeyValue');
    out[kv.key] = anyValue(kv.value);
  }
  return out;
}

/** fixed64 nanoseconds: a decimal string in OTLP/JSON (a number is tolerated). */
function nanos(v: unknown, what: string): string {
  need(typeof v === 'string' ? /^\d+$/.test(v) : Number.isInteger(v), `${what} must be fixed64`);
  return String(v);
}

function decode(body: unknown): Point[] {
  need(body && typeof body === 'object', 'body must be an object');
  const rms = (body as { resourceMetrics?: unknown }).resourceMetrics;
  need(Array.isArray(rms), 'resourceMetrics must be an array');
  const points: Point[] = [];
  for (const rm of rms as Array<Record<string, unknown>>) {
    const res = attributes((rm.resource as { attributes?: unknown } | undefined)?.attributes);
    const service = typeof res['service.name'] === 'string' ? res['service.name'] : undefined;
    for (const sm of (rm.scopeMetrics ?? []) as Array<Record<string, unknown>>) {
      for (const m of (sm.metrics ?? []) as Array<Record<string, unknown>>) {
        need(typeof m.name === 'string', 'metric name');
        const type = ['gauge', 'sum', 'histogram', 'exponentialHistogram'].find((t) => t in m);
        need(type, `metric ${m.name} has no data`);
        const data = m[type] as {
          dataPoints?: Array<Record<string, unknown>>;
          aggregationTemporality?: number;
          isMonotonic?: boolean;
        };
        for (const dp of data.dataPoints ?? []) {
          const value =
            type === 'histogram'
              ? {
                  count: Number(dp.count),
                  sum: dp.sum,
                  bucketCounts: (dp.bucketCounts as unknown[]).map(Number),
                  explicitBounds: dp.explicitBounds,
                }
              : 'asDouble' in dp
                ? dp.asDouble
                : Number(dp.asInt);
          points.push({
            metric: m.name,
            type,
            service,
            start: dp.startTimeUnixNano === undefined ? undefined : nanos(dp.startTimeUnixNano, 'start'),
            time: nanos(dp.timeUnixNano, 'timeUnixNano'),
            value,
            attributes: attributes(dp.attributes),
            ...(data.aggregationTemporality !== undefined
              ? { temporality: data.aggregationTemporality }
              : {}),
            ...(data.isMonotonic !== undefined ? { monotonic: data.isMonotonic } : {}),
          });
        }
      }
    }
  }
  return points;
}

const hang = process.argv[2] === 'hang';
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (hang) return;
    if (req.method !== 'POST' || req.url !== '/v1/metrics') {
      res.writeHead(404).end();
      return;
    }
    if (!String(req.headers['content-type']).startsWith('application/json')) {
      res.writeHead(415).end();
      return;
    }
    try {
      const points = decode(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      process.stdout.write(`${JSON.stringify({ points })}\n`);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    } catch (err) {
      process.stdout.write(`${JSON.stringify({ error: (err as Error).message })}\n`);
      res.writeHead(400, { 'content-type': 'application/json' }).end('{}');
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
