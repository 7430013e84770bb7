import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { globalGeoPolicy, maxSpeedOption, rateLimitStore } from '../src/runtime.js';

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
        MAX_ACCURACY_M: '250',
        MAX_SPEED_KMH: '900.5',
      },
    });
    expect(c.geo.maxAccuracyM).toBe(250);
    expect(c.geo.maxSpeedKmh).toBe(900.5);
    expect(globalGeoPolicy(c)).toEqual({
      allow: [
        { region: 'US', state: 'California' },
        { region: 'US', state: 'Texas' },
      ],
      max_accuracy_m: 250,
    });
    expect(maxSpeedOption(c)).toBe(900.5);
    const defaults = loadConfig({ role: 'collector', env: {}, cwd });
    expect(defaults.geo.maxSpeedKmh).toBe(1000);
    expect(globalGeoPolicy(defaults)).toBeUndefined();
    expect(maxSpeedOption(loadConfig({ role: 'collector', env: { MAX_SPEED_KMH: '0' }, cwd }))).toBe(false);
    expect(() => loadConfig({ role: 'collector', env: { MAX_SPEED_KMH: '-5' }, cwd })).toThrow(
      /MAX_SPEED_KMH/,
    );
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

  describe('config file typos and unreadable files (issue 11 item 5)', () => {
    /** The ConfigError `loadConfig` throws for `file` (JSON) and `env`, or a failure when it does not. */
    function issuesOf(
      file: unknown,
      env: Record<string, string> = {},
      role: 'collector' | 'gateway' = 'collector',
    ) {
      const path = join(cwd, 'typo.json');
      writeFileSync(path, JSON.stringify(file));
      try {
        loadConfig({ role, cwd, configPath: path, env });
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as ConfigError).issues;
      }
      throw new Error('loadConfig accepted the configuration');
    }

    it('rejects a misspelled nonce setting instead of running on the memory store', () => {
      expect(issuesOf({ nonce: { stor: 'redis' } })).toEqual([
        'nonce.stor: unknown setting — did you mean nonce.store?',
      ]);
    });

    it('rejects unknown keys at every level, each with the closest known key', () => {
      const issues = issuesOf({
        tls: { minVerison: 'TLSv1.3' },
        gateway: { policyEnforcment: true },
        geo: { allow: [{ region: 'US', sate: 'California' }] },
        store: 'redis',
        SSL_CA_PATH: '/etc/ca.pem',
        colour: 'blue',
      });
      expect(issues).toEqual(
        expect.arrayContaining([
          'tls.minVerison: unknown setting — did you mean tls.minVersion?',
          'gateway.policyEnforcment: unknown setting — did you mean gateway.policyEnforcement?',
          'geo.allow.0.sate: unknown setting — did you mean geo.allow.0.state?',
          'store: unknown setting — did you mean nonce.store?',
          'SSL_CA_PATH: unknown setting — did you mean tls.caPath?',
          'colour: unknown setting',
        ]),
      );
      expect(issues).toHaveLength(6);
    });

    it('reports missing files and a bad value together, one line each, named as they were set', () => {
      const missing = join(cwd, 'no-such-dir');
      const issues = issuesOf(
        { nonce: { ttlSeconds: 1 }, enrollment: { ekCaPaths: [join(missing, 'ek-ca.pem')] } },
        { SSL_CERT_PATH: join(missing, 'cert.pem'), SSL_KEY_PATH: join(missing, 'key.pem') },
      );
      expect(issues).toEqual(
        expect.arrayContaining([
          `SSL_CERT_PATH: cannot read ${join(missing, 'cert.pem')} (ENOENT)`,
          `SSL_KEY_PATH: cannot read ${join(missing, 'key.pem')} (ENOENT)`,
          `enrollment.ekCaPaths.0: cannot read ${join(missing, 'ek-ca.pem')} (ENOENT)`,
          expect.stringMatching(/^nonce\.ttlSeconds: .*5/),
        ]),
      );
      expect(issues).toHaveLength(4);
      for (const line of issues) expect(line).not.toContain('\n');
    });

    it('reports a directory or an unreadable file where a file is read, only for the role that reads it', () => {
      const dir = join(cwd, 'a-directory');
      mkdirSync(dir, { recursive: true });
      expect(issuesOf({}, { SSL_CLIENT_CERT_PATH: dir, SSL_CLIENT_KEY_PATH: dir }, 'gateway')).toEqual([
        `SSL_CLIENT_CERT_PATH: cannot read ${dir} (EISDIR)`,
        `SSL_CLIENT_KEY_PATH: cannot read ${dir} (EISDIR)`,
      ]);
      // The collector never reads the gateway's client certificate: a shared environment still works.
      expect(() =>
        loadConfig({ role: 'collector', cwd, env: { SSL_CLIENT_CERT_PATH: dir, SSL_CLIENT_KEY_PATH: dir } }),
      ).not.toThrow();
      const notADir = join(cwd, 'plain-file');
      writeFileSync(notADir, 'x');
      expect(
        issuesOf({ dataDir: notADir, enrollment: { signingKeyPath: join(notADir, 'key.pem') } }),
      ).toEqual([
        `dataDir: ${notADir} is not a directory (ENOTDIR)`,
        `enrollment.signingKeyPath: cannot read ${join(notADir, 'key.pem')} (ENOTDIR)`,
      ]);
      // root reads everything: the permission check can only be seen as another user.
      if (process.getuid?.() !== 0) {
        const secret = join(cwd, 'unreadable-key.pem');
        writeFileSync(secret, 'x');
        chmodSync(secret, 0o000);
        expect(issuesOf({ enrollment: { signingKeyPath: secret } })).toEqual([
          `enrollment.signingKeyPath: cannot read ${secret} (EACCES)`,
        ]);
      }
    });

    it('reports half of a certificate/key pair, which used to fall back to the demo certificate', () => {
      const key = join(cwd, 'key-only.pem');
      writeFileSync(key, 'x');
      expect(issuesOf({ tls: { keyPath: key } })).toEqual([
        'tls.certPath (env SSL_CERT_PATH): required when tls.keyPath (env SSL_KEY_PATH) is set',
      ]);
    });

    it("lists a setting the command requires with the other problems (geofence enroll's agent name)", () => {
      let err: unknown;
      try {
        loadConfig({ role: 'cli', cwd, env: { GPSD_PORT: 'x' }, required: ['agent.name'] });
      } catch (e) {
        err = e;
      }
      expect((err as ConfigError).issues).toEqual([
        'GPSD_PORT: expected an integer, got "x"',
        'agent.name (env AGENT_NAME): required',
      ]);
      expect(
        loadConfig({ role: 'cli', cwd, env: { AGENT_NAME: 'a1' }, required: ['agent.name'] }).agent.name,
      ).toBe('a1');
    });

    it('still loads a valid file with existing paths, resolved against cwd', () => {
      writeFileSync(join(cwd, 'ca.pem'), 'x');
      writeFileSync(join(cwd, 'cert.pem'), 'x');
      writeFileSync(join(cwd, 'key.pem'), 'x');
      const path = join(cwd, 'good.json');
      writeFileSync(
        path,
        JSON.stringify({
          nonce: { store: 'sqlite', sqlitePath: 'nonces.db' },
          tls: { certPath: 'cert.pem', keyPath: 'key.pem', caPath: 'ca.pem' },
          enrollment: { ekCaPaths: ['ca.pem'] },
          geo: { allow: [{ region: 'US', state: 'California' }] },
        }),
      );
      const c = loadConfig({ role: 'collector', cwd, configPath: path, env: {} });
      expect(c.nonce.store).toBe('sqlite');
      expect(c.tls.certPath).toBe(join(cwd, 'cert.pem'));
      expect(c.enrollment.ekCaPaths).toEqual([join(cwd, 'ca.pem')]);
      expect(c.geo.allow).toEqual([{ region: 'US', state: 'California' }]);
    });
  });
});

