import { parseSignatureInput, type Signer, signRequest } from '@geofence/http-sig';
import { Tpm, tpmSigner } from '@geofence/native-tpm';
import {
  agentNameSchema,
  NONCE_SIGNATURE_COMPONENTS,
  type PayloadAlgorithm,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
} from '@geofence/protocol';
import { keyIdOfPublic, parsePublic, publicToPem } from '@geofence/tpm-wire';
import { destination, pino } from 'pino';
import { z } from 'zod';
import {
  type LocationAttestationOutcome,
  type LocationToSeal,
  type PerformEnrollmentOptions,
  type PerformLocationAttestationOptions,
  performEnrollment,
  performLocationAttestation,
  type StoredEnrollment,
  sensorInfoFromIdentity,
} from './attestation/index.js';
import {
  AgentClosedError,
  AgentOptionsError,
  DeliveryDeferredError,
  DeliveryError,
  DeliveryUncertainError,
  GeofenceRejection,
  OutboxFullError,
} from './errors.js';
import {
  type LocationObservation,
  type LocationProvider,
  NoLocationError,
  type SensorIdentity,
} from './location/types.js';
import { buildMetricsRequest, type SignedMetricsRequest } from './message.js';
import { MemoryQueue, type MessageQueue, type QueuedMessage, SqliteOutbox } from './outbox.js';
import { backoffDelay, DEFAULT_RETRY, type RetryPolicy } from './retry.js';
import { AgentState, type AppKeyAlgorithm, defaultStateDir, type StoredTpmKey } from './state.js';
import { RetriableError, type TlsOptions, Transport } from './transport.js';

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
   * Durable outbox (default enabled): messages are stored in SQLite in the state directory before
   * delivery and survive restarts. `false` keeps the queue in memory.
   */
  outbox?: false | { maxMessages?: number };
  /** Logger (default: pino JSON on stderr at `warn`). */
  logger?: AgentLogger;
}

/**
 * Options of {@link Agent.enroll}: what {@link performEnrollment} needs beyond what the agent
 * already has (name, TPM, state, HTTP client, AppSK algorithm). `sensor` defaults to the location
 * provider's receiver identity when it has one (gpsd).
 */
export type AgentEnrollOptions = Omit<
  PerformEnrollmentOptions,
  'agentName' | 'tpm' | 'state' | 'post' | 'appKeyAlgorithm'
>;

/** Options of {@link Agent.attestLocation}. */
export interface AgentAttestLocationOptions {
  /** Reading to seal; default: the location provider's current precise reading (with its fix time). */
  location?: LocationToSeal;
  /** Signed MNO location statement for the attestation's nonce (see `PerformLocationAttestationOptions`). */
  mnoLocation?: PerformLocationAttestationOptions['mnoLocation'];
}

/** Result of a successful delivery. */
export interface SendResult {
  /** Record id the collector assigned (shared by all metric sets of one batch). */
  recordId: string;
}

/** Public identity of the agent's AppSK. */
export interface AgentIdentity {
  /** keyid = lowercase hex SHA-256 of the SPKI DER (SPEC §3). */
  keyid: string;
  /** RFC 9421 / payload algorithm. */
  alg: PayloadAlgorithm;
  /** AppSK public key, PEM (SPKI). */
  publicKeyPem: string;
  /** TPM2B_PUBLIC of the AppSK. */
  tpmPublic: Uint8Array;
}

/** What {@link Agent.status} reports (real state, not configuration). */
export interface AgentStatusReport {
  /** Agent name. */
  name: string;
  /** keyid of the AppSK, once the TPM was used. */
  keyid: string | undefined;
  /** AppSK algorithm. */
  algorithm: AppKeyAlgorithm;
  /** Whether the TPM was opened and the AppSK loaded (see {@link Agent.probeTpm} for a live check). */
  tpmReady: boolean;
  /** Whether an enrolment result is stored in the state directory. */
  enrolled: boolean;
  /** Queue state: durable or in memory, messages waiting, messages rejected (dead-lettered). */
  outbox: { durable: boolean; pending: number; deadLettered: number };
  /** Metric-set messages accepted by the collector since start. */
  delivered: number;
  /** Messages rejected with a 4xx since start. */
  rejected: number;
  /** Outcome of the last delivery attempt. */
  lastSend:
    | { at: string; ok: true; recordId: string }
    | { at: string; ok: false; error: string; code?: string }
    | undefined;
}

