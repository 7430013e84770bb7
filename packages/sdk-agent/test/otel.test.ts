import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SwtpmInstance, startSwtpm, Tpm } from '@geofence/native-tpm';
import { ExportResultCode } from '@opentelemetry/core';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, createAgent } from '../src/agent.js';
import { staticLocation } from '../src/location/static.js';
import { GeofenceMetricExporter } from '../src/otel.js';
import { startCollector, type TestCollector } from './helpers/collector.js';
import { makePki, type TestPki } from './helpers/pki.js';

const SANTA_CLARA = { region: 'US', state: 'California', city: 'Santa Clara' };
let swtpm: SwtpmInstance;
let tpm: Tpm;
let pki: TestPki;
let collector: TestCollector;
let agent: Agent;

beforeAll(async () => {
  pki = makePki();
  swtpm = await startSwtpm({ ekCert: false, timeoutMs: 60_000 });
  tpm = await Tpm.open({ tcti: swtpm.tcti });
  collector = await startCollector(pki);
  agent = createAgent({
    name: 'agent-otel',
    tpm,
    gateway: collector.url,
    tls: { ca: pki.caPem },
    location: staticLocation(SANTA_CLARA),
    stateDir: mkdtempSync(join(tmpdir(), 'agent-otel-')),
    outbox: false,
    retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  });
  const id = await agent.ready();
  await collector.register('agent-otel', id.publicKeyPem, id.keyid, { allow: [SANTA_CLARA] });
});

afterAll(async () => {
  await agent?.close();
  await collector?.stop();
  await tpm?.close();
  await swtpm?.stop();
});

describe('GeofenceMetricExporter', () => {
  it('exports each collection of a PeriodicExportingMetricReader as one signed batch', async () => {
    const exporter = new GeofenceMetricExporter(agent);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const meter = provider.getMeter('edge-app', '1.2.3');
    const requests = meter.createCounter('requests', { description: 'requests served', unit: '1' });
    const latency = meter.createHistogram('latency', { unit: 'ms' });
    requests.add(3, { route: '/a' });
    requests.add(2, { route: '/b' });
    latency.record(12.5);
    latency.record(40);
    const before = collector.records.length;
    await reader.forceFlush();
    const recs = collector.records.slice(before);
    expect(recs).toHaveLength(1);
    const batch = recs[0]!.metrics.batch as Array<Record<string, unknown>>;
    const counter = batch.find((m) => m.name === 'requests')!;
    expect(counter).toMatchObject({
      type: 'sum',
      monotonic: true,
      unit: '1',
      scope: { name: 'edge-app', version: '1.2.3' },
    });
    const points = counter.points as Array<{ attributes: { route: string }; value: number }>;
    expect(points.map((p) => [p.attributes.route, p.value]).sort()).toEqual([
      ['/a', 3],
      ['/b', 2],
    ]);
    const hist = batch.find((m) => m.name === 'latency')!;
    expect((hist.points as Array<{ value: { count: number; sum: number } }>)[0]!.value).toMatchObject({
      count: 2,
      sum: 52.5,
    });
    await provider.shutdown();
  });

  it('fails the export when the gateway rejects the batch', async () => {
    const exporter = new GeofenceMetricExporter(agent);
    const reader = new PeriodicExportingMetricReader({
      exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
      exportIntervalMillis: 60_000,
    });
    const provider = new MeterProvider({ readers: [reader] });
    provider.getMeter('m').createCounter('c').add(1);
    const { resourceMetrics: collected } = await reader.collect();
    await collector.setActive('agent-otel', false);
    try {
      const result = await new Promise<{ code: ExportResultCode; error?: Error }>((resolve) =>
        exporter.export(collected, resolve),
      );
      expect(result.code).toBe(ExportResultCode.FAILED);
      expect(result.error).toMatchObject({ name: 'GeofenceRejection', validationType: 'agent_verification' });
    } finally {
      await collector.setActive('agent-otel', true);
      await provider.shutdown();
    }
  });
});
