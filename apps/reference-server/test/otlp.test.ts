/**
 * Optional OTLP export: with OTEL_EXPORTER_OTLP_ENDPOINT set, accepted metrics reach an OTLP/HTTP
 * receiver running as its own process (helpers/otlp-receiver-main.ts), which decodes what the
 * official exporter sent. Batches (`metrics: { batch: [...] }` from `Agent.sendBatch` and from
 * `GeofenceMetricExporter`) must arrive point by point, each with its own time.
 */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { metricSets } from '@geofence/agent';
import { SqliteRegistry } from '@geofence/verifier';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startCollector } from '../src/server/collector.js';
import { createOtlpForwarder } from '../src/server/otlp.js';
import { testConfig, testDataDir } from './helpers/env.js';
import { startOtlpReceiver } from './helpers/otlp-receiver.js';
import {
  client,
  postMetrics,
  register,
  SANTA_CLARA,
  signedRequest,
  softAgent,
} from './helpers/soft-agent.js';

/** A reader the test collects from by hand, to get the SDK's real ResourceMetrics. */
class ManualReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** A warn-level logger whose lines the test can count. */
function capturingLog() {
  const lines: Array<{ level: string; msg: string } & Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  const log = pino({ level: 'warn', formatters: { level: (label) => ({ level: label }) } }, stream);
  return { log, warnings: () => lines.filter((l) => l.level === 'warn') };
}

const nanos = (iso: string) => (BigInt(Date.parse(iso)) * 1_000_000n).toString();

async function collectorWith(endpoint: string, log: ReturnType<typeof capturingLog>['log']) {
  const { dir, pki } = await testDataDir('otlp');
  const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  const agent = softAgent('agent-otel');
  await register(registry, agent);
  const col = await startCollector(
    testConfig('collector', dir, { serviceName: 'otlp-test-service', otel: { endpoint } }),
    { log },
  );
  const c = client(pki.ca);
  return {
    col,
    post: (metrics: Record<string, unknown>) =>
      signedRequest(c, col.url, agent, { metrics }).then((req) => postMetrics(c, col.url, req)),
    cleanup: async () => {
      await c.close();
      await registry.close();
    },
  };
}

