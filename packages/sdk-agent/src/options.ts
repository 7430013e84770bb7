/**
 * The agent's options: what a caller may pass to `createAgent`, how it is validated, and the
 * defaults that turn it into the settings every other module reads.
 */
import { Tpm } from '@geofence/native-tpm';
import { agentNameSchema, type MnoLocation } from '@geofence/protocol';
import { destination, pino } from 'pino';
import { z } from 'zod';
import type { LocationToSeal } from './attestation/location.js';
import { AgentOptionsError } from './errors.js';
import type { LocationProvider } from './location/types.js';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.js';
import { type AppKeyAlgorithm, defaultStateDir } from './state.js';
import type { TlsOptions } from './transport.js';

/** Structured logger (pino-compatible subset). The agent never logs keys, nonces or signatures. */
export interface AgentLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Options of {@link createAgent}. */
export interface AgentOptions {
  /** Agent name (`agent_name`, `client_workload_id`): 1–128 of `[A-Za-z0-9._-]`. */
  name: string;
  /** TPM: a TCTI string to open (e.g. `swtpm:host=127.0.0.1,port=2321`), or an already open TPM. */
  tpm: { tcti: string } | Tpm;
  /** Gateway (or collector) base URL, e.g. `https://gateway.example:8443`. */
  gateway: string;
  /** TLS: CA of the gateway certificate; verification is on unless `insecureSkipVerify`. */
  tls?: TlsOptions;
  /** Allow a plain `http:` gateway (development only; logged as a warning). */
  allowPlainHttp?: boolean;
  /** Where the location comes from (`staticLocation`, `gpsdLocation`, …). */
  location: LocationProvider;
  /** State directory (default `~/.geofence/<name>/`). */
  stateDir?: string;
  /** AppSK algorithm (default `ecc-p256`). */
  algorithm?: AppKeyAlgorithm;
  /** `client_type` of the Workload-Geo-ID header (default `thick`). */
  clientType?: string;
  /** Timeouts in ms: TCP/TLS connect (default 5000), each request (default 15000). */
  timeouts?: { connectMs?: number; requestMs?: number };
  /** Retry policy for network errors and 5xx (never for 4xx). */
  retry?: Partial<RetryPolicy>;
  /**
   * Coalescing window in ms (default 0 = off): `send` calls made within this window after the
   * first one are signed together as one batch, and each caller gets the batch's record id.
   */
  coalesceMs?: number;
  /** Largest number of metric sets in one signed batch (default 500). */
  maxBatchSize?: number;
  /** Signature validity in seconds (default 60, at most 300). */
  signatureValiditySeconds?: number;
  /**
   * Sign `GET /nonce` with the AppSK (SPEC §6.3, components `@method @path @query`; default true).
   * Costs one more TPM signature per message, and buys this: nonces issued to a signed request are
   * kept apart from nonces anyone could request for the (public) keyid, so nobody can evict this
   * agent's nonce between `GET /nonce` and `POST /metrics`, and collectors that require signed
   * nonce requests accept the agent.
   */
  signNonceRequests?: boolean;
  /**
   * Nonces fetched per signed `GET /nonce` for metrics delivery (`&count=n`, SPEC §16; 1–100,
   * default 1): with n > 1 a steady sender pays one nonce round trip per n messages. Keep it at most
   * the collector's `NONCE_MAX_OUTSTANDING` (it refuses larger batches). Needs `signNonceRequests`.
   */
  nonceBatch?: number;
  /**
   * Durable outbox (default enabled): messages are stored in SQLite in the state directory before
   * delivery and survive restarts. `false` keeps the queue in memory.
   */
  outbox?: false | { maxMessages?: number };
  /** Logger (default: pino JSON on stderr at `warn`). */
  logger?: AgentLogger;
  /**
   * Where the agent gets a mobile network operator's signed location corroboration (`mno-location`,
   * draft-lkspa-rats-verifiable-geo-fence-03 §5.3.4) for each location attestation: called with the
   * attestation's nonce (the operator's statement must answer it, so a fixed object cannot be
   * reused) and the location about to be sealed; return `undefined` for none. The verifier
   * appraises it (a verified one raises the trust level to `medium`); the agent only carries it.
   */
  mnoLocation?: MnoLocationSource;
  /** Settings of {@link Agent.fetch} (Proof-of-Geofencing credentials). */
  credentials?: CredentialOptions;
}

/** Returns the `mno-location` statement answering `nonce` for the location about to be attested (or none). */
export type MnoLocationSource = (request: {
  /** The nonce of the attestation the statement must answer. */
  nonce: string;
  /** The reading about to be sealed. */
  location: LocationToSeal;
}) => MnoLocation | undefined | Promise<MnoLocation | undefined>;

/** Settings of {@link Agent.fetch}. */
export interface CredentialOptions {
  /**
   * Renew the credential this many seconds before it expires (default 60; never more than half
   * its lifetime), through a fresh location attestation.
   */
  refreshMarginSeconds?: number;
  /** TLS to resource servers (default: the agent's `tls`). */
  tls?: TlsOptions;
}

/** The options after validation and defaults: what the agent's modules are built from. */
export interface ResolvedAgentOptions {
  name: string;
  tpm: { tcti: string } | Tpm;
  gateway: URL;
  tls: TlsOptions;
  location: LocationProvider;
  stateDir: string;
  algorithm: AppKeyAlgorithm;
  clientType: string;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  retry: RetryPolicy;
  coalesceMs: number;
  maxBatchSize: number;
  /** Signature validity, seconds. */
  validitySeconds: number;
  signNonceRequests: boolean;
  nonceBatch: number;
  /** `false`: in-memory queue. */
  durableOutbox: boolean;
  maxMessages: number;
  logger: AgentLogger;
  mnoLocation: MnoLocationSource | undefined;
  credentialRefreshMarginSeconds: number;
  resourceTls: TlsOptions;
}

