import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { ensureDemoPki, type TlsMaterial } from '../../src/tls.js';

/** A fresh data directory with the demo PKI. */
export async function testDataDir(prefix: string): Promise<{ dir: string; pki: TlsMaterial }> {
  const dir = mkdtempSync(join(tmpdir(), `gf-${prefix}-`));
  return { dir, pki: await ensureDemoPki(dir) };
}

/** Config for a role on a free port with the given overrides (environment ignored). */
export function testConfig(
  role: 'collector' | 'gateway',
  dataDir: string,
  overrides: Record<string, unknown> = {},
) {
  return loadConfig({
    role,
    env: {},
    cwd: dataDir,
    overrides: {
      dataDir,
      port: 0,
      logLevel: 'silent',
      adminToken: 'test-admin-token-0123456789abcdef',
      ...overrides,
    },
  });
}

/** A silent logger. */
export const silentLog = createLogger({ level: 'silent', service: 'test' });

export const ADMIN = { authorization: 'Bearer test-admin-token-0123456789abcdef' };
