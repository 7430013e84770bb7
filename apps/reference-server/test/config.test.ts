import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

const cwd = mkdtempSync(join(tmpdir(), 'gf-config-'));

describe('loadConfig', () => {
  it('has safe defaults: TLS on with verification, loopback, memory nonces, role port', () => {
    const c = loadConfig({ role: 'collector', env: {}, cwd });
    expect(c.tls.enabled).toBe(true);
    expect(c.tls.insecureSkipVerify).toBe(false);
    expect(c.tls.minVersion).toBe('TLSv1.2');
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8444);
    expect(c.nonce.store).toBe('memory');
    expect(c.nonce.ttlSeconds).toBe(300);
    expect(c.gateway.policyEnforcement).toBe(false);
    expect(loadConfig({ role: 'gateway', env: {}, cwd }).port).toBe(8443);
    expect(loadConfig({ role: 'agent', env: {}, cwd }).port).toBe(8442);
  });

  it('reads the original variable names, JSON-array and comma lists', () => {
    const c = loadConfig({
      role: 'gateway',
      cwd,
      env: {
        SERVICE_NAME: 'opentelemetry-gateway',
        PORT: '9000',
        SSL_ENABLED: 'false',
        LOG_LEVEL: 'debug',
        NONCE_LENGTH: '32',
        ALLOWED_REGIONS: '["US"]',
        ALLOWED_STATES: 'California, Texas',
        GATEWAY_POLICY_ENFORCEMENT: 'true',
        GATEWAY_VALIDATE_GEOLOCATION: 'false',
        GEOGRAPHIC_CITY: 'Austin',
        TPM2TOOLS_TCTI: 'swtpm:host=127.0.0.1,port=2331',
      },
    });
    expect(c.serviceName).toBe('opentelemetry-gateway');
    expect(c.port).toBe(9000);
    expect(c.tls.enabled).toBe(false);
    expect(c.logLevel).toBe('debug');
    expect(c.nonce.length).toBe(32);
    expect(c.geo.allowedRegions).toEqual(['US']);
    expect(c.geo.allowedStates).toEqual(['California', 'Texas']);
    expect(c.gateway.policyEnforcement).toBe(true);
    expect(c.gateway.validateGeolocation).toBe(false);
    expect(c.gateway.validateSignature).toBe(true);
    expect(c.agent.city).toBe('Austin');
    expect(c.agent.tcti).toBe('swtpm:host=127.0.0.1,port=2331');
  });

  it('takes service.name from OTEL_SERVICE_NAME over SERVICE_NAME, and the OTLP export settings', () => {
    const both = loadConfig({
      role: 'collector',
      cwd,
      env: {
        SERVICE_NAME: 'legacy-name',
        OTEL_SERVICE_NAME: 'otel-name',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
        OTEL_METRIC_EXPORT_INTERVAL: '2500',
        OTEL_EXPORTER_OTLP_TIMEOUT: '1500',
      },
    });
    expect(both.serviceName).toBe('otel-name');
    expect(both.otel).toEqual({ endpoint: 'http://127.0.0.1:4318', exportIntervalMs: 2500, timeoutMs: 1500 });
    const legacy = loadConfig({ role: 'collector', cwd, env: { SERVICE_NAME: 'legacy-name' } });
    expect(legacy.serviceName).toBe('legacy-name');
    expect(legacy.otel).toEqual({ exportIntervalMs: 10_000, timeoutMs: 5_000 });
  });

  it('reports every invalid setting by its variable name', () => {
    let err: unknown;
    try {
      loadConfig({
        role: 'collector',
        cwd,
        env: {
          PORT: 'eighty',
          SSL_ENABLED: 'maybe',
          NONCE_STORE: 'mongo',
          GEOFENCE_ADMIN_TOKEN: 'short',
          NONCE_LENGTH: '16',
        },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as ConfigError).issues.join('\n');
    expect(msg).toContain('PORT');
    expect(msg).toContain('SSL_ENABLED');
    expect(msg).toContain('NONCE_STORE');
    expect(msg).toContain('GEOFENCE_ADMIN_TOKEN');
    expect(msg).toContain('NONCE_LENGTH');
  });

  it('merges the config file below the environment and CLI overrides above both', () => {
    const file = join(cwd, 'custom.json');
    writeFileSync(file, JSON.stringify({ port: 7000, serviceName: 'from-file', nonce: { ttlSeconds: 120 } }));
    const c = loadConfig({
      role: 'collector',
      cwd,
      configPath: file,
      env: { SERVICE_NAME: 'from-env' },
      overrides: { port: 7100 },
    });
    expect(c.serviceName).toBe('from-env');
    expect(c.port).toBe(7100);
    expect(c.nonce.ttlSeconds).toBe(120);
    expect(c.nonce.maxOutstanding).toBe(16);
  });

  it('rejects unknown keys in the config file and a redis store without URL', () => {
    const file = join(cwd, 'bad.json');
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    expect(() => loadConfig({ role: 'collector', cwd, configPath: file, env: {} })).toThrow(ConfigError);
    expect(() => loadConfig({ role: 'collector', cwd, env: { NONCE_STORE: 'redis' } })).toThrow(/REDIS_URL/);
  });
});
