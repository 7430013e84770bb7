/**
 * `Agent`, the public face of the SDK: it wires options, TPM identity, nonce requests, delivery
 * queue, deliverer, delivery loop, credential keeper and PoG fetcher together, and each public
 * method delegates to the one module that does the job.
 */
import { jwkThumbprint } from '@geofence/protocol';
import { Agent as HttpAgent, type RequestInit, type Response } from 'undici';
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
import { CredentialKeeper } from './credential.js';
import { Deliverer } from './deliverer.js';
import { DeliveryLoop } from './delivery-loop.js';
import { DeliveryQueue, type SendResult } from './delivery-queue.js';
import { AgentClosedError, DeliveryDeferredError } from './errors.js';
import { type AgentIdentity, type AgentKeys, type AgentTimings, TpmIdentity } from './identity.js';
import { type LocationProvider, NoLocationError, type SensorIdentity } from './location/types.js';
import { NoncePool } from './nonce-pool.js';
import { NonceRequester } from './nonce-request.js';
import { type AgentLogger, type AgentOptions, type ResolvedAgentOptions, resolveOptions } from './options.js';
import { MemoryQueue, type QueuedMessage, SqliteOutbox } from './outbox.js';
import { PogFetcher } from './pog-fetch.js';
import { AgentState, type AppKeyAlgorithm } from './state.js';
import { Transport } from './transport.js';

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

/**
 * An edge agent: signs metrics with its TPM-resident AppSK and delivers them to the gateway, and
 * calls resources protected by Proof-of-Geofencing credentials ({@link Agent.fetch}).
 * Create it with {@link createAgent}.
 */
export class Agent {
  /** Agent name. */
  readonly name: string;
  /** The state directory (key blob, enrolment result, outbox). */
  readonly state: AgentState;
  private readonly o: ResolvedAgentOptions;
  private readonly logger: AgentLogger;
  private readonly location: LocationProvider;
  private readonly transport: Transport;
  private readonly identity: TpmIdentity;
  private readonly nonces: NonceRequester;
  private readonly queue: DeliveryQueue;
  private readonly loop: DeliveryLoop;
  private readonly resources: HttpAgent;
  private readonly credentials: CredentialKeeper;
  private readonly fetcher: PogFetcher;
  private closed = false;
  private readonly timings: AgentTimings = {
    deliveries: 0,
    signatures: 0,
    tpmMs: 0,
    totalMs: 0,
    networkMs: 0,
  };

  /** @internal Use {@link createAgent}. */
  constructor(options: AgentOptions) {
    const o = resolveOptions(options);
    this.o = o;
    this.name = o.name;
    this.logger = o.logger;
    this.location = o.location;
    this.state = AgentState.open(o.stateDir);
    const outbox = o.durableOutbox
      ? new SqliteOutbox(this.state.path('outbox.sqlite'), o.maxMessages)
      : new MemoryQueue(o.maxMessages);
    this.transport = new Transport({
      gateway: o.gateway,
      tls: o.tls,
      connectTimeoutMs: o.connectTimeoutMs,
      requestTimeoutMs: o.requestTimeoutMs,
      connections: 4,
      onWire: (ms) => {
        this.timings.networkMs += ms;
      },
    });
    this.identity = new TpmIdentity(o.tpm, this.state, o.algorithm, this.timings);
    this.nonces = new NonceRequester(
      this.transport,
      o.gateway.origin,
      o.validitySeconds,
      o.signNonceRequests,
    );
    const deliverer = new Deliverer({
      agentName: o.name,
      clientType: o.clientType,
      validitySeconds: o.validitySeconds,
      origin: o.gateway.origin,
      keys: () => this.keys(),
      transport: this.transport,
      nonces: new NoncePool(this.nonces, o.nonceBatch),
      location: o.location,
      outbox,
      timings: this.timings,
      logger: o.logger,
    });
    this.queue = new DeliveryQueue(outbox, o.maxMessages, o.logger, (from, to) => deliverer.remap(from, to));
    this.loop = new DeliveryLoop(this.queue, deliverer, {
      retry: o.retry,
      coalesceMs: o.coalesceMs,
      maxBatchSize: o.maxBatchSize,
      logger: o.logger,
    });
    this.resources = new HttpAgent({
      connect: {
        ...(o.resourceTls.ca !== undefined ? { ca: o.resourceTls.ca } : {}),
        rejectUnauthorized: o.resourceTls.insecureSkipVerify !== true,
        minVersion: 'TLSv1.2',
      },
      connectTimeout: o.connectTimeoutMs,
      headersTimeout: o.requestTimeoutMs,
      bodyTimeout: o.requestTimeoutMs,
    });
    let jkt: string | undefined;
    this.credentials = new CredentialKeeper({
      attest: async () => (await this.attestLocation()).attestationResult,
      jkt: async () => {
        jkt ??= jwkThumbprint((await this.keys()).identity.publicKeyPem);
        return jkt;
      },
      marginSeconds: o.credentialRefreshMarginSeconds,
      logger: o.logger,
    });
    this.fetcher = new PogFetcher({
      credentials: this.credentials,
      signer: async () => (await this.keys()).signer,
      dispatcher: this.resources,
      validitySeconds: o.validitySeconds,
    });
    // Messages a previous process left in the outbox are delivered without anyone asking.
    if (outbox.size() > 0) {
      this.logger.info({ pending: outbox.size() }, 'delivering messages left in the outbox');
      this.loop.kick();
    }
  }