/** Time spent in the TPM and in total, accumulated over all deliveries (for benchmarks). */
export interface AgentTimings {
  /** Deliveries measured. */
  deliveries: number;
  /** TPM sign calls. */
  signatures: number;
  /** ms spent in TPM sign calls. */
  tpmMs: number;
  /** ms spent building, signing and posting messages, in total (includes `tpmMs`). */
  totalMs: number;
  /** ms spent waiting for the network (nonce + POST), part of `totalMs`. */
  networkMs: number;
}

const ALGS: Record<AppKeyAlgorithm, PayloadAlgorithm> = {
  'ecc-p256': 'ecdsa-p256-sha256',
  'rsa-2048': 'rsa-v1_5-sha256',
};

const isTpm = (v: unknown): v is Tpm => v instanceof Tpm;

const optionsSchema = z.strictObject({
  name: agentNameSchema,
  tpm: z.union([z.strictObject({ tcti: z.string().min(1) }), z.custom<Tpm>(isTpm, 'must be an open Tpm')]),
  gateway: z
    .url({ protocol: /^https?$/ })
    .refine((u) => !new URL(u).username && !new URL(u).password, 'must not contain credentials'),
  tls: z
    .strictObject({
      ca: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
      insecureSkipVerify: z.boolean().optional(),
    })
    .optional(),
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
});

interface Waiter {
  resolve(r: SendResult): void;
  reject(e: unknown): void;
  failures: number;
}

/**
 * An edge agent: signs metrics with its TPM-resident AppSK and delivers them to the gateway.
 * Create it with {@link createAgent}.
 */
export class Agent {
  /** Agent name. */
  readonly name: string;
  /** The state directory (key blob, enrolment result, outbox). */
  readonly state: AgentState;
  private readonly o: {
    algorithm: AppKeyAlgorithm;
    clientType: string;
    retry: RetryPolicy;
    coalesceMs: number;
    maxBatchSize: number;
    validity: number;
    signNonce: boolean;
  };
  private readonly logger: AgentLogger;
  private readonly location: LocationProvider;
  private readonly transport: Transport;
  private readonly gateway: URL;
  private readonly tpmOption: { tcti: string } | Tpm;
  private readonly queue: MessageQueue;
  private readonly waiters = new Map<number, Waiter>();
  /**
   * `send()` messages while the durable outbox is empty: delivered straight from memory, and written
   * to the outbox only when an attempt fails (or the agent closes). A caller that has not been
   * answered was not promised anything, so a crash here loses nothing acknowledged — and a healthy
   * send pays no fsync. Ids are negative so they never collide with outbox ids.
   */
  private fast: QueuedMessage[] = [];
  private readonly maxMessages: number;
  private fastId = 0;
  /** The signed request of the head group after a failed POST, sent again as is (see deliver). */
  private resend: PendingResend | undefined;
  /** Whether the outbox holds a saved resend (so clearing it needs a write). */
  private resendSaved = false;
  /** `created`/`expires` of the last signed nonce request (see signNonceRequest). */
  private lastNonceRequest: { created: number; expires: number } | undefined;
  private init: Promise<{ tpm: Tpm; key: StoredTpmKey; identity: AgentIdentity; signer: Signer }> | undefined;
  private tpmOpened: Tpm | undefined;
  private pumping: Promise<void> | undefined;
  private wakeSleep: (() => void) | undefined;
  private closed = false;
  private delivered = 0;
  private rejected = 0;
  private lastSend: AgentStatusReport['lastSend'];
  private readonly timings: AgentTimings = {
    deliveries: 0,
    signatures: 0,
    tpmMs: 0,
    totalMs: 0,
    networkMs: 0,
  };

