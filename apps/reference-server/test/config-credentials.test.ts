/**
 * Settings of PoG credentials and of `geofence resource-server`: defaults, the environment names,
 * and invalid values reported by variable name.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { resourcePolicy } from '../src/server/resource.js';

const cwd = mkdtempSync(join(tmpdir(), 'gf-cfgpog-'));

describe('credential and resource-server settings', () => {
  it('defaults: 600 s credentials, resource server on 8446 with trust level low', () => {
    const c = loadConfig({ role: 'resource', env: {}, cwd });
    expect(c.port).toBe(8446);
    expect(c.enrollment.credentialLifetimeSeconds).toBe(600);
    expect(resourcePolicy(c)).toEqual({ minTrustLevel: 'low' });
  });

  it('reads CREDENTIAL_LIFETIME_SECONDS, MNO_CA_BUNDLE and the RESOURCE_* variables', () => {
    const c = loadConfig({
      role: 'resource',
      cwd,
      env: {
        CREDENTIAL_LIFETIME_SECONDS: '120',
        RESOURCE_DIR: cwd,
        RESOURCE_ISSUER: 'https://collector.example:8444',
        RESOURCE_MIN_TRUST_LEVEL: 'medium',
        RESOURCE_WORKLOAD_DIGESTS: 'a'.repeat(64),
        RESOURCE_MAX_AGE_SECONDS: '300',
      },
    });
    expect(c.enrollment.credentialLifetimeSeconds).toBe(120);
    expect(c.resource).toMatchObject({ dir: cwd, issuer: 'https://collector.example:8444' });
    expect(resourcePolicy(c)).toEqual({
      minTrustLevel: 'medium',
      workloadDigests: ['a'.repeat(64)],
      maxAgeSeconds: 300,
    });
  });

  it('refuses a trust level none, a too short lifetime and a missing MNO CA file, each by name', () => {
    let err: unknown;
    try {
      loadConfig({
        role: 'collector',
        cwd,
        env: { CREDENTIAL_LIFETIME_SECONDS: '5', MNO_CA_BUNDLE: join(cwd, 'missing.pem') },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues.join('\n');
    expect(issues).toMatch(/CREDENTIAL_LIFETIME_SECONDS/);
    expect(issues).toMatch(/MNO_CA_BUNDLE.*missing\.pem/);
    expect(() => loadConfig({ role: 'resource', cwd, env: { RESOURCE_MIN_TRUST_LEVEL: 'none' } })).toThrow(
      /RESOURCE_MIN_TRUST_LEVEL/,
    );
  });
});