  /** Largest number of metric sets {@link Agent.sendBatch} accepts. */
  get maxBatchSize(): number {
    return this.o.maxBatchSize;
  }

  /** Opens the TPM (when given a TCTI) and loads or creates the AppSK; returns its identity. */
  async ready(): Promise<AgentIdentity> {
    return (await this.keys()).identity;
  }

  /**
   * Asks the TPM for one random byte (after opening it and loading the AppSK when that has not
   * happened yet). Resolves `true` when the TPM answered within `timeoutMs` (default 2000), `false`
   * otherwise — never rejects, so a status endpoint can report the TPM's real reachability.
   */
  probeTpm(timeoutMs = 2000): Promise<boolean> {
    return this.identity.probe(() => this.keys(), timeoutMs);
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
    const id = this.queue.enqueue('single', m);
    this.loop.kick();
    return { outboxId: id };
  }

  /**
   * Waits until the queue is empty (everything delivered or rejected). Returns `true` then, or
   * `false` when `timeoutMs` passed first or the agent was closed (messages stay queued).
   */
  async flush(options: { timeoutMs?: number } = {}): Promise<boolean> {
    const deadline =
      options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeoutMs;
    while (!this.closed && this.queue.pending() > 0) {
      if (Date.now() >= deadline) return false;
      this.loop.kick();
      await Promise.race([this.loop.running, sleep(Math.min(200, Math.max(0, deadline - Date.now())))]);
      if (this.queue.pending() > 0) await sleep(20);
    }
    return !this.closed || this.queue.pending() === 0;
  }

  /**
   * Enrols the agent (SPEC §4, Proof of Residency): EK → AK credential activation, certification
   * of the AppSK by the AK, PCR quote, through `POST /enroll` and `/enroll/{id}/complete`. The
   * result (attestation result JWT, AK blob) is stored in the state directory. Delegates to
   * {@link performEnrollment}.
   */
  async enroll(options: AgentEnrollOptions): Promise<StoredEnrollment> {
    const { tpm } = await this.keys();
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
    const { tpm, signer } = await this.keys();
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
    // A statement of the operator answers this attestation's nonce: ask for it once the nonce is known.
    const sealedAt = location;
    const configured = this.o.mnoLocation;
    const mnoLocation =
      options.mnoLocation ??
      (configured ? async (nonce: string) => configured({ nonce, location: sealedAt }) : undefined);
    return performLocationAttestation({
      tpm,
      state: this.state,
      post: (path, json) => this.transport.postJson(path, json),
      nonce: async (keyid) => (await this.nonces.fetch(keyid, signer)).nonce,
      location,
      ...(mnoLocation ? { mnoLocation } : {}),
    });
  }

