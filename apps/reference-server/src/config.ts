/**
 * Configuration of the reference server: environment variables (the original prototype's names where
 * they exist, SPEC §9), an optional JSON config file, and CLI overrides, validated with zod at start.
 * Every object of the schema is strict: an unknown config-file key is an error, never a silently
 * applied default.
 *
 * Precedence (highest first): CLI flags → environment → config file → defaults. Every default is safe:
 * TLS on with verification, loopback bind, memory nonce store, admin token generated and kept in the
 * data directory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DEFAULT_CREDENTIAL_LIFETIME_SECONDS } from '@geofence/protocol';
import { z } from 'zod';
import { absolutePaths, checkPaths } from './config-files.js';
import { settingPaths, unknownKeyMessage } from './config-suggest.js';

/** Which service a configuration is loaded for (selects the default port and bind address). */
export type Role = 'collector' | 'gateway' | 'agent' | 'resource' | 'cli';

/** Default TCP port per role (SPEC §8). */
export const DEFAULT_PORTS: Record<Role, number> = {
  collector: 8444,
  gateway: 8443,
  agent: 8442,
  resource: 8446,
  cli: 0,
};

/** Raised when configuration is invalid; `issues` lists every problem with the variable to fix. */
export class ConfigError extends Error {
  /** Stable code for programmatic handling. */
  readonly code = 'invalid_config';
  /** Human-readable list of problems, one per invalid setting. */
  readonly issues: string[];
  /**
   * @param issues - one line per problem, `setting: what is wrong`.
   * @param configFile - the config file that was read, named in the message (it may have been picked
   * up implicitly from the working directory).
   */
  constructor(issues: string[], configFile?: string) {
    const from = configFile ? ` (config file ${configFile})` : '';
    super(`invalid configuration${from}:\n  - ${issues.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

const port = z.number().int().min(0).max(65535);

/** A number of worker processes: a count, or `auto` (one per available core). */
const workerCount = z.union([z.literal('auto'), z.number().int().min(1).max(256)]);
const regionEntry = z.strictObject({
  region: z.string().min(1),
  state: z.string().min(1).optional(),
  city: z.string().min(1).optional(),
});

/** zod schema of the whole configuration (after env/file merging). */
export const configSchema = z.strictObject({
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
    .strictObject({
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
    .strictObject({
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
    .strictObject({
      kind: z.enum(['sqlite', 'json', 'postgres']).default('sqlite'),
      path: z.string().optional(),
    })
    .prefault({}),
  recordsPath: z.string().optional(),
  /** Where accepted records are kept: a SQLite file per host (default) or the fleet's PostgreSQL. */
  recordsStore: z.enum(['sqlite', 'postgres']).default('sqlite'),
  /** The fleet's PostgreSQL (registry, records and pending enrolments when set to `postgres`). */
  database: z
    .strictObject({
      url: z.string().optional(),
      /** Connections of this process's pool (the registry's LISTEN connection is one more). */
      poolMax: z.number().int().min(1).max(1000).default(10),
    })
    .prefault({}),
  geo: z
    .strictObject({
      allowedRegions: z.array(z.string().min(1)).default([]),
      allowedStates: z.array(z.string().min(1)).default([]),
      allowedCities: z.array(z.string().min(1)).default([]),
      allow: z.array(regionEntry).default([]),
      /**
       * Global `max_accuracy_m`: a reading whose accuracy radius is larger (or absent) fails
       * `geolocation_policy` (`accuracy`) for every agent. Unset: no global limit.
       */
      maxAccuracyM: z.number().positive().finite().optional(),
      /**
       * Movement plausibility: a location implying a faster movement since the agent's last
       * accepted one (distance minus both accuracy radii, over the time between the fixes) fails
       * `geolocation_policy` (`implausible_movement`) on `/metrics` and `/attest/location`. 0 disables.
       */
      maxSpeedKmh: z.number().min(0).max(1_000_000).default(1000),
    })
    .prefault({}),
  /** `geofence resource-server`: files served only through requireGeofence (issue 14). */
  resource: z
    .strictObject({
      /** Directory whose files are served. */
      dir: z.string().optional(),
      /** Trusted credential issuer (`iss`, the collector's base URL). */
      issuer: z.string().optional(),
      /** The issuer's JWKS (default `<issuer>/.well-known/jwks.json` when no CA certificate is given). */
      jwksUrl: z.string().url().optional(),
      /** The issuer's attestation CA certificate (PEM), to accept PoG certificates. */
      caCertPath: z.string().optional(),
      /** Public origin clients sign `@target-uri` for (default: the listen URL). */
      origin: z.string().url().optional(),
      minTrustLevel: z.enum(['low', 'medium', 'high', 'highest']).default('low'),
      allow: z.array(regionEntry).default([]),
      workloadDigests: z.array(z.string().regex(/^[0-9a-f]{64}$/)).default([]),
      maxAgeSeconds: z.number().int().positive().optional(),
    })
    .prefault({}),
  enrollment: z
    .strictObject({
      ekCaPaths: z.array(z.string()).default([]),
      approvedEkHashes: z.array(z.string().regex(/^[0-9a-f]{64}$/)).default([]),
      approvedImageDigests: z.array(z.string().min(1)).default([]),
      signingKeyPath: z.string().optional(),
      issuer: z.string().optional(),
      /** CA certificate (PEM) of the signing key; default `<dataDir>/attestation-ca.pem`, created when missing. */
      caCertPath: z.string().optional(),
      /** More CA certificates to publish (the next key before it signs, the previous one until its credentials expired). */
      extraCaPaths: z.array(z.string()).default([]),
      /** CA certificates of mobile network operators whose signed mno-location corroborates GNSS (trust medium). */
      mnoCaPaths: z.array(z.string()).default([]),
      /** Lifetime of attestation results (PoG credentials), seconds. */
      credentialLifetimeSeconds: z
        .number()
        .int()
        .min(30)
        .max(86_400)
        .default(DEFAULT_CREDENTIAL_LIFETIME_SECONDS),
    })
    .prefault({}),
  /**
   * Worker processes of each service (node:cluster, one shared port). More than one needs a nonce
   * store every worker sees (checked at load).
   */
  workers: z
    .strictObject({
      collector: workerCount.default(1),
      gateway: workerCount.default(1),
    })
    .prefault({}),
  rateLimit: z
    .strictObject({
      enabled: z.boolean().default(true),
      /**
       * Where the token buckets live: `memory` (per process) or `redis` (shared by every replica and
       * worker, at `REDIS_URL`). Unset: `redis` when the nonce store is Redis, `memory` otherwise.
       */
      bucketStore: z.enum(['memory', 'redis']).optional(),
      perIpPerSecond: z.number().positive().default(50),
      perIpBurst: z.number().int().positive().default(100),
      perKeyidPerSecond: z.number().positive().default(20),
      perKeyidBurst: z.number().int().positive().default(40),
    })
    .prefault({}),
  gateway: z
    .strictObject({
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
  otel: z
    .strictObject({
      endpoint: z.string().url().optional(),
      /** How often buffered points are exported (ms). */
      exportIntervalMs: z.number().int().min(100).max(3_600_000).default(10_000),
      /** Deadline of one export request including the exporter's retries (ms). */
      timeoutMs: z.number().int().min(100).max(60_000).default(5_000),
    })
    .prefault({}),
  /**
   * Collector web console at `/console` (off by default: it is an admin surface; when on, it takes
   * the admin token at its login form).
   */
  console: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** Lifetime of a console session cookie (s). */
      sessionTtlSeconds: z.number().int().min(60).max(86_400).default(3600),
    })
    .prefault({}),
  agent: z
    .strictObject({
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
      /**
       * Extra host names the local agent API answers to (the DNS-rebinding guard accepts IP
       * literals, `localhost` and the listen host otherwise), e.g. the host's own name when it
       * listens on 0.0.0.0 and is reached by name.
       */
      allowedHosts: z
        .array(
          z
            .string()
            .min(1)
            .max(253)
            .regex(/^[A-Za-z0-9.-]+$/, 'a host name'),
        )
        .default([]),
      gpsdHost: z.string().optional(),
      gpsdPort: port.default(2947),
    })
    .prefault({}),
});

/** The collector URL(s) of `COLLECTOR_URL`, else the local collector on its default port. */
export function collectorUrlOf(cfg: {
  tls: { enabled: boolean };
  gateway: { collectorUrl?: string | undefined };
}): string {
  return (
    cfg.gateway.collectorUrl ?? `${cfg.tls.enabled ? 'https' : 'http'}://127.0.0.1:${DEFAULT_PORTS.collector}`
  );
}

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
export const ENV_VARS: Record<
  string,
  { path: string; kind: 'string' | 'bool' | 'int' | 'number' | 'list' | 'workers' }
> = {
  SERVICE_NAME: { path: 'serviceName', kind: 'string' },
  // After SERVICE_NAME, so the OpenTelemetry standard name wins when both are set.
  OTEL_SERVICE_NAME: { path: 'serviceName', kind: 'string' },
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
  RECORDS_STORE: { path: 'recordsStore', kind: 'string' },
  DATABASE_URL: { path: 'database.url', kind: 'string' },
  DATABASE_POOL_MAX: { path: 'database.poolMax', kind: 'int' },
  ALLOWED_REGIONS: { path: 'geo.allowedRegions', kind: 'list' },
  ALLOWED_STATES: { path: 'geo.allowedStates', kind: 'list' },
  ALLOWED_CITIES: { path: 'geo.allowedCities', kind: 'list' },
  MAX_ACCURACY_M: { path: 'geo.maxAccuracyM', kind: 'number' },
  MAX_SPEED_KMH: { path: 'geo.maxSpeedKmh', kind: 'number' },
  EK_CA_BUNDLE: { path: 'enrollment.ekCaPaths', kind: 'list' },
  APPROVED_EK_HASHES: { path: 'enrollment.approvedEkHashes', kind: 'list' },
  APPROVED_IMAGE_DIGESTS: { path: 'enrollment.approvedImageDigests', kind: 'list' },
  ATTESTATION_SIGNING_KEY_PATH: { path: 'enrollment.signingKeyPath', kind: 'string' },
  ATTESTATION_ISSUER: { path: 'enrollment.issuer', kind: 'string' },
  ATTESTATION_CA_CERT_PATH: { path: 'enrollment.caCertPath', kind: 'string' },
  ATTESTATION_EXTRA_CA_PATHS: { path: 'enrollment.extraCaPaths', kind: 'list' },
  MNO_CA_BUNDLE: { path: 'enrollment.mnoCaPaths', kind: 'list' },
  CREDENTIAL_LIFETIME_SECONDS: { path: 'enrollment.credentialLifetimeSeconds', kind: 'int' },
  RESOURCE_DIR: { path: 'resource.dir', kind: 'string' },
  RESOURCE_ISSUER: { path: 'resource.issuer', kind: 'string' },
  RESOURCE_JWKS_URL: { path: 'resource.jwksUrl', kind: 'string' },
  RESOURCE_CA_CERT_PATH: { path: 'resource.caCertPath', kind: 'string' },
  RESOURCE_ORIGIN: { path: 'resource.origin', kind: 'string' },
  RESOURCE_MIN_TRUST_LEVEL: { path: 'resource.minTrustLevel', kind: 'string' },
  RESOURCE_WORKLOAD_DIGESTS: { path: 'resource.workloadDigests', kind: 'list' },
  RESOURCE_MAX_AGE_SECONDS: { path: 'resource.maxAgeSeconds', kind: 'int' },
  RATE_LIMIT_ENABLED: { path: 'rateLimit.enabled', kind: 'bool' },
  RATE_LIMIT_STORE: { path: 'rateLimit.bucketStore', kind: 'string' },
  COLLECTOR_WORKERS: { path: 'workers.collector', kind: 'workers' },
  GATEWAY_WORKERS: { path: 'workers.gateway', kind: 'workers' },
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
  OTEL_METRIC_EXPORT_INTERVAL: { path: 'otel.exportIntervalMs', kind: 'int' },
  OTEL_EXPORTER_OTLP_TIMEOUT: { path: 'otel.timeoutMs', kind: 'int' },
  CONSOLE_ENABLED: { path: 'console.enabled', kind: 'bool' },
  CONSOLE_SESSION_TTL_SECONDS: { path: 'console.sessionTtlSeconds', kind: 'int' },
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
  AGENT_ALLOWED_HOSTS: { path: 'agent.allowedHosts', kind: 'list' },
  GPSD_HOST: { path: 'agent.gpsdHost', kind: 'string' },
  GPSD_PORT: { path: 'agent.gpsdPort', kind: 'int' },
};

/** A worker count: `auto` or an integer (range checked by the schema). */
function parseWorkers(name: string, v: string, issues: string[]): number | 'auto' | undefined {
  return v.trim().toLowerCase() === 'auto' ? 'auto' : parseInt10(name, v, issues);
}

const CONVERTERS = {
  string: str,
  bool: parseBool,
  int: parseInt10,
  number: parseNumber,
  list: parseList,
  workers: parseWorkers,
};

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
  /**
   * Config paths the command cannot run without (`agent.name` for `geofence enroll`), checked in the
   * same pass as everything else so that their absence is listed with the other problems.
   */
  required?: readonly string[];
}