  /** @internal Use {@link createAgent}. */
  constructor(options: AgentOptions) {
    const parsed = optionsSchema.safeParse(options);
    if (!parsed.success) {
      throw new AgentOptionsError(
        parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
      );
    }
    const opts = parsed.data;
    this.name = opts.name;
    this.logger = opts.logger ?? pino({ name: 'geofence-agent', level: 'warn' }, destination(2));
    this.gateway = new URL(opts.gateway);
    if (this.gateway.protocol === 'http:') {
      if (!opts.allowPlainHttp) {
        throw new AgentOptionsError([
          'gateway: plain http is refused; use https or set allowPlainHttp (development only)',
        ]);
      }
      this.logger.warn({ gateway: this.gateway.origin }, 'plain HTTP to the gateway: no transport security');
    }
    if (opts.tls?.insecureSkipVerify) {
      this.logger.warn(
        { gateway: this.gateway.origin },
        'TLS certificate verification is DISABLED (insecureSkipVerify); never use this in production',
      );
    }
    this.o = {
      algorithm: opts.algorithm ?? 'ecc-p256',
      clientType: opts.clientType ?? 'thick',
      retry: { ...DEFAULT_RETRY, ...opts.retry },
      coalesceMs: opts.coalesceMs ?? 0,
      maxBatchSize: opts.maxBatchSize ?? 500,
      validity: opts.signatureValiditySeconds ?? 60,
      signNonce: opts.signNonceRequests ?? true,
    };
    this.location = opts.location;
    this.tpmOption = opts.tpm;
    this.state = AgentState.open(opts.stateDir ?? defaultStateDir(opts.name));
    const maxMessages = (opts.outbox === false ? undefined : opts.outbox?.maxMessages) ?? 100_000;
    this.maxMessages = maxMessages;
    this.queue =
      opts.outbox === false
        ? new MemoryQueue(maxMessages)
        : new SqliteOutbox(this.state.path('outbox.sqlite'), maxMessages);
    this.transport = new Transport({
      gateway: this.gateway,
      tls: opts.tls ?? {},
      connectTimeoutMs: opts.timeouts?.connectMs ?? 5000,
      requestTimeoutMs: opts.timeouts?.requestMs ?? 15_000,
      connections: 4,
    });
    const left = this.queue.loadResend();
    if (left) {
      this.resendSaved = true;
      this.resend = {
        ids: left.ids,
        req: { payload: undefined, body: left.body, headers: left.headers },
        validUntil: left.validUntil,
        resent: false,
      };
    }
    // Messages a previous process left in the outbox are delivered without anyone asking.
    if (this.queue.size() > 0) {
      this.logger.info({ pending: this.queue.size() }, 'delivering messages left in the outbox');
      this.kick();
    }
  }

  /** Largest number of metric sets {@link Agent.sendBatch} accepts. */
  get maxBatchSize(): number {
    return this.o.maxBatchSize;
  }

  /** Opens the TPM (when given a TCTI) and loads or creates the AppSK; returns its identity. */
  async ready(): Promise<AgentIdentity> {
    return (await this.initialize()).identity;
  }

