/**
 * Turns one accepted `POST /metrics` payload into OpenTelemetry metric data with explicit point
 * times, for the OTLP forwarder (otlp.ts). The SDK's instruments cannot do this: a gauge records
 * "now", and a batch carries many points measured at different times.
 *
 * Two shapes of metric set are understood, alone (`metrics: {…}`) or in a batch
 * (`metrics: { batch: [ … ] }`, from `Agent.sendBatch` and coalesced `send()` calls):
 * - an OpenTelemetry metric set from `GeofenceMetricExporter` / `metricSets()` in `@geofence/agent`
 *   (`{ name, type, temporality, monotonic?, points: [{ attributes, start, end, value }] }`): re-exported
 *   under its own name and type, every point with its own start and end time;
 * - any other JSON object: every finite number in it (arrays included, index as path segment) is a
 *   `geofence.agent.metric` gauge point with attribute `metric` = its path, timed by the set's own
 *   `timestamp` (ISO 8601 or Unix milliseconds) when it has one, else by the payload's signed `timestamp`.
 */
import { type Attributes, type HrTime, ValueType } from '@opentelemetry/api';
import {
  AggregationTemporality,
  type DataPoint,
  DataPointType,
  type Histogram,
  type MetricData,
} from '@opentelemetry/sdk-metrics';

/** What the forwarder needs of an accepted record. */
export interface ExportableRecord {
  /** Agent name from the registry record. */
  agentName: string;
  /** The payload's `metrics` member. */
  metrics: unknown;
  /** The payload's signed `timestamp` (ISO 8601): the time of points that carry none. */
  timestamp: string;
  /** The payload's `geographic_region`. */
  region: { region: string; state?: string | undefined; city?: string | undefined };
  /** Location quality (one of `LOCATION_QUALITIES`: `GNSS` … `static`, `dead-reckoning`, `simulated`) when the agent reported one. */
  locationQuality?: string | undefined;
}

/** Metric data of one record, and how many of its values could not be exported. */
export interface RecordPoints {
  metrics: MetricData[];
  points: number;
  skipped: number;
}

/** Name of the gauge that carries the numbers of plain JSON metric sets. */
export const GENERIC_METRIC = 'geofence.agent.metric';

/** Upper bound of points taken from one record (a 1 MiB body holds far fewer real points). */
const MAX_POINTS_PER_RECORD = 50_000;
const MAX_DEPTH = 8;
const MAX_NAME = 255;

function hrTime(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** Milliseconds of an ISO 8601 string or a Unix-milliseconds number; undefined when neither. */
function timeOf(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v;
  if (typeof v === 'string') {
    const ms = Date.parse(v);
    if (!Number.isNaN(ms)) return ms;
  }
  return undefined;
}

/**
 * Attributes every point of the record gets. Applied last, over the agent's own point attributes, so
 * that an agent cannot label its points as another agent's or another place's.
 */
function recordAttributes(r: ExportableRecord): Attributes {
  const a: Attributes = { 'geofence.agent': r.agentName, 'geofence.region': r.region.region };
  if (r.region.state !== undefined) a['geofence.state'] = r.region.state;
  if (r.region.city !== undefined) a['geofence.city'] = r.region.city;
  if (r.locationQuality !== undefined) a['geofence.location.quality'] = r.locationQuality;
  return a;
}

/** The agent's point attributes that OTLP can carry (primitives and arrays of one primitive type). */
function pointAttributes(v: unknown): Attributes {
  const out: Attributes = {};
  if (!v || typeof v !== 'object' || Array.isArray(v)) return out;
  for (const [k, x] of Object.entries(v)) {
    if (typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x)))
      out[k] = x;
    else if (Array.isArray(x) && x.every((e) => typeof e === 'string')) out[k] = x as string[];
    else if (Array.isArray(x) && x.every((e) => typeof e === 'number' && Number.isFinite(e)))
      out[k] = x as number[];
  }
  return out;
}

interface OtelSet {
  name: string;
  description?: unknown;
  unit?: unknown;
  type: 'gauge' | 'sum' | 'histogram' | 'exponential_histogram';
  temporality?: unknown;
  monotonic?: unknown;
  points: unknown[];
}

const OTEL_TYPES = new Set(['gauge', 'sum', 'histogram', 'exponential_histogram']);

function isOtelSet(v: Record<string, unknown>): v is Record<string, unknown> & OtelSet {
  return (
    typeof v.name === 'string' &&
    v.name.length > 0 &&
    v.name.length <= MAX_NAME &&
    typeof v.type === 'string' &&
    OTEL_TYPES.has(v.type) &&
    Array.isArray(v.points)
  );
}

/** An SDK histogram value (`{ buckets: { boundaries, counts }, sum, count, min?, max? }`), checked. */
function histogramOf(v: unknown): Histogram | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const h = v as Record<string, unknown>;
  const b = h.buckets as Record<string, unknown> | undefined;
  const nums = (a: unknown): a is number[] =>
    Array.isArray(a) && a.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (!b || !nums(b.boundaries) || !nums(b.counts) || b.counts.length !== b.boundaries.length + 1)
    return undefined;
  if (typeof h.count !== 'number' || !Number.isFinite(h.count)) return undefined;
  const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
  const sum = num(h.sum);
  const min = num(h.min);
  const max = num(h.max);
  return {
    buckets: { boundaries: b.boundaries, counts: b.counts },
    count: h.count,
    ...(sum !== undefined ? { sum } : {}),
    ...(min !== undefined ? { min } : {}),
    ...(max !== undefined ? { max } : {}),
  };
}