/** The config file name looked up in the working directory when `--config` is not given. */
export const CONFIG_FILE_NAME = 'geofence.config.json';

/** Leaf paths of a plain-object tree (`{tls: {certPath}}` → `tls.certPath`); arrays are leaves. */
function leafPaths(obj: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(obj).flatMap(([k, v]) =>
    isPlainObject(v) ? leafPaths(v, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}

const KNOWN_SETTINGS = settingPaths(configSchema);
const ENV_BY_PATH = new Map(Object.entries(ENV_VARS).map(([n, s]) => [s.path, n]));

/** `path (env NAME)`: how to name a setting that has no value to blame (a missing required one). */
function hint(path: string): string {
  const env = ENV_BY_PATH.get(path);
  return env ? `${path} (env ${env})` : path;
}

/**
 * Settings required by another setting. One of a pair set without the other used to be silently
 * ignored (a key path without a certificate path served the demo certificate).
 */
function crossChecks(raw: Record<string, unknown>, role: Role): string[] {
  const section = (k: string) => (isPlainObject(raw[k]) ? raw[k] : {});
  const nonce = section('nonce');
  const tls = section('tls');
  const issues: string[] = [];
  if (nonce.store === 'redis' && !nonce.redisUrl) {
    issues.push(`${hint('nonce.redisUrl')}: required when the nonce store is redis`);
  }
  if (section('rateLimit').bucketStore === 'redis' && !nonce.redisUrl) {
    issues.push(`${hint('nonce.redisUrl')}: required when the rate limit store is redis`);
  }
  // Each worker is its own process: a memory nonce store would let a nonce issued by one worker be
  // unknown to the next, and a replay reach a worker that never saw the first use.
  const workers = section('workers');
  if (role === 'collector' && (nonce.store ?? 'memory') === 'memory') {
    const n = workers.collector;
    if (n === 'auto' || (typeof n === 'number' && n > 1)) {
      issues.push(
        `${hint('nonce.store')}: the memory nonce store is private to one process; ${String(n)} collector ` +
          'workers (--workers, env COLLECTOR_WORKERS) need one all workers share: redis, or sqlite on one host',
      );
    }
  }
  const database = section('database');
  if (!database.url) {
    if (section('registry').kind === 'postgres')
      issues.push(`${hint('database.url')}: required when the registry is postgres`);
    if (raw.recordsStore === 'postgres')
      issues.push(`${hint('database.url')}: required when the records store is postgres`);
  }
  for (const [a, b] of [
    ['certPath', 'keyPath'],
    ['clientCertPath', 'clientKeyPath'],
  ] as const) {
    if (tls[a] && !tls[b]) issues.push(`${hint(`tls.${b}`)}: required when ${hint(`tls.${a}`)} is set`);
    if (tls[b] && !tls[a]) issues.push(`${hint(`tls.${a}`)}: required when ${hint(`tls.${b}`)} is set`);
  }
  return issues;
}

/**
 * Loads and validates the configuration. Throws {@link ConfigError} listing every invalid setting at
 * once, one line each, named by the environment variable or config-file key it was set by: values of
 * the wrong type or out of range, unknown config-file keys (with the closest known key), settings that
 * need a partner, and path settings whose file cannot be read (for the files `role` uses).
 *
 * Relative paths are resolved against `cwd` (paths of the registry, records and SQLite nonce store
 * against the data directory) and returned absolute.
 */
export function loadConfig(opts: LoadConfigOptions): Config & { port: number } {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const issues: string[] = [];

  let fileCfg: Record<string, unknown> = {};
  const filePath = opts.configPath ? resolve(cwd, opts.configPath) : resolve(cwd, CONFIG_FILE_NAME);
  const fileUsed = opts.configPath !== undefined || existsSync(filePath);
  if (fileUsed) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(filePath, 'utf8'));
      if (!isPlainObject(parsed)) issues.push(`${filePath}: expected a JSON object`);
      else fileCfg = parsed;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      issues.push(`${filePath}: ${code ? `cannot read (${code})` : (e as Error).message}`);
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

  // Name each problem by what the operator wrote: the variable when the environment set the value
  // (and no flag overrode it), the config key otherwise.
  const overrides = opts.overrides ?? {};
  const fromFlags = new Set(leafPaths(overrides));
  const fromEnv = new Map(leafPaths(envCfg).map((p) => [p, ENV_BY_PATH.get(p) as string] as const));
  for (const [name, spec] of Object.entries(ENV_VARS)) {
    if (env[name] && fromEnv.has(spec.path)) fromEnv.set(spec.path, name); // e.g. OTEL_ENDPOINT
  }
  const nameOf = (path: string): string => {
    const setting = KNOWN_SETTINGS.includes(path) ? path : path.replace(/\.\d+(\..*)?$/, '');
    const envName = fromEnv.get(setting);
    return envName && !fromFlags.has(setting) ? envName : path;
  };

  const merged = deepMerge(deepMerge(fileCfg, envCfg), overrides);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          issues.push(unknownKeyMessage(issue.path, key, KNOWN_SETTINGS, ENV_VARS));
        }
        continue;
      }
      issues.push(`${nameOf(issue.path.join('.')) || '(root)'}: ${issue.message}`);
    }
  }
  for (const path of opts.required ?? []) {
    const v = path.split('.').reduce<unknown>((o, k) => (isPlainObject(o) ? o[k] : undefined), merged);
    if (v === undefined || v === '') issues.push(`${hint(path)}: required`);
  }
  issues.push(...crossChecks(merged, opts.role));
  issues.push(...checkPaths(merged, opts.role, cwd, nameOf));
  if (issues.length > 0 || !result.success) {
    throw new ConfigError(issues, fileUsed ? filePath : undefined);
  }
  const cfg = absolutePaths(result.data, cwd);
  const dataDir = resolve(cwd, cfg.dataDir);
  return { ...cfg, dataDir, port: cfg.port ?? DEFAULT_PORTS[opts.role] };
}
