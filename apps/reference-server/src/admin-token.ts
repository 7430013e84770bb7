/**
 * The admin bearer token: from configuration (`GEOFENCE_ADMIN_TOKEN`) or, when absent, generated once
 * and kept in `<dataDir>/admin-token` (mode 0600) so admin endpoints are never open by default.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Path of the generated admin token file. */
export function adminTokenPath(dataDir: string): string {
  return join(dataDir, 'admin-token');
}

/** Returns the configured token, or the one stored in the data directory (creating it when needed). */
export function ensureAdminToken(cfg: { dataDir: string; adminToken?: string | undefined }): string {
  if (cfg.adminToken) return cfg.adminToken;
  const path = adminTokenPath(cfg.dataDir);
  if (existsSync(path)) {
    const t = readFileSync(path, 'utf8').trim();
    if (t.length >= 24) return t;
  }
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  try {
    // 'wx': when another process created the file first, use its token (never two different ones).
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch {
    return readFileSync(path, 'utf8').trim();
  }
  chmodSync(path, 0o600);
  return token;
}