describe('worker processes and shared rate limits (issue 12)', () => {
  /** The issues of a configuration that must not load. */
  function issuesOf(role: 'collector' | 'gateway', env: Record<string, string>): string[] {
    try {
      loadConfig({ role, env, cwd });
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).issues;
    }
    throw new Error('expected a ConfigError');
  }

  it('reads COLLECTOR_WORKERS / GATEWAY_WORKERS as a count or auto, default 1', () => {
    expect(loadConfig({ role: 'collector', env: {}, cwd }).workers).toEqual({ collector: 1, gateway: 1 });
    const c = loadConfig({
      role: 'collector',
      env: { COLLECTOR_WORKERS: 'auto', GATEWAY_WORKERS: '3', NONCE_STORE: 'sqlite' },
      cwd,
    });
    expect(c.workers).toEqual({ collector: 'auto', gateway: 3 });
    expect(issuesOf('collector', { COLLECTOR_WORKERS: 'many', NONCE_STORE: 'sqlite' })).toEqual([
      'COLLECTOR_WORKERS: expected an integer, got "many"',
    ]);
    expect(issuesOf('gateway', { GATEWAY_WORKERS: '0' })[0]).toMatch(/^GATEWAY_WORKERS: /);
  });

  it('refuses more than one collector worker on the memory nonce store, naming NONCE_STORE', () => {
    const envs: Record<string, string>[] = [
      { COLLECTOR_WORKERS: '2' },
      { COLLECTOR_WORKERS: 'auto', NONCE_STORE: 'memory' },
    ];
    for (const env of envs) {
      const issues = issuesOf('collector', env);
      expect(issues).toHaveLength(1);
      expect(issues[0]).toMatch(
        /^nonce\.store \(env NONCE_STORE\): the memory nonce store is private to one process/,
      );
    }
    // The gateway keeps no nonces: its workers need no shared nonce store.
    expect(loadConfig({ role: 'gateway', env: { GATEWAY_WORKERS: '2' }, cwd }).workers.gateway).toBe(2);
  });

  it('needs REDIS_URL for RATE_LIMIT_STORE=redis', () => {
    expect(issuesOf('gateway', { RATE_LIMIT_STORE: 'redis' })).toEqual([
      'nonce.redisUrl (env REDIS_URL): required when the rate limit store is redis',
    ]);
    const c = loadConfig({
      role: 'gateway',
      env: { RATE_LIMIT_STORE: 'redis', REDIS_URL: 'redis://127.0.0.1:6379' },
      cwd,
    });
    expect(c.rateLimit.bucketStore).toBe('redis');
  });

  it('shares the rate limits in Redis by default when the nonces are there, and not otherwise', () => {
    const redis = { NONCE_STORE: 'redis', REDIS_URL: 'redis://127.0.0.1:6379' };
    expect(rateLimitStore(loadConfig({ role: 'collector', env: redis, cwd }))).toBe('redis');
    expect(
      rateLimitStore(loadConfig({ role: 'collector', env: { ...redis, RATE_LIMIT_STORE: 'memory' }, cwd })),
    ).toBe('memory');
    expect(rateLimitStore(loadConfig({ role: 'collector', env: { NONCE_STORE: 'sqlite' }, cwd }))).toBe(
      'memory',
    );
  });
});
