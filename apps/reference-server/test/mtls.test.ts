/**
 * Optional mutual TLS between gateway and collector (TLS_REQUIRE_CLIENT_CERT): the collector refuses
 * clients without a certificate from the CA; the gateway presents the demo client certificate.
 */
import { describe, expect, it } from 'vitest';
import { startCollector } from '../src/server/collector.js';
import { startGateway } from '../src/server/gateway.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { client, http } from './helpers/soft-agent.js';

describe('mutual TLS to the collector', () => {
  it('admits the gateway and refuses a client without certificate', async () => {
    const { dir, pki } = await testDataDir('mtls');
    const col = await startCollector(testConfig('collector', dir, { tls: { requireClientCert: true } }), {
      log: silentLog,
    });
    const gw = await startGateway(testConfig('gateway', dir, { gateway: { collectorUrl: col.url } }), {
      log: silentLog,
    });
    const c = client(pki.ca);
    try {
      const direct = await http(c, `${col.url}/health`).then(
        (r) => r.status,
        (e: Error) => e.message,
      );
      expect(direct).not.toBe(200);
      const via = await http(c, `${gw.url}/nonce?public_key_hash=${'1'.repeat(64)}`);
      expect(via.status).toBe(403);
      expect(via.json).toMatchObject({ validation_type: 'agent_verification', rejected_by: 'collector' });
    } finally {
      await gw.close();
      await col.close();
      await c.close();
    }
  });
});
