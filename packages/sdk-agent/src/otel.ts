import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import {
  AggregationTemporality,
  DataPointType,
  type InstrumentType,
  type MetricData,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import type { Agent } from './agent.js';
import { DeliveryDeferredError } from './errors.js';
import type { AgentLogger } from './options.js';

/** Options of {@link GeofenceMetricExporter}. */
export interface GeofenceMetricExporterOptions {
  /** Temporality to ask the SDK for (default cumulative, like the OTLP exporters). */
  temporality?: AggregationTemporality;
  /** Include the resource attributes in every metric set (default true). */
  includeResource?: boolean;
  /** Logger for export failures (default: silent; the SDK's diag logger also sees the errors). */
  logger?: AgentLogger;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** JSON-safe copy: non-finite numbers become null (JCS cannot encode them), functions are dropped. */
function toJson(v: unknown): Json {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (Array.isArray(v)) return v.map(toJson);
  if (typeof v === 'object') {
    const out: { [k: string]: Json } = {};
    for (const [k, x] of Object.entries(v)) {
      if (typeof x === 'function' || x === undefined) continue;
      out[k] = toJson(x);
    }
    return out;
  }
  return null;
}

function hrToIso([s, ns]: readonly [number, number]): string {
  return new Date(s * 1000 + Math.floor(ns / 1e6)).toISOString();
}

const TYPE_NAMES: Record<DataPointType, string> = {
  [DataPointType.HISTOGRAM]: 'histogram',
  [DataPointType.EXPONENTIAL_HISTOGRAM]: 'exponential_histogram',
  [DataPointType.GAUGE]: 'gauge',
  [DataPointType.SUM]: 'sum',
};

/**
 * One metric set per OpenTelemetry metric:
 * `{ name, description, unit, type, temporality, monotonic?, scope, resource?, points: [{ attributes, start, end, value }] }`.
 */
export function metricSets(rm: ResourceMetrics, includeResource = true): Array<Record<string, unknown>> {
  const resource = includeResource ? toJson(rm.resource.attributes) : undefined;
  const sets: Array<Record<string, unknown>> = [];
  for (const sm of rm.scopeMetrics) {
    const scope = toJson({ name: sm.scope.name, version: sm.scope.version });
    for (const m of sm.metrics as MetricData[]) {
      sets.push({
        name: m.descriptor.name,
        description: m.descriptor.description,
        unit: m.descriptor.unit,
        type: TYPE_NAMES[m.dataPointType],
        temporality: m.aggregationTemporality === AggregationTemporality.DELTA ? 'delta' : 'cumulative',
        ...(m.dataPointType === DataPointType.SUM ? { monotonic: m.isMonotonic } : {}),
        scope,
        ...(resource !== undefined ? { resource } : {}),
        points: m.dataPoints.map((p) => ({
          attributes: toJson(p.attributes),
          start: hrToIso(p.startTime),
          end: hrToIso(p.endTime),
          value: toJson(p.value),
        })),
      });
    }
  }
  return sets;
}

/**
 * An OpenTelemetry `PushMetricExporter` that sends each export as ONE TPM-signed batch through a
 * geofence agent (`metrics: { batch: [ …one metric set per OTel metric… ] }`, see {@link metricSets}).
 * Exports larger than the agent's `maxBatchSize` are split into consecutive batches.
 * A rejection by the gateway fails the export; a message kept in the durable outbox
 * (gateway unreachable) counts as exported, because it will be delivered.
 *
 * @example
 * ```ts
 * const reader = new PeriodicExportingMetricReader({ exporter: new GeofenceMetricExporter(agent), exportIntervalMillis: 10_000 });
 * const provider = new MeterProvider({ readers: [reader] });
 * ```
 */
export class GeofenceMetricExporter implements PushMetricExporter {
  private readonly inflight = new Set<Promise<unknown>>();
  private shut = false;

  constructor(
    private readonly agent: Agent,
    private readonly options: GeofenceMetricExporterOptions = {},
  ) {}

  /** Exports one collection as one signed batch (split only above `maxBatchSize`). */
  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    if (this.shut) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('exporter is shut down') });
      return;
    }
    const sets = metricSets(metrics, this.options.includeResource !== false);
    const run = (async () => {
      const max = this.agent.maxBatchSize;
      for (let i = 0; i < sets.length; i += max) await this.agent.sendBatch(sets.slice(i, i + max));
    })();
    this.inflight.add(run);
    run.then(
      () => resultCallback({ code: ExportResultCode.SUCCESS }),
      (err: unknown) => {
        if (err instanceof DeliveryDeferredError) {
          resultCallback({ code: ExportResultCode.SUCCESS });
          return;
        }
        this.options.logger?.warn({ err: (err as Error).message }, 'metric export failed');
        resultCallback({
          code: ExportResultCode.FAILED,
          error: err instanceof Error ? err : new Error(String(err)),
        });
      },
    );
    run.finally(() => this.inflight.delete(run)).catch(() => undefined);
  }

  /** Temporality the SDK should aggregate with. */
  selectAggregationTemporality(_instrumentType: InstrumentType): AggregationTemporality {
    return this.options.temporality ?? AggregationTemporality.CUMULATIVE;
  }

  /** Waits for exports in flight. */
  async forceFlush(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
  }

  /** Waits for exports in flight and refuses new ones (the agent itself stays open). */
  async shutdown(): Promise<void> {
    this.shut = true;
    await this.forceFlush();
  }
}
