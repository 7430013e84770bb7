/**
 * Configuration of the reference server: environment variables (the original prototype's names where
 * they exist, SPEC §9), an optional JSON config file, and CLI overrides, validated with zod at start.
 *
 * Precedence (highest first): CLI flags → environment → config file → defaults. Every default is safe:
 * TLS on with verification, loopback bind, memory nonce store, admin token generated and kept in the
 * data directory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';

/** Which service a configuration is loaded for (selects the default port and bind address). */
export type Role = 'collector' | 'gateway' | 'agent' | 'cli';

/** Default TCP port per role (SPEC §8). */
export const DEFAULT_PORTS: Record<Role, number> = { collector: 8444, gateway: 8443, agent: 8442, cli: 0 };

/** Raised when configuration is invalid; `issues` lists every problem with the variable to fix. */
export class ConfigError extends Error {
  /** Stable code for programmatic handling. */
  readonly code = 'invalid_config';
  /** Human-readable list of problems, one per invalid setting. */
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`invalid configuration:\n  - ${issues.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

const port = z.number().int().min(0).max(65535);
const regionEntry = z.object({
  region: z.string().min(1),
  state: z.string().min(1).optional(),
  city: z.string().min(1).optional(),
});

/** zod schema of the whole configuration (after env/file merging). */
export const configSchema = z
  .object({
    serviceName: z.string().min(1).max(128).default('geofence'),
    host: z.string().min(1).default('127.0.0.1'),
    port: port.optional(),
    dataDir: z.string().min(1).default('.geofence-data'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    logFile: z.string().optional(),
    adminToken: z.string().min(24, 'admin token must be at least 24 characters').optional(),
    trustProxy: z.union([z.boolean(), z.string()]).default(false),
    bodyLimitBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024),
    tls: z
      .object({
        enabled: z.boolean().default(true),
        certPath: z.string().optional(),
        keyPath: z.string().optional(),
        caPath: z.string().optional(),
        minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
        /** Collector: require a client certificate from the CA (mutual TLS; e.g. only the gateway may connect). */
        requireClientCert: z.boolean().default(false),
        /** Gateway: client certificate presented to the collector (default: the demo client certificate). */
        clientCertPath: z.string().optional(),
        clientKeyPath: z.string().optional(),
        /** Development only: disables verification of the peer certificate (logged as a warning). */
        insecureSkipVerify: z.boolean().default(false),
      })
      .prefault({}),
    nonce: z
      .object({
        // Nonces are 32 random bytes (SPEC §6.1); the original variable is accepted for that value only.
        length: z.literal(32, { error: 'only 32-byte nonces are supported (SPEC §6.1)' }).default(32),
        ttlSeconds: z.number().int().min(5).max(3600).default(300),
        maxOutstanding: z.number().int().min(1).max(1024).default(16),
        store: z.enum(['memory', 'sqlite', 'redis']).default('memory'),
        redisUrl: z.string().optional(),
        /** A Redis command without a reply after this long fails: 503 `upstream` (frozen Redis). */
        redisCommandTimeoutMs: z.number().int().min(50).max(60_000).default(1000),
        /** A (re)connection attempt to Redis is abandoned after this long. */
        redisConnectTimeoutMs: z.number().int().min(50).max(60_000).default(2000),
        sqlitePath: z.string().optional(),
      })
      .prefault({}),
    /** How long a SQLite store waits for another process's lock before answering 503 `upstream`. */
    sqliteBusyTimeoutMs: z.number().int().min(0).max(60_000).default(500),
    clockSkewSeconds: z.number().int().min(0).max(600).default(60),
    registry: z
      .object({
        kind: z.enum(['sqlite', 'json']).default('sqlite'),
        path: z.string().optional(),
      })
      .prefault({}),
    recordsPath: z.string().optional(),
    geo: z
      .object({
        allowedRegions: z.array(z.string().min(1)).default([]),
        allowedStates: z.array(z.string().min(1)).default([]),
        allowedCities: z.array(z.string().min(1)).default([]),
        allow: z.array(regionEntry).default([]),
      })
      .prefault({}),
    enrollment: z
      .object({
        ekCaPaths: z.array(z.string()).default([]),
        approvedEkHashes: z.array(z.string().regex(/^[0-9a-f]{64}$/)).default([]),
        approvedImageDigests: z.array(z.string().min(1)).default([]),
        signingKeyPath: z.string().optional(),
        issuer: z.string().optional(),
      })
      .prefault({}),
    rateLimit: z
      .object({
        enabled: z.boolean().default(true),
        perIpPerSecond: z.number().positive().default(50),
        perIpBurst: z.number().int().positive().default(100),
        perKeyidPerSecond: z.number().positive().default(20),
        perKeyidBurst: z.number().int().positive().default(40),
      })
      .prefault({}),
    gateway: z
      .object({
        /** One collector URL, or several comma-separated (replicas, load-balanced). */
        collectorUrl: z
          .string()
          .refine(
            (v) =>
              v.split(',').every((u) => {
                try {
                  return /^https?:$/.test(new URL(u.trim()).protocol);
                } catch {
                  return false;
                }
              }),
            'expected one or more comma-separated http(s) URLs',
          )
          .optional(),
        policyEnforcement: z.boolean().default(false),
        validatePublicKeyHash: z.boolean().default(true),
        validateSignature: z.boolean().default(true),
        validateGeolocation: z.boolean().default(true),
        upstreamTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
        upstreamConnections: z.number().int().min(1).max(1024).default(32),
        headerLogPath: z.string().optional(),
        headerLogMaxBytes: z
          .number()
          .int()
          .min(4096)
          .default(10 * 1024 * 1024),
        headerLogFiles: z.number().int().min(1).max(100).default(5),
      })
      .prefault({}),
    otel: z.object({ endpoint: z.string().url().optional() }).prefault({}),
    agent: z
      .object({
        name: z.string().min(1).max(128).optional(),
        gatewayUrl: z.string().url().optional(),
        tcti: z.string().min(1).default('swtpm:host=127.0.0.1,port=2321'),
        stateDir: z.string().optional(),
        algorithm: z.enum(['ecc-p256', 'rsa-2048']).default('ecc-p256'),
        region: z.string().min(1).default('US'),
        state: z.string().min(1).default('California'),
        city: z.string().min(1).default('Santa Clara'),
        intervalSeconds: z.number().int().min(0).max(86_400).default(60),
        apiToken: z.string().min(24, 'agent API token must be at least 24 characters').optional(),
        gpsdHost: z.string().optional(),
        gpsdPort: port.default(2947),
      })
      .prefault({}),
  })
  .strict();

/** Validated configuration. */
export type Config = z.infer<typeof configSchema>;

type Env = Record<string, string | undefined>;

function parseBool(name: string, v: string, issues: string[]): boolean | undefined {
  const s = v.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  issues.push(`${name}: expected true/false, got ${JSON.stringify(v)}`);
  return undefined;
}

function parseInt10(name: string, v: string, issues: string[]): number | undefined {
  if (!/^\s*-?\d+\s*$/.test(v)) {
    issues.push(`${name}: expected an integer, got ${JSON.stringify(v)}`);
    return undefined;
  }
  return Number.parseInt(v, 10);
}

function parseNumber(name: string, v: string, issues: string[]): number | undefined {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) {
    issues.push(`${name}: expected a number, got ${JSON.stringify(v)}`);
    return undefined;
  }
  return n;
}

/** Lists accept the original JSON-array form (`["US"]`) and plain comma lists (`US,EU`). */
function parseList(name: string, v: string, issues: string[]): string[] | undefined {
  const s = v.trim();
  if (s.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(s);
      if (Array.isArray(parsed) && parsed.every((x) => typeof x === 'string')) return parsed;
    } catch {
      // reported below
    }
    issues.push(`${name}: expected a JSON array of strings or a comma-separated list`);
    return undefined;
  }
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
}

type Setter = (cfg: Record<string, unknown>, v: string, issues: string[]) => void;

function at(
  path: string,
  conv: (name: string, v: string, issues: string[]) => unknown,
  name: string,
): Setter {
  return (cfg, v, issues) => {
    const value = conv(name, v, issues);
    if (value === undefined) return;
    const parts = path.split('.');
    let obj = cfg;
    for (const p of parts.slice(0, -1)) {
      if (typeof obj[p] !== 'object' || obj[p] === null) obj[p] = {};
      obj = obj[p] as Record<string, unknown>;
    }
    obj[parts[parts.length - 1] as string] = value;
  };
}

const str = (_n: string, v: string) => v;

/**
 * Environment variables understood by the server, with the config path each one sets.
 * Names from the original prototype are kept (SERVICE_NAME, PORT, SSL_*, LOG_LEVEL, NONCE_LENGTH,
 * GEOGRAPHIC_*, ALLOWED_*, GATEWAY_VALIDATE_*, TPM2TOOLS_TCTI, OTEL_ENDPOINT).
 */
export const ENV_VARS: Record<string, { path: string; kind: 'string' | 'bool' | 'int' | 'number' | 'list' }> =
  {
    SERVICE_NAME: { path: 'serviceName', kind: 'string' },
    HOST: { path: 'host', kind: 'string' },
    PORT: { path: 'port', kind: 'int' },
    GEOFENCE_DATA_DIR: { path: 'dataDir', kind: 'string' },
    LOG_LEVEL: { path: 'logLevel', kind: 'string' },
    LOG_FILE: { path: 'logFile', kind: 'string' },
    GEOFENCE_ADMIN_TOKEN: { path: 'adminToken', kind: 'string' },
    TRUST_PROXY: { path: 'trustProxy', kind: 'string' },
    BODY_LIMIT_BYTES: { path: 'bodyLimitBytes', kind: 'int' },
    SSL_ENABLED: { path: 'tls.enabled', kind: 'bool' },
    SSL_CERT_PATH: { path: 'tls.certPath', kind: 'string' },
    SSL_KEY_PATH: { path: 'tls.keyPath', kind: 'string' },
    SSL_CA_PATH: { path: 'tls.caPath', kind: 'string' },
    TLS_MIN_VERSION: { path: 'tls.minVersion', kind: 'string' },
    TLS_INSECURE_SKIP_VERIFY: { path: 'tls.insecureSkipVerify', kind: 'bool' },
    TLS_REQUIRE_CLIENT_CERT: { path: 'tls.requireClientCert', kind: 'bool' },
    SSL_CLIENT_CERT_PATH: { path: 'tls.clientCertPath', kind: 'string' },
    SSL_CLIENT_KEY_PATH: { path: 'tls.clientKeyPath', kind: 'string' },
    NONCE_LENGTH: { path: 'nonce.length', kind: 'int' },
    NONCE_TTL_SECONDS: { path: 'nonce.ttlSeconds', kind: 'int' },
    NONCE_MAX_OUTSTANDING: { path: 'nonce.maxOutstanding', kind: 'int' },
    NONCE_STORE: { path: 'nonce.store', kind: 'string' },
    REDIS_URL: { path: 'nonce.redisUrl', kind: 'string' },
    NONCE_SQLITE_PATH: { path: 'nonce.sqlitePath', kind: 'string' },
    REDIS_COMMAND_TIMEOUT_MS: { path: 'nonce.redisCommandTimeoutMs', kind: 'int' },
    REDIS_CONNECT_TIMEOUT_MS: { path: 'nonce.redisConnectTimeoutMs', kind: 'int' },
    SQLITE_BUSY_TIMEOUT_MS: { path: 'sqliteBusyTimeoutMs', kind: 'int' },
    CLOCK_SKEW_SECONDS: { path: 'clockSkewSeconds', kind: 'int' },
    REGISTRY_TYPE: { path: 'registry.kind', kind: 'string' },
    REGISTRY_PATH: { path: 'registry.path', kind: 'string' },
    RECORDS_PATH: { path: 'recordsPath', kind: 'string' },
    ALLOWED_REGIONS: { path: 'geo.allowedRegions', kind: 'list' },
    ALLOWED_STATES: { path: 'geo.allowedStates', kind: 'list' },
    ALLOWED_CITIES: { path: 'geo.allowedCities', kind: 'list' },
    EK_CA_BUNDLE: { path: 'enrollment.ekCaPaths', kind: 'list' },
    APPROVED_EK_HASHES: { path: 'enrollment.approvedEkHashes', kind: 'list' },
    APPROVED_IMAGE_DIGESTS: { path: 'enrollment.approvedImageDigests', kind: 'list' },
    ATTESTATION_SIGNING_KEY_PATH: { path: 'enrollment.signingKeyPath', kind: 'string' },
    ATTESTATION_ISSUER: { path: 'enrollment.issuer', kind: 'string' },
    RATE_LIMIT_ENABLED: { path: 'rateLimit.enabled', kind: 'bool' },
    RATE_LIMIT_PER_IP: { path: 'rateLimit.perIpPerSecond', kind: 'number' },
    RATE_LIMIT_PER_IP_BURST: { path: 'rateLimit.perIpBurst', kind: 'int' },
    RATE_LIMIT_PER_KEYID: { path: 'rateLimit.perKeyidPerSecond', kind: 'number' },
    RATE_LIMIT_PER_KEYID_BURST: { path: 'rateLimit.perKeyidBurst', kind: 'int' },
    COLLECTOR_URL: { path: 'gateway.collectorUrl', kind: 'string' },
    GATEWAY_POLICY_ENFORCEMENT: { path: 'gateway.policyEnforcement', kind: 'bool' },
    GATEWAY_VALIDATE_PUBLIC_KEY_HASH: { path: 'gateway.validatePublicKeyHash', kind: 'bool' },
    GATEWAY_VALIDATE_SIGNATURE: { path: 'gateway.validateSignature', kind: 'bool' },
    GATEWAY_VALIDATE_GEOLOCATION: { path: 'gateway.validateGeolocation', kind: 'bool' },
    GATEWAY_UPSTREAM_TIMEOUT_MS: { path: 'gateway.upstreamTimeoutMs', kind: 'int' },
    GATEWAY_HEADER_LOG: { path: 'gateway.headerLogPath', kind: 'string' },
    GATEWAY_HEADER_LOG_MAX_BYTES: { path: 'gateway.headerLogMaxBytes', kind: 'int' },
    GATEWAY_HEADER_LOG_FILES: { path: 'gateway.headerLogFiles', kind: 'int' },
    OTEL_EXPORTER_OTLP_ENDPOINT: { path: 'otel.endpoint', kind: 'string' },
    OTEL_ENDPOINT: { path: 'otel.endpoint', kind: 'string' },
    AGENT_NAME: { path: 'agent.name', kind: 'string' },
    GATEWAY_URL: { path: 'agent.gatewayUrl', kind: 'string' },
    TPM2TOOLS_TCTI: { path: 'agent.tcti', kind: 'string' },
    AGENT_STATE_DIR: { path: 'agent.stateDir', kind: 'string' },
    SIGNING_KEY_ALGORITHM: { path: 'agent.algorithm', kind: 'string' },
    GEOGRAPHIC_REGION: { path: 'agent.region', kind: 'string' },
    GEOGRAPHIC_STATE: { path: 'agent.state', kind: 'string' },
    GEOGRAPHIC_CITY: { path: 'agent.city', kind: 'string' },
    METRICS_INTERVAL_SECONDS: { path: 'agent.intervalSeconds', kind: 'int' },
    AGENT_API_TOKEN: { path: 'agent.apiToken', kind: 'string' },
    GPSD_HOST: { path: 'agent.gpsdHost', kind: 'string' },
    GPSD_PORT: { path: 'agent.gpsdPort', kind: 'int' },
  };

const CONVERTERS = { string: str, bool: parseBool, int: parseInt10, number: parseNumber, list: parseList };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const cur = out[k];
    out[k] = isPlainObject(cur) && isPlainObject(v) ? deepMerge(cur, v) : v;
  }
  return out;
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Service being started (selects the default port). */
  role: Role;
  /** Environment to read (default `process.env`). */
  env?: Env;
  /** Explicit config file (`--config`); otherwise `geofence.config.json` in `cwd` when it exists. */
  configPath?: string;
  /** Working directory for relative paths (default `process.cwd()`). */
  cwd?: string;
  /** Highest-precedence overrides (CLI flags), same shape as the config file. */
  overrides?: Record<string, unknown>;
}

/** The config file name looked up in the working directory when `--config` is not given. */
export const CONFIG_FILE_NAME = 'geofence.config.json';

/**
 * Loads and validates the configuration. Throws {@link ConfigError} listing every invalid setting
 * (named by its environment variable or config-file path) so the operator can fix all at once.
 */
export function loadConfig(opts: LoadConfigOptions): Config & { port: number } {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const issues: string[] = [];

  let fileCfg: Record<string, unknown> = {};
  const filePath = opts.configPath ? resolve(cwd, opts.configPath) : resolve(cwd, CONFIG_FILE_NAME);
  if (opts.configPath || existsSync(filePath)) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(filePath, 'utf8'));
      if (!isPlainObject(parsed)) issues.push(`${filePath}: expected a JSON object`);
      else fileCfg = parsed;
    } catch (e) {
      issues.push(`${filePath}: ${(e as Error).message}`);
    }
  }

  const envCfg: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(ENV_VARS)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    at(spec.path, CONVERTERS[spec.kind], name)(envCfg, v, issues);
  }
  if (typeof envCfg.trustProxy === 'string') {
    const s = envCfg.trustProxy.toLowerCase();
    if (s === 'true' || s === 'false') envCfg.trustProxy = s === 'true';
  }

  const merged = deepMerge(deepMerge(fileCfg, envCfg), opts.overrides ?? {});
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const byPath = new Map(Object.entries(ENV_VARS).map(([n, s]) => [s.path, n]));
    for (const issue of result.error.issues) {
      const path = issue.path.join('.');
      const envName = byPath.get(path);
      issues.push(`${path || '(root)'}${envName ? ` (env ${envName})` : ''}: ${issue.message}`);
    }
  }
  if (issues.length > 0 || !result.success) throw new ConfigError(issues);
  const cfg = result.data;
  if (cfg.nonce.store === 'redis' && !cfg.nonce.redisUrl) {
    throw new ConfigError(['nonce.redisUrl (env REDIS_URL): required when NONCE_STORE=redis']);
  }
  if (cfg.tls.certPath && !cfg.tls.keyPath) {
    throw new ConfigError(['tls.keyPath (env SSL_KEY_PATH): required when SSL_CERT_PATH is set']);
  }
  const dataDir = resolve(cwd, cfg.dataDir);
  return { ...cfg, dataDir, port: cfg.port ?? DEFAULT_PORTS[opts.role] };
}
