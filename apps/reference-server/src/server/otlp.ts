/**
 * Optional OTLP export of accepted metrics (`OTEL_EXPORTER_OTLP_ENDPOINT`), with the official
 * OpenTelemetry SDK: every numeric leaf of an accepted `metrics` object is recorded as a gauge sample
 * labelled with the agent name and the metric path; the SDK exports them periodically over OTLP/HTTP.
 */
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';

/** Forwards accepted metrics to an OpenTelemetry collector. */
export interface OtlpForwarder {
  record(agentName: string, metrics: unknown): void;
  close(): Promise<void>;
}

const MAX_LEAVES = 256;

function numericLeaves(value: unknown, prefix: string, out: Array<[string, number]>, depth = 0): void {
  if (out.length >= MAX_LEAVES || depth > 6) return;
  if (typeof value === 'number' && Number.isFinite(value)) out.push([prefix, value]);
  else if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value))
      numericLeaves(v, prefix ? `${prefix}.${k}` : k, out, depth + 1);
  }
}

/** Creates the forwarder for `endpoint` (base URL; `/v1/metrics` is appended when missing). */
export function createOtlpForwarder(
  endpoint: string,
  serviceName: string,
  intervalMs = 10_000,
): OtlpForwarder {
  const url = endpoint.endsWith('/v1/metrics') ? endpoint : `${endpoint.replace(/\/$/, '')}/v1/metrics`;
  const reader = new PeriodicExportingMetricReader({
    exporter: new OTLPMetricExporter({ url }),
    exportIntervalMillis: intervalMs,
  });
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter(serviceName);
  const gauge = meter.createGauge('geofence.agent.metric', {
    description: 'Numeric values of verified agent metrics (attribute metric = JSON path)',
  });
  const accepted = meter.createCounter('geofence.records.accepted', {
    description: 'Verified records accepted',
  });
  return {
    record(agentName, metrics) {
      accepted.add(1, { agent_name: agentName });
      const leaves: Array<[string, number]> = [];
      numericLeaves(metrics, '', leaves);
      for (const [path, v] of leaves) gauge.record(v, { agent_name: agentName, metric: path });
    },
    close: () => provider.shutdown(),
  };
}