/** Whether a value is an open TPM of `@geofence/native-tpm`. */
export const isTpm = (v: unknown): v is Tpm => v instanceof Tpm;

const tlsSchema = z
  .strictObject({
    ca: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    insecureSkipVerify: z.boolean().optional(),
  })
  .optional();

const optionsSchema = z.strictObject({
  name: agentNameSchema,
  tpm: z.union([z.strictObject({ tcti: z.string().min(1) }), z.custom<Tpm>(isTpm, 'must be an open Tpm')]),
  gateway: z
    .url({ protocol: /^https?$/ })
    .refine((u) => !new URL(u).username && !new URL(u).password, 'must not contain credentials'),
  tls: tlsSchema,
  allowPlainHttp: z.boolean().optional(),
  location: z.custom<LocationProvider>(
    (v) => typeof v === 'object' && v !== null && typeof (v as LocationProvider).current === 'function',
    'must be a location provider',
  ),
  stateDir: z.string().min(1).optional(),
  algorithm: z.enum(['ecc-p256', 'rsa-2048']).optional(),
  clientType: z.string().min(1).max(64).optional(),
  timeouts: z
    .strictObject({
      connectMs: z.number().int().positive().max(600_000).optional(),
      requestMs: z.number().int().positive().max(600_000).optional(),
    })
    .optional(),
  retry: z
    .strictObject({
      attempts: z.number().int().min(1).max(100).optional(),
      baseDelayMs: z.number().nonnegative().max(600_000).optional(),
      maxDelayMs: z.number().nonnegative().max(3_600_000).optional(),
    })
    .optional(),
  coalesceMs: z.number().nonnegative().max(60_000).optional(),
  maxBatchSize: z.number().int().min(1).max(100_000).optional(),
  signatureValiditySeconds: z.number().int().min(1).max(300).optional(),
  signNonceRequests: z.boolean().optional(),
  nonceBatch: z.number().int().min(1).max(100).optional(),
  outbox: z
    .union([z.literal(false), z.strictObject({ maxMessages: z.number().int().positive().optional() })])
    .optional(),
  logger: z
    .custom<AgentLogger>(
      (v) =>
        typeof v === 'object' &&
        v !== null &&
        ['debug', 'info', 'warn', 'error'].every(
          (m) => typeof (v as Record<string, unknown>)[m] === 'function',
        ),
      'must have debug/info/warn/error methods',
    )
    .optional(),
  mnoLocation: z
    .custom<MnoLocationSource>((v) => typeof v === 'function', 'a function of { nonce, location }')
    .optional(),
  credentials: z
    .strictObject({
      refreshMarginSeconds: z.number().int().min(0).max(86_400).optional(),
      tls: tlsSchema,
    })
    .optional(),
});

/**
 * Validates `options` (throws {@link AgentOptionsError} with one line per problem), applies the
 * defaults, and logs a warning for each development-only setting in use (plain HTTP, no TLS
 * verification) so that it cannot go unnoticed in production logs.
 */
export function resolveOptions(options: AgentOptions): ResolvedAgentOptions {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new AgentOptionsError(
      parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    );
  }
  const opts = parsed.data;
  if ((opts.nonceBatch ?? 1) > 1 && opts.signNonceRequests === false) {
    throw new AgentOptionsError([
      'nonceBatch: batches are issued to signed nonce requests only; leave signNonceRequests on or use nonceBatch 1',
    ]);
  }
  const logger = opts.logger ?? pino({ name: 'geofence-agent', level: 'warn' }, destination(2));
  const gateway = new URL(opts.gateway);
  if (gateway.protocol === 'http:') {
    if (!opts.allowPlainHttp) {
      throw new AgentOptionsError([
        'gateway: plain http is refused; use https or set allowPlainHttp (development only)',
      ]);
    }
    logger.warn({ gateway: gateway.origin }, 'plain HTTP to the gateway: no transport security');
  }
  if (opts.tls?.insecureSkipVerify || opts.credentials?.tls?.insecureSkipVerify) {
    logger.warn(
      { gateway: gateway.origin },
      'TLS certificate verification is DISABLED (insecureSkipVerify); never use this in production',
    );
  }
  return {
    name: opts.name,
    tpm: opts.tpm,
    gateway,
    tls: opts.tls ?? {},
    location: opts.location,
    stateDir: opts.stateDir ?? defaultStateDir(opts.name),
    algorithm: opts.algorithm ?? 'ecc-p256',
    clientType: opts.clientType ?? 'thick',
    connectTimeoutMs: opts.timeouts?.connectMs ?? 5000,
    requestTimeoutMs: opts.timeouts?.requestMs ?? 15_000,
    retry: { ...DEFAULT_RETRY, ...opts.retry },
    coalesceMs: opts.coalesceMs ?? 0,
    maxBatchSize: opts.maxBatchSize ?? 500,
    validitySeconds: opts.signatureValiditySeconds ?? 60,
    signNonceRequests: opts.signNonceRequests ?? true,
    nonceBatch: opts.nonceBatch ?? 1,
    durableOutbox: opts.outbox !== false,
    maxMessages: (opts.outbox === false ? undefined : opts.outbox?.maxMessages) ?? 100_000,
    logger,
    mnoLocation: opts.mnoLocation,
    credentialRefreshMarginSeconds: opts.credentials?.refreshMarginSeconds ?? 60,
    resourceTls: opts.credentials?.tls ?? opts.tls ?? {},
  };
}
