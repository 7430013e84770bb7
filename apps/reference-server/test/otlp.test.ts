/**
 * Optional OTLP export: with OTEL_EXPORTER_OTLP_ENDPOINT set, accepted metrics reach an
 * OpenTelemetry receiver (here a real HTTP server on loopback that records OTLP/HTTP posts).
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SqliteRegistry } from '@geofence/verifier';
import { describe, expect, it } from 'vitest';
import { startCollector } from '../src/server/collector.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { client, postMetrics, register, signedRequest, softAgent } from './helpers/soft-agent.js';

describe('OTLP export of accepted metrics', () => {
  it('exports the numeric values of accepted metrics, labelled with the agent', async () => {
    const received: Array<{ path: string; type: string; body: Buffer }> = [];
    const receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({
          path: req.url ?? '',
          type: String(req.headers['content-type']),
          body: Buffer.concat(chunks),
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    receiver.listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

    const { dir, pki } = await testDataDir('otlp');
    const registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
    const agent = softAgent('agent-otel');
    await register(registry, agent);
    const col = await startCollector(testConfig('collector', dir, { otel: { endpoint } }), {
      log: silentLog,
    });
    const c = client(pki.ca);
    try {
      const r = await postMetrics(
        c,
        col.url,
        await signedRequest(c, col.url, agent, { metrics: { cpu_percent: 42.5 } }),
      );
      expect(r.status).toBe(200);
    } finally {
      await col.close(); // shutdown flushes the exporter
      await c.close();
      await registry.close();
      receiver.close();
    }
    expect(received.length).toBeGreaterThan(0);
    const all = Buffer.concat(received.map((x) => x.body)).toString('latin1');
    expect(received[0]?.path).toBe('/v1/metrics');
    expect(all).toContain('geofence.agent.metric');
    expect(all).toContain('agent-otel');
    expect(all).toContain('cpu_percent');
  });
});