  /**
   * `fetch` for resources protected by Proof of Geofencing (`requireGeofence` in
   * `@geofence/verifier`): sends the request with the agent's current credential (the
   * attestation-result JWT, header `geofence-credential`) and an RFC 9421 signature `pog` by the
   * AppSK over `@method`, `@target-uri`, `geofence-credential` and, with a body, `content-digest`
   * (`keyid` = the credential's `cnf.jkt`, a fresh 192-bit `nonce`, tag `geofence-pog/v1`).
   *
   * The credential is obtained by a location attestation ({@link Agent.attestLocation}) on first
   * use and renewed the same way, with the current location, before it expires
   * (`credentials.refreshMarginSeconds`); concurrent calls share one renewal. Needs a completed
   * enrolment. Redirects are returned, not followed. Rejects with
   * - {@link CredentialRefusedError} when the collector refuses the credential (e.g. the host
   *   left its fence: `validationType` `attestation`, `check` `geofence`); no request is sent,
   * - `NoLocationError` / `RetriableError` when no credential could be obtained (no fix, collector
   *   unreachable) and no unexpired one is held,
   * - `TypeError` for a request the agent cannot sign as asked (reserved headers, `redirect`).
   *
   * The resource server's answer is returned as is, whatever its status.
   */
  fetch(url: string | URL, init?: RequestInit): Promise<Response> {
    if (this.closed) return Promise.reject(new AgentClosedError());
    return this.fetcher.fetch(url, init);
  }

  /** Real state: TPM reachable, enrolled, outbox depth, last send result. */
  status(): AgentStatusReport {
    let enrolled = false;
    try {
      enrolled = this.state.enrollment() !== null;
    } catch {
      enrolled = false;
    }
    const identity = this.identity.identity;
    return {
      name: this.name,
      keyid: identity?.keyid,
      algorithm: this.o.algorithm,
      tpmReady: identity !== undefined,
      enrolled,
      outbox: {
        durable: this.queue.durable,
        pending: this.queue.pending(),
        deadLettered: this.queue.outbox.deadLettered(),
      },
      delivered: this.loop.delivered,
      rejected: this.loop.rejected,
      lastSend: this.loop.lastSend,
    };
  }

  /** Accumulated timings (TPM vs. everything else) of all deliveries so far. */
  timingStats(): AgentTimings {
    return { ...this.timings };
  }

  /**
   * Stops delivering, closes the connection pool, the outbox and (if the agent opened it) the
   * TPM. Messages still queued stay in the durable outbox for the next start; callers still
   * waiting get {@link AgentClosedError}.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.loop.stop();
    // Unsent send() messages go to the outbox for the next start; their callers learn that.
    this.queue.closeWaiters((id, kept) =>
      kept ? new DeliveryDeferredError([id], new AgentClosedError()) : new AgentClosedError(),
    );
    await this.transport.close().catch(() => undefined);
    await this.resources.close().catch(() => undefined);
    this.credentials.clear();
    this.queue.outbox.close();
    await this.location.close?.();
    await this.identity.close();
  }

  /** The started TPM identity; refused once the agent is closed. */
  private keys(): Promise<AgentKeys> {
    if (this.closed) return Promise.reject(new AgentClosedError());
    return this.identity.start();
  }

  private submit(kind: QueuedMessage['kind'], metrics: QueuedMessage['metrics']): Promise<SendResult> {
    if (this.closed) return Promise.reject(new AgentClosedError());
    let p: Promise<SendResult>;
    try {
      p = this.queue.submit(kind, metrics);
    } catch (err) {
      return Promise.reject(err);
    }
    this.loop.kick();
    return p;
  }

  private sensorInfo() {
    const p = this.location as LocationProvider & { sensor?: () => SensorIdentity | undefined };
    const id = typeof p.sensor === 'function' ? p.sensor() : undefined;
    return id ? sensorInfoFromIdentity(id) : undefined;
  }
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
