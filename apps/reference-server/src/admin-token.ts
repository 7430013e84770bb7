/**
 * Bearer tokens the services generate when none is configured, so no endpoint is open by default:
 * the admin token (`GEOFENCE_ADMIN_TOKEN`, else `<dataDir>/admin-token`) and the edge agent's local
 * API token (`<dataDir>/agent-token`). Both files are created once with mode 0600.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Shortest token accepted from a token file (a 32-byte token is 43 characters). */
const MIN_TOKEN_LENGTH = 24;

/** Path of the generated admin token file. */
export function adminTokenPath(dataDir: string): string {
  return join(dataDir, 'admin-token');
}

function readToken(path: string): string {
  const t = readFileSync(path, 'utf8').trim();
  // Fail closed: an empty or truncated file must not become a guessable (or empty) bearer token.
  if (t.length < MIN_TOKEN_LENGTH) {
    throw new Error(
      `${path} holds no usable token (fewer than ${MIN_TOKEN_LENGTH} characters); delete it to generate a new one`,
    );
  }
  return t;
}

/**
 * The token stored in `<dataDir>/<fileName>`, generated (32 random bytes, base64url) when the file
 * does not exist yet.
 */
export function ensureTokenFile(dataDir: string, fileName: string): string {
  const path = join(dataDir, fileName);
  if (existsSync(path)) return readToken(path);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  try {
    // 'wx': when another process created the file first, use its token (never two different ones).
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch {
    return readToken(path);
  }
  chmodSync(path, 0o600);
  return token;
}

/** Returns the configured token, or the one stored in the data directory (creating it when needed). */
export function ensureAdminToken(cfg: { dataDir: string; adminToken?: string | undefined }): string {
  return cfg.adminToken || ensureTokenFile(cfg.dataDir, 'admin-token');
}