  /**
   * Asks the TPM for one random byte (after opening it and loading the AppSK when that has not
   * happened yet). Resolves `true` when the TPM answered within `timeoutMs` (default 2000), `false`
   * otherwise — never rejects, so a status endpoint can report the TPM's real reachability.
   */
  async probeTpm(timeoutMs = 2000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
    });
    const probe = this.initialize()
      .then(({ tpm }) => tpm.getRandom(1))
      .then(
        () => true as const,
        () => false as const,
      );
    try {
      return await Promise.race([probe, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private initialize() {
    if (this.closed) return Promise.reject(new AgentClosedError());
    this.init ??= (async () => {
      let tpm: Tpm;
      if (isTpm(this.tpmOption)) {
        tpm = this.tpmOption;
      } else {
        tpm = await Tpm.open({ tcti: this.tpmOption.tcti });
        this.tpmOpened = tpm;
      }
      const key = await this.state.loadOrCreateAppKey(tpm, this.o.algorithm);
      const pub = parsePublic(key.public);
      const identity: AgentIdentity = {
        keyid: keyIdOfPublic(pub),
        alg: ALGS[this.o.algorithm],
        publicKeyPem: publicToPem(pub),
        tpmPublic: key.public,
      };
      const timings = this.timings;
      const tpmSign = tpmSigner(tpm, key, { keyid: identity.keyid, alg: identity.alg });
      // Same signer, timed: the benchmark splits send() into TPM time and everything else.
      const signer: Signer = {
        keyid: tpmSign.keyid,
        alg: tpmSign.alg,
        async sign(data) {
          const t0 = performance.now();
          try {
            return await tpmSign.sign(data);
          } finally {
            timings.tpmMs += performance.now() - t0;
            timings.signatures++;
          }
        },
      };
      this.identitySync = identity;
      return { tpm, key, identity, signer };
    })();
    this.init.catch(() => {
      this.init = undefined;
    });
    return this.init;
  }

  /**
   * Signs and delivers one metric set (any JSON object). Resolves with the record id once the
   * collector accepted it. Rejects with
   * - {@link GeofenceRejection} on a 4xx (never retried; a 429 only after all attempts),
   * - {@link DeliveryDeferredError} when every attempt failed but the message waits in the durable outbox,
   * - {@link DeliveryError} when every attempt failed and there is no outbox,
   * - {@link DeliveryUncertainError} when the collector processed an attempt whose answer was lost,
   * - `NoLocationError` when there is no trustworthy location (nothing was sent),
   * - {@link OutboxFullError} when the queue is full (the message was not stored),
   * - `TypeError` when `metrics` is not a JSON object.
   */
  send(metrics: Record<string, unknown>): Promise<SendResult> {
    let m: Record<string, unknown>;
    try {
      m = checkMetrics(metrics);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.submit('single', m);
  }

  /**
   * Signs many metric sets with ONE payload signature and ONE HTTP signature: the payload's
   * `metrics` is `{ "batch": [ …metric sets… ] }`. This is how an agent sends more data than its
   * TPM can sign messages per second.
   */
  sendBatch(items: Array<Record<string, unknown>>): Promise<SendResult> {
    if (!Array.isArray(items) || items.length === 0)
      return Promise.reject(new TypeError('sendBatch needs a non-empty array'));
    if (items.length > this.o.maxBatchSize) {
      return Promise.reject(
        new RangeError(`batch of ${items.length} exceeds maxBatchSize ${this.o.maxBatchSize}`),
      );
    }
    let checked: Array<Record<string, unknown>>;
    try {
      checked = items.map(checkMetrics);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.submit('batch', checked);
  }

  /**
   * Queues a metric set durably and returns at once (fire and forget): the outbox delivers it
   * in order, retrying until the gateway accepts or rejects it.
   */
  enqueue(metrics: Record<string, unknown>): { outboxId: number } {
    if (this.closed) throw new AgentClosedError();
    const m = checkMetrics(metrics);
    this.persistFastLane();
    const id = this.addToQueue('single', m);
    this.kick();
    return { outboxId: id };
  }

  /**
   * Waits until the queue is empty (everything delivered or rejected). Returns `true` then, or
   * `false` when `timeoutMs` passed first or the agent was closed (messages stay queued).
   */
  async flush(options: { timeoutMs?: number } = {}): Promise<boolean> {
    const deadline =
      options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeoutMs;
    while (!this.closed && this.pending() > 0) {
      if (Date.now() >= deadline) return false;
      this.kick();
      await Promise.race([this.pumping, sleep(Math.min(200, Math.max(0, deadline - Date.now())))]);
      if (this.pending() > 0) await sleep(20);
    }
    return !this.closed || this.pending() === 0;
  }

  /**
   * Enrols the agent (SPEC §4, Proof of Residency): EK → AK credential activation, certification
   * of the AppSK by the AK, PCR quote, through `POST /enroll` and `/enroll/{id}/complete`. The
   * result (attestation result JWT, AK blob) is stored in the state directory. Delegates to
   * {@link performEnrollment}.
   */
  async enroll(options: AgentEnrollOptions): Promise<StoredEnrollment> {
    const { tpm } = await this.initialize();
    const sensor = options.sensor ?? this.sensorInfo();
    return performEnrollment({
      ...options,
      ...(sensor ? { sensor } : {}),
      agentName: this.name,
      tpm,
      state: this.state,
      appKeyAlgorithm: this.o.algorithm,
      post: (path, json) => this.transport.postJson(path, json),
    });
  }

  /**
   * Proves the current location with a TPM quote that seals workload and location together
   * (SPEC §5.4, V-PEA `lah-bundle`) via `POST /attest/location`; needs a completed enrolment and a
   * precise reading (a GNSS provider, or a static one with lat/lon). Delegates to
   * {@link performLocationAttestation}.
   */
  async attestLocation(options: AgentAttestLocationOptions = {}): Promise<LocationAttestationOutcome> {
    const { tpm, signer } = await this.initialize();
    let location = options.location;
    if (!location) {
      const r = (await this.location.current()).reading;
      if (!r) throw new NoLocationError('no_fix', 'the location provider gives no coordinates to attest');
      // The lah-bundle carries no quality (the verifier takes a sensor-bound point as GNSS): a
      // dead-reckoning or simulated fix must not be sealed as one.
      if (r.quality !== 'GNSS' && r.quality !== 'static')
        throw new NoLocationError('no_fix', `a ${r.quality} reading is not attested as a measured location`);
      // Never claim a precision nobody measured: no accuracy estimate, no attestation.
      if (r.accuracy === undefined)
        throw new NoLocationError('no_fix', 'the reading has no accuracy estimate to attest');
      location = { lat: r.lat, lon: r.lon, accuracy: r.accuracy, fix_time: r.fix_time };
    }
    return performLocationAttestation({
      tpm,
      state: this.state,
      post: (path, json) => this.transport.postJson(path, json),
      nonce: async (keyid) =>
        (
          await this.transport.nonce(
            keyid,
            this.o.signNonce ? (t) => this.signNonceRequest(signer, t) : undefined,
          )
        ).nonce,
      location,
      ...(options.mnoLocation ? { mnoLocation: options.mnoLocation } : {}),
    });
  }

  private sensorInfo() {
    const p = this.location as LocationProvider & { sensor?: () => SensorIdentity | undefined };
    const id = typeof p.sensor === 'function' ? p.sensor() : undefined;
    return id ? sensorInfoFromIdentity(id) : undefined;
  }

  /** Real state: TPM reachable, enrolled, outbox depth, last send result. */
  status(): AgentStatusReport {
    let enrolled = false;
    try {
      enrolled = this.state.enrollment() !== null;
    } catch {
      enrolled = false;
    }
    return {
      name: this.name,
      keyid: this.identitySync?.keyid,
      algorithm: this.o.algorithm,
      tpmReady: this.identitySync !== undefined,
      enrolled,
      outbox: {
        durable: this.queue.durable,
        pending: this.pending(),
        deadLettered: this.queue.deadLettered(),
      },
      delivered: this.delivered,
      rejected: this.rejected,
      lastSend: this.lastSend,
    };
  }

  /** Accumulated timings (TPM vs. everything else) of all deliveries so far. */
  timingStats(): AgentTimings {
    return { ...this.timings };
  }

  private identitySync: AgentIdentity | undefined;

  /**
   * Stops delivering, closes the connection pool, the outbox and (if the agent opened it) the
   * TPM. Messages still queued stay in the durable outbox for the next start; callers still
   * waiting get {@link AgentClosedError}.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeSleep?.();
    await this.pumping?.catch(() => undefined);
    // Unsent send() messages go to the outbox for the next start; their callers learn that.
    const kept = this.persistFastLane();
    for (const [id, w] of this.waiters) {
      w.reject(
        kept.has(id) ? new DeliveryDeferredError([id], new AgentClosedError()) : new AgentClosedError(),
      );
    }
    this.waiters.clear();
    await this.transport.close().catch(() => undefined);
    this.queue.close();
    await this.location.close?.();
    if (this.tpmOpened) await this.tpmOpened.close();
  }

  private addToQueue(kind: QueuedMessage['kind'], metrics: QueuedMessage['metrics']): number {
    try {
      return this.queue.add(kind, metrics);
    } catch (err) {
      if (err instanceof OutboxFullError) {
        this.logger.error(
          { limit: err.limit, pending: this.queue.size() },
          'outbox full: dropping the new message',
        );
      }
      throw err;
    }
  }

  private submit(kind: QueuedMessage['kind'], metrics: QueuedMessage['metrics']): Promise<SendResult> {
    if (this.closed) return Promise.reject(new AgentClosedError());
    let id: number;
    try {
      if (this.queue.durable && this.queue.size() === 0) {
        if (this.fast.length >= this.maxMessages) throw this.full();
        id = --this.fastId;
        this.fast.push({ id, kind, metrics, enqueuedAt: Date.now(), attempts: 0 });
      } else {
        id = this.addToQueue(kind, metrics);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const p = new Promise<SendResult>((resolve, reject) => {
      this.waiters.set(id, { resolve, reject, failures: 0 });
    });
    this.kick();
    return p;
  }

  private pending(): number {
    return this.fast.length + this.queue.size();
  }

  private full(): OutboxFullError {
    const err = new OutboxFullError(this.maxMessages);
    this.logger.error({ limit: err.limit, pending: this.pending() }, 'outbox full: dropping the new message');
    return err;
  }

  /**
   * Moves every fast-lane message into the durable outbox, in order, and re-keys its waiter.
   * Returns the new ids. When the outbox is full the remaining messages stay in memory.
   */
  private persistFastLane(): Set<number> {
    const kept = new Set<number>();
    while (this.fast.length > 0) {
      const m = this.fast[0]!;
      let id: number;
      try {
        id = this.queue.add(m.kind, m.metrics);
      } catch (err) {
        if (err instanceof OutboxFullError) this.full();
        break;
      }
      this.fast.shift();
      kept.add(id);
      if (this.resend) this.resend.ids = this.resend.ids.map((x) => (x === m.id ? id : x));
      const w = this.waiters.get(m.id);
      if (w) {
        this.waiters.delete(m.id);
        this.waiters.set(id, w);
      }
    }
    return kept;
  }

  private kick(): void {
    if (this.closed) return;
    this.wakeSleep?.();
    this.pumping ??= this.pump().finally(() => {
      this.pumping = undefined;
      if (!this.closed && this.pending() > 0 && this.waitingOrDurable()) this.kick();
    });
  }

  private waitingOrDurable(): boolean {
    return this.queue.durable || this.waiters.size > 0;
  }

  /**
   * The delivery loop: one message (or coalesced batch) at a time, oldest first, so the collector
   * sees messages in the order they were produced.
   */
  private async pump(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      const fromOutbox = this.queue.size() > 0;
      const pending = fromOutbox
        ? this.queue.peek(this.o.maxBatchSize)
        : this.fast.slice(0, this.o.maxBatchSize);
      const first = pending[0];
      if (!first) return;
      let group = this.group(pending);
      if (this.resend) {
        // Keep the group of a request whose answer was lost together, so it can be resent as is.
        const set = new Set(this.resend.ids);
        const kept = pending.filter((m) => set.has(m.id));
        if (kept.length === this.resend.ids.length) group = kept;
        else this.resend = undefined;
      }
      if (
        !this.resend &&
        this.o.coalesceMs > 0 &&
        first.kind === 'single' &&
        group.length < this.o.maxBatchSize
      ) {
        const wait = first.enqueuedAt + this.o.coalesceMs - Date.now();
        if (wait > 0 && failures === 0) {
          await this.sleep(wait);
          continue;
        }
      }
      const ids = group.map((m) => m.id);
      try {
        const recordId = await this.deliver(group);
        this.keepResend();
        failures = 0;
        this.forget(fromOutbox, ids);
        this.delivered += ids.length;
        this.lastSend = { at: new Date().toISOString(), ok: true, recordId };
        for (const id of ids) this.settle(id, (w) => w.resolve({ recordId }));
      } catch (err) {
        if (!(err instanceof RetriableError)) this.keepResend();
        if (err instanceof DeliveryUncertainError) {
          // Never sent again (that could store it twice); kept in the dead-letter table for review.
          failures = 0;
          if (fromOutbox) this.queue.deadLetter(ids, err.message);
          else this.forget(false, ids);
          this.lastSend = { at: new Date().toISOString(), ok: false, error: err.message, code: err.code };
          this.logger.warn({ messages: ids.length }, err.message);
          for (const id of ids) this.settle(id, (w) => w.reject(err));
          continue;
        }
        if (err instanceof GeofenceRejection) {
          failures = 0;
          if (fromOutbox) this.queue.deadLetter(ids, `${err.status} ${err.validationType}: ${err.error}`);
          else this.forget(false, ids);
          this.rejected += ids.length;
          this.lastSend = {
            at: new Date().toISOString(),
            ok: false,
            error: err.message,
            code: err.validationType,
          };
          this.logger.warn(
            {
              status: err.status,
              validationType: err.validationType,
              rejectedBy: err.rejectedBy,
              messages: ids.length,
            },
            'message rejected',
          );
          for (const id of ids) this.settle(id, (w) => w.reject(err));
          continue;
        }
        failures++;
        if (fromOutbox) this.queue.markAttempt(ids, (err as Error).message ?? String(err));
        this.lastSend = {
          at: new Date().toISOString(),
          ok: false,
          error: (err as Error).message,
          code: (err as { code?: string }).code ?? 'unavailable',
        };
        this.logger.warn(
          { err: (err as Error).message, failures, messages: ids.length },
          'delivery failed; will retry',
        );
        for (const id of ids) {
          const w = this.waiters.get(id);
          if (w) w.failures++;
        }
        // The gateway is struggling: from now on these messages must survive a restart.
        const remap = fromOutbox ? undefined : this.persistFastLane();
        this.keepResend();
        for (const w of [...this.waiters.entries()]) {
          const [id, waiter] = w;
          if (waiter.failures < this.o.retry.attempts) continue;
          this.waiters.delete(id);
          if (this.queue.durable && (fromOutbox || remap?.has(id))) {
            waiter.reject(new DeliveryDeferredError([id], err));
          } else {
            this.queue.remove([id]);
            this.fast = this.fast.filter((m) => m.id !== id);
            // No location is not a delivery problem: say so (nothing was sent).
            waiter.reject(finalError(err, waiter.failures));
          }
        }
        // In memory, nobody waits for what is left: stop instead of retrying forever.
        if (!this.waitingOrDurable()) return;
        const retryAfter = err instanceof RetriableError ? err.retryAfterMs : undefined;
        await this.sleep(backoffDelay(this.o.retry, failures, retryAfter));
      }
    }
  }

  /**
   * Mirrors the pending resend into the durable outbox, so a restarted agent sends the same bytes
   * (not a new copy with a fresh nonce). Only for messages that are in the outbox (positive ids).
   */
  private keepResend(): void {
    if (!this.queue.durable) return;
    const r = this.resend;
    if (!r || !r.ids.every((id) => id > 0)) {
      // Only touch the disk when there is something to forget: a healthy send stays fsync-free.
      if (this.resendSaved) this.queue.saveResend(undefined);
      this.resendSaved = false;
      return;
    }
    this.queue.saveResend({ ids: r.ids, body: r.req.body, headers: r.req.headers, validUntil: r.validUntil });
    this.resendSaved = true;
  }

  /**
   * RFC 9421 signature of `GET <target>` (SPEC §6.3: `@method @path @query`, no nonce). The collector
   * accepts each signed nonce request once (SPEC §16), and RSASSA-PKCS1-v1_5 signatures are
   * deterministic, so two requests signed in the same second get different `expires` values — the
   * signature base, and so the signature, never repeats.
   */
  private async signNonceRequest(signer: Signer, target: string): Promise<Record<string, string>> {
    const created = Math.floor(Date.now() / 1000);
    let expires = created + this.o.validity;
    const last = this.lastNonceRequest;
    if (last && last.created === created) expires = Math.max(created + 1, last.expires - 1);
    if (last && last.created === created && last.expires === expires) {
      // Every expires value of this second is used: the next second starts a fresh range.
      await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000)));
      return this.signNonceRequest(signer, target);
    }
    this.lastNonceRequest = { created, expires };
    const h = await signRequest(
      { method: 'GET', url: `${this.gateway.origin}${target}`, headers: {} },
      {
        signer,
        components: NONCE_SIGNATURE_COMPONENTS,
        label: SIGNATURE_LABEL,
        tag: SIGNATURE_TAG,
        created,
        expires,
      },
    );
    return { 'signature-input': h['signature-input'], signature: h.signature };
  }

  private forget(fromOutbox: boolean, ids: number[]): void {
    if (fromOutbox) {
      this.queue.remove(ids);
      return;
    }
    const set = new Set(ids);
    this.fast = this.fast.filter((m) => !set.has(m.id));
  }

  /** Next delivery unit: a batch message alone, or consecutive single messages (coalesced). */
  private group(pending: QueuedMessage[]): QueuedMessage[] {
    const first = pending[0]!;
    if (first.kind === 'batch' || this.o.coalesceMs === 0) return [first];
    const out: QueuedMessage[] = [];
    for (const m of pending) {
      if (m.kind !== 'single' || out.length >= this.o.maxBatchSize) break;
      out.push(m);
    }
    return out;
  }

  private settle(id: number, f: (w: Waiter) => void): void {
    const w = this.waiters.get(id);
    if (!w) return;
    this.waiters.delete(id);
    f(w);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        if (self.wakeSleep === done) self.wakeSleep = undefined;
        resolve();
      }
      this.wakeSleep = done;
    });
  }

  /** One attempt: fresh location, fresh nonce, sign, POST. */
  private async deliver(group: QueuedMessage[]): Promise<string> {
    const { identity, signer } = await this.initialize();
    this.identitySync = identity;
    const t0 = performance.now();
    const ids = group.map((m) => m.id);
    let network = 0;
    let signed = this.resend && sameIds(this.resend.ids, ids) ? this.resend : undefined;
    // Resend only while the collector will still take it; later, a fresh nonce is the only way.
    if (signed && signed.validUntil - Date.now() < RESEND_MARGIN_MS) {
      this.logger.warn(
        { messages: ids.length },
        'a message whose answer was lost expired before it could be resent; re-signing with a fresh nonce',
      );
      signed = undefined;
    }
    this.resend = undefined;
    if (!signed) {
      const observation: LocationObservation = await this.location.current();
      const first = group[0]!;
      const metrics =
        first.kind === 'batch'
          ? { batch: first.metrics as Array<Record<string, unknown>> }
          : group.length === 1
            ? (first.metrics as Record<string, unknown>)
            : { batch: group.map((m) => m.metrics as Record<string, unknown>) };
      const n0 = performance.now();
      let signing = 0;
      const nonce = await this.transport.nonce(
        identity.keyid,
        this.o.signNonce
          ? async (target) => {
              const s0 = performance.now();
              try {
                return await this.signNonceRequest(signer, target);
              } finally {
                signing = performance.now() - s0;
              }
            }
          : undefined,
      );
      network = performance.now() - n0 - signing;
      const now = new Date();
      const req = await buildMetricsRequest({
        agentName: this.name,
        keyid: identity.keyid,
        signer,
        nonce,
        observation,
        metrics,
        clientType: this.o.clientType,
        path: this.transport.path('/metrics'),
        origin: this.gateway.origin,
        now,
        validitySeconds: this.o.validity,
      });
      const expires = parseSignatureInput(req.headers['signature-input'] ?? '')[0]?.expires;
      const validUntil = Math.min(
        Date.parse(nonce.expires_at),
        expires !== undefined ? expires * 1000 : now.getTime(),
      );
      signed = { ids, req, validUntil, resent: false };
    } else {
      signed = { ...signed, resent: true };
    }
    const p0 = performance.now();
    try {
      return await this.transport.postMetrics(
        this.transport.path('/metrics'),
        signed.req.headers,
        signed.req.body,
      );
    } catch (err) {
      if (err instanceof RetriableError) {
        // The request may have been processed and only the answer lost: the next attempt sends
        // the very same bytes, so the collector's single-use nonce decides — it stores the message
        // at most once.
        this.resend = signed;
      } else if (
        signed.resent &&
        err instanceof GeofenceRejection &&
        err.validationType === 'nonce_validation'
      ) {
        throw new DeliveryUncertainError(ids, err);
      }
      throw err;
    } finally {
      network += performance.now() - p0;
      this.timings.deliveries++;
      this.timings.networkMs += network;
      this.timings.totalMs += performance.now() - t0;
    }
  }
}