class Builder {
  readonly metrics: MetricData[] = [];
  points = 0;
  skipped = 0;
  private generic: DataPoint<number>[] | undefined;

  constructor(
    private readonly attrs: Attributes,
    private readonly recordMs: number,
  ) {}

  private room(): boolean {
    if (this.points < MAX_POINTS_PER_RECORD) return true;
    this.skipped++;
    return false;
  }

  /** One metric set of the payload. */
  add(set: unknown): void {
    if (!set || typeof set !== 'object' || Array.isArray(set)) {
      this.skipped++;
      return;
    }
    const s = set as Record<string, unknown>;
    if (isOtelSet(s)) this.addOtel(s);
    else this.addGeneric(s);
  }

  private addGeneric(s: Record<string, unknown>): void {
    const t = hrTime(timeOf(s.timestamp) ?? this.recordMs);
    this.generic ??= [];
    const out = this.generic;
    const walk = (v: unknown, path: string, depth: number): void => {
      if (typeof v === 'number') {
        if (!Number.isFinite(v) || !this.room()) return;
        out.push({ startTime: t, endTime: t, attributes: { metric: path, ...this.attrs }, value: v });
        this.points++;
      } else if (v && typeof v === 'object' && depth < MAX_DEPTH) {
        for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k, depth + 1);
      }
    };
    for (const [k, v] of Object.entries(s)) if (k !== 'timestamp') walk(v, k, 1);
  }

  private addOtel(s: OtelSet): void {
    const descriptor = {
      name: s.name,
      description: typeof s.description === 'string' ? s.description : '',
      unit: typeof s.unit === 'string' ? s.unit : '',
      valueType: ValueType.DOUBLE,
    };
    const temporality =
      s.temporality === 'delta' ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE;
    const numeric: DataPoint<number>[] = [];
    const histograms: DataPoint<Histogram>[] = [];
    for (const p of s.points) {
      const pt = (p && typeof p === 'object' ? p : {}) as Record<string, unknown>;
      const end = timeOf(pt.end) ?? this.recordMs;
      const times = { startTime: hrTime(timeOf(pt.start) ?? end), endTime: hrTime(end) };
      const attributes = { ...pointAttributes(pt.attributes), ...this.attrs };
      if (s.type === 'histogram') {
        const h = histogramOf(pt.value);
        if (!h || !this.room()) {
          if (!h) this.skipped++;
          continue;
        }
        histograms.push({ ...times, attributes, value: h });
      } else if (s.type === 'exponential_histogram') {
        // Not re-encoded: the scale/offset buckets would have to be validated field by field.
        this.skipped++;
        continue;
      } else {
        if (typeof pt.value !== 'number' || !Number.isFinite(pt.value)) {
          this.skipped++;
          continue;
        }
        if (!this.room()) continue;
        numeric.push({ ...times, attributes, value: pt.value });
      }
      this.points++;
    }
    if (s.type === 'gauge' && numeric.length)
      this.metrics.push({
        descriptor,
        aggregationTemporality: temporality,
        dataPointType: DataPointType.GAUGE,
        dataPoints: numeric,
      });
    else if (s.type === 'sum' && numeric.length)
      this.metrics.push({
        descriptor,
        aggregationTemporality: temporality,
        dataPointType: DataPointType.SUM,
        isMonotonic: s.monotonic === true,
        dataPoints: numeric,
      });
    else if (histograms.length)
      this.metrics.push({
        descriptor,
        aggregationTemporality: temporality,
        dataPointType: DataPointType.HISTOGRAM,
        dataPoints: histograms,
      });
  }

  finish(): RecordPoints {
    if (this.generic?.length)
      this.metrics.push({
        descriptor: {
          name: GENERIC_METRIC,
          description: 'Numeric values of verified agent metrics (attribute metric = JSON path)',
          unit: '',
          valueType: ValueType.DOUBLE,
        },
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.GAUGE,
        dataPoints: this.generic,
      });
    return { metrics: this.metrics, points: this.points, skipped: this.skipped };
  }
}

/** The metric data of one accepted record (see the module comment for the shapes understood). */
export function recordPoints(r: ExportableRecord): RecordPoints {
  const b = new Builder(recordAttributes(r), timeOf(r.timestamp) ?? Date.now());
  const m = r.metrics;
  const batch =
    m && typeof m === 'object' && !Array.isArray(m) ? (m as Record<string, unknown>).batch : undefined;
  // `{ batch: [...] }` is the agent SDK's batch envelope; any other object is one metric set.
  if (Array.isArray(batch) && Object.keys(m as object).length === 1) for (const set of batch) b.add(set);
  else b.add(m);
  return b.finish();
}