describe('OTLP export of accepted metrics', () => {
  it('exports every point of a batch with its own time, the agent and place attributes and service.name', async () => {
    const receiver = await startOtlpReceiver();
    const { log, warnings } = capturingLog();
    const { col, post, cleanup } = await collectorWith(receiver.endpoint, log);

    // What GeofenceMetricExporter sends: metricSets() of the SDK's ResourceMetrics, two collections
    // at different times. The agent's own `geofence.agent` attribute must not survive.
    const reader = new ManualReader();
    const provider = new MeterProvider({ readers: [reader] });
    const requests = provider.getMeter('app').createCounter('app.requests');
    requests.add(5, { route: '/a', 'geofence.agent': 'someone-else' });
    const first = metricSets((await reader.collect()).resourceMetrics);
    await new Promise((r) => setTimeout(r, 25));
    requests.add(3, { route: '/a', 'geofence.agent': 'someone-else' });
    const second = metricSets((await reader.collect()).resourceMetrics);
    await provider.shutdown();
    // What sendBatch sends for plain metric sets: each with its own time.
    const t0 = Date.now() - 60_000;
    const plain = [0, 1, 2].map((i) => ({
      timestamp: new Date(t0 + i * 1000).toISOString(),
      cpu_percent: 40 + i,
      disk: [i, i * 10],
    }));
    try {
      const r = await post({ batch: [...plain, ...first, ...second] });
      expect(r.status).toBe(200);
    } finally {
      await col.close(); // shutdown flushes the exporter
      await cleanup();
      await receiver.stop();
    }
    expect(receiver.errors).toEqual([]);
    const points = receiver.points;
    expect(points.length).toBeGreaterThan(0);
    expect(new Set(points.map((p) => p.service))).toEqual(new Set(['otlp-test-service']));
    const place = {
      'geofence.agent': 'agent-otel',
      'geofence.region': SANTA_CLARA.region,
      'geofence.state': SANTA_CLARA.state,
      'geofence.city': SANTA_CLARA.city,
      'geofence.location.quality': 'static',
    };

    const cpu = points.filter((p) => p.attributes.metric === 'cpu_percent');
    expect(cpu.map((p) => ({ value: p.value, time: p.time }))).toEqual(
      plain.map((s) => ({ value: s.cpu_percent, time: nanos(s.timestamp) })),
    );
    for (const p of cpu) {
      expect(p.metric).toBe('geofence.agent.metric');
      expect(p.attributes).toEqual({ metric: 'cpu_percent', ...place });
    }
    const disk = points.filter((p) => String(p.attributes.metric).startsWith('disk.'));
    expect(disk.map((p) => [p.attributes.metric, p.value, p.time])).toEqual(
      plain.flatMap((s) => [
        ['disk.0', s.disk[0], nanos(s.timestamp)],
        ['disk.1', s.disk[1], nanos(s.timestamp)],
      ]),
    );

    const sets = [...first, ...second].filter((s) => s.name === 'app.requests') as Array<{
      points: Array<{ start: string; end: string; value: number }>;
    }>;
    expect(sets).toHaveLength(2);
    const sums = points.filter((p) => p.metric === 'app.requests');
    expect(sums.map((p) => ({ value: p.value, start: p.start, time: p.time }))).toEqual(
      sets.map((s) => ({
        value: s.points[0]?.value,
        start: nanos(s.points[0]?.start ?? ''),
        time: nanos(s.points[0]?.end ?? ''),
      })),
    );
    expect(sums.map((p) => p.value)).toEqual([5, 8]);
    expect(sums[0]?.time).not.toBe(sums[1]?.time);
    for (const p of sums) {
      expect(p).toMatchObject({ type: 'sum', monotonic: true, temporality: 2 });
      expect(p.attributes).toEqual({ route: '/a', ...place });
    }

    const accepted = points.filter((p) => p.metric === 'geofence.records.accepted');
    expect(accepted.map((p) => [p.value, p.attributes])).toEqual([[1, { 'geofence.agent': 'agent-otel' }]]);
    expect(warnings()).toEqual([]);
  });

  for (const mode of ['stopped', 'hang'] as const) {
    it(`close() finishes within the bound and logs one warning when the receiver is ${mode === 'hang' ? 'up but never answers' : 'gone'}`, async () => {
      const receiver = await startOtlpReceiver(mode === 'hang' ? 'hang' : 'normal');
      if (mode === 'stopped') await receiver.stop();
      const { log, warnings } = capturingLog();
      const { col, post, cleanup } = await collectorWith(receiver.endpoint, log);
      let ms = 0;
      try {
        expect((await post({ cpu_percent: 1 })).status).toBe(200);
      } finally {
        const t = performance.now();
        await col.close();
        ms = performance.now() - t;
        await cleanup();
        await receiver.stop();
      }
      expect(ms).toBeLessThan(3000);
      const w = warnings();
      expect(w).toHaveLength(1);
      expect(w[0]?.msg).toMatch(/OTLP/);
      expect(w[0]?.endpoint).toBe(`${receiver.endpoint}/v1/metrics`);
      expect(w[0]?.points_lost).toBeGreaterThan(0);
    });
  }

  it('rate-limits export failure warnings to one per interval', async () => {
    const receiver = await startOtlpReceiver();
    await receiver.stop();
    const { log, warnings } = capturingLog();
    const fwd = createOtlpForwarder({
      endpoint: `${receiver.endpoint.replace('http://', 'http://user:secret@')}?token=secret`,
      serviceName: 'svc',
      log,
      timeoutMs: 200,
    });
    const rec = {
      agentName: 'a',
      metrics: { v: 1 },
      timestamp: new Date().toISOString(),
      region: { region: 'US' },
    };
    for (let i = 0; i < 3; i++) {
      fwd.record(rec);
      await fwd.flush();
    }
    expect(warnings()).toHaveLength(1);
    expect(JSON.stringify(warnings())).not.toContain('secret');
    await fwd.close();
    // The two folded failures are reported at shutdown, once.
    expect(warnings()).toHaveLength(2);
    expect(warnings()[1]).toMatchObject({ warnings_suppressed: 2, points_lost: 2 });
  });
});