/** A signed request kept for resending after an attempt whose outcome is unknown. */
interface PendingResend {
  ids: number[];
  req: Pick<SignedMetricsRequest, 'body' | 'headers'> & {
    payload: SignedMetricsRequest['payload'] | undefined;
  };
  /** ms since the epoch until which the collector accepts it (signature expiry, nonce expiry). */
  validUntil: number;
  resent: boolean;
}

/** Resend the same signed request only with at least this much validity left (clock skew, transit). */
const RESEND_MARGIN_MS = 5000;

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * What a caller without an outbox gets after the last attempt: no location and rate limiting are
 * reported as themselves (nothing was sent / the gateway said "later"), anything else as DeliveryError.
 */
function finalError(err: unknown, attempts: number): Error {
  if (err instanceof NoLocationError) return err;
  if (err instanceof RetriableError && err.cause instanceof GeofenceRejection) return err.cause;
  return new DeliveryError(attempts, err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function checkMetrics(m: unknown): Record<string, unknown> {
  if (m === null || typeof m !== 'object' || Array.isArray(m))
    throw new TypeError('metrics must be a JSON object');
  // Round-trip now, so a value JSON cannot carry (a function, a cycle, a BigInt) fails the caller,
  // not the delivery loop; and so what is queued is exactly what will be signed.
  const text = JSON.stringify(m);
  return JSON.parse(text) as Record<string, unknown>;
}

/**
 * Creates an agent. Options are validated here (throws {@link AgentOptionsError}); the TPM is
 * opened and the AppSK loaded (or created, once) on first use or by {@link Agent.ready}.
 *
 * @example
 * ```ts
 * const agent = createAgent({
 *   name: 'agent-001',
 *   tpm: { tcti: 'swtpm:host=127.0.0.1,port=2321' },
 *   gateway: 'https://127.0.0.1:8444',
 *   tls: { ca: readFileSync('demo-ca.pem', 'utf8') },
 *   location: staticLocation({ region: 'US', state: 'California', city: 'Santa Clara' }),
 * });
 * const { recordId } = await agent.send({ cpu: 0.42 });
 * ```
 */
export function createAgent(options: AgentOptions): Agent {
  return new Agent(options);
}
