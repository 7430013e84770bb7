/**
 * The path settings of the configuration and their checks at load time. A certificate path with a typo
 * used to surface as a bare `ENOENT` from deep inside start-up (after the other settings had been
 * accepted); checking every path in the same pass as the rest of the validation lets the operator fix
 * all problems from one error that names each setting.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Role } from './config.js';

/**
 * What the services do with a path, which decides what is wrong with it:
 * - `input`: read at start (certificates, keys, CA bundles): must exist and be a readable file;
 * - `store`: a database or registry opened for reading and writing: created when missing, otherwise
 *   must be a readable file;
 * - `log`: appended to: created when missing, otherwise must be a writable file;
 * - `dir`: a directory created when missing: when present must be a directory.
 */
export type PathKind = 'input' | 'store' | 'log' | 'dir';

/** One path setting: its config path, what it is, what relative paths are relative to, who reads it. */
export interface PathSetting {
  /** Dotted config path (`tls.certPath`); the value is a string, or an array of strings. */
  readonly path: string;
  /** How the services use the file. */
  readonly kind: PathKind;
  /** Relative paths are relative to the working directory or to the data directory. */
  readonly base: 'cwd' | 'dataDir';
  /**
   * The roles that use the file. Only those check it: environment variables are often shared by
   * several services (`SSL_CLIENT_CERT_PATH` is only mounted where the gateway runs).
   */
  readonly roles: readonly Role[];
}

const SERVICES: readonly Role[] = ['collector', 'gateway', 'agent', 'resource'];
const ALL: readonly Role[] = ['collector', 'gateway', 'agent', 'resource', 'cli'];

/** Every path setting of the configuration schema. */
export const PATH_SETTINGS: readonly PathSetting[] = [
  { path: 'dataDir', kind: 'dir', base: 'cwd', roles: ALL },
  { path: 'logFile', kind: 'log', base: 'cwd', roles: ALL },
  { path: 'tls.certPath', kind: 'input', base: 'cwd', roles: SERVICES },
  { path: 'tls.keyPath', kind: 'input', base: 'cwd', roles: SERVICES },
  // `geofence enroll` (role cli) trusts the gateway through it too.
  { path: 'tls.caPath', kind: 'input', base: 'cwd', roles: ALL },
  { path: 'tls.clientCertPath', kind: 'input', base: 'cwd', roles: ['gateway'] },
  { path: 'tls.clientKeyPath', kind: 'input', base: 'cwd', roles: ['gateway'] },
  { path: 'enrollment.ekCaPaths', kind: 'input', base: 'cwd', roles: ['collector'] },
  { path: 'enrollment.signingKeyPath', kind: 'input', base: 'cwd', roles: ['collector'] },
  { path: 'enrollment.caCertPath', kind: 'input', base: 'cwd', roles: ['collector'] },
  { path: 'enrollment.extraCaPaths', kind: 'input', base: 'cwd', roles: ['collector'] },
  { path: 'enrollment.mnoCaPaths', kind: 'input', base: 'cwd', roles: ['collector'] },
  { path: 'resource.dir', kind: 'dir', base: 'cwd', roles: ['resource'] },
  { path: 'resource.caCertPath', kind: 'input', base: 'cwd', roles: ['resource'] },
  { path: 'registry.path', kind: 'store', base: 'dataDir', roles: ['collector', 'gateway', 'cli'] },
  { path: 'nonce.sqlitePath', kind: 'store', base: 'dataDir', roles: ['collector'] },
  { path: 'recordsPath', kind: 'store', base: 'dataDir', roles: ['collector', 'cli'] },
  { path: 'gateway.headerLogPath', kind: 'log', base: 'cwd', roles: ['gateway'] },
  { path: 'agent.stateDir', kind: 'dir', base: 'cwd', roles: ['agent', 'cli'] },
];

function get(obj: Record<string, unknown>, path: string): unknown {
  let cur: unknown = obj;
  for (const p of path.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** What is wrong with `file` for `kind`, or undefined when nothing is. */
function problem(file: string, kind: PathKind): string | undefined {
  let isDir: boolean;
  try {
    isDir = statSync(file).isDirectory();
  } catch (err) {
    const code = errno(err);
    if (code === 'ENOENT' && kind !== 'input') return undefined; // created at start
    return `cannot ${kind === 'log' ? 'write' : 'read'} ${file} (${code})`;
  }
  if (kind === 'dir') return isDir ? undefined : `${file} is not a directory (ENOTDIR)`;
  if (isDir) return `cannot ${kind === 'log' ? 'write' : 'read'} ${file} (EISDIR)`;
  try {
    accessSync(file, kind === 'log' ? constants.W_OK : constants.R_OK);
    return undefined;
  } catch (err) {
    return `cannot ${kind === 'log' ? 'write' : 'read'} ${file} (${errno(err)})`;
  }
}

/**
 * Checks every path setting `role` uses in the merged, not yet validated configuration `raw`. Values
 * of the wrong type are left to the schema. `name` turns a config path (`enrollment.ekCaPaths.1`) into
 * the name the operator set it by (`EK_CA_BUNDLE`); each problem is one line `name: problem`.
 */
export function checkPaths(
  raw: Record<string, unknown>,
  role: Role,
  cwd: string,
  name: (path: string) => string,
): string[] {
  const dataDirRaw = raw.dataDir;
  const dataDir = resolve(cwd, typeof dataDirRaw === 'string' ? dataDirRaw : '.geofence-data');
  const issues: string[] = [];
  for (const s of PATH_SETTINGS) {
    if (!s.roles.includes(role)) continue;
    const value = get(raw, s.path);
    const entries: Array<[string, unknown]> = Array.isArray(value)
      ? value.map((v, i) => [`${s.path}.${i}`, v])
      : [[s.path, value]];
    for (const [path, v] of entries) {
      if (typeof v !== 'string' || v === '') continue;
      const p = problem(resolve(s.base === 'cwd' ? cwd : dataDir, v), s.kind);
      if (p) issues.push(`${name(path)}: ${p}`);
    }
  }
  return issues;
}

/**
 * `cfg` with the working-directory-relative path settings made absolute, so that the file a service
 * opens is the file that was checked, whatever the process's own working directory.
 */
export function absolutePaths<T extends Record<string, unknown>>(cfg: T, cwd: string): T {
  const out = structuredClone(cfg);
  for (const s of PATH_SETTINGS) {
    if (s.base !== 'cwd') continue;
    const parts = s.path.split('.');
    const last = parts.pop() as string;
    const parent = parts.length ? get(out, parts.join('.')) : out;
    if (typeof parent !== 'object' || parent === null) continue;
    const obj = parent as Record<string, unknown>;
    const v = obj[last];
    if (typeof v === 'string' && v !== '') obj[last] = resolve(cwd, v);
    else if (Array.isArray(v)) obj[last] = v.map((x) => (typeof x === 'string' ? resolve(cwd, x) : x));
  }
  return out;
}
