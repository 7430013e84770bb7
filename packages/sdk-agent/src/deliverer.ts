/**
 * One delivery attempt of a group of queued messages: fresh location, fresh nonce, sign, `POST
 * /metrics` — or, after an attempt whose answer was lost, the very same signed request again.
 */
import { DeliveryUncertainError, GeofenceRejection } from './errors.js';
import type { AgentKeys, AgentTimings } from './identity.js';
import type { LocationObservation, LocationProvider } from './location/types.js';
import { buildMetricsRequest, type SignedMetricsRequest } from './message.js';
import type { NoncePool } from './nonce-pool.js';
import type { AgentLogger } from './options.js';
import type { MessageQueue, QueuedMessage } from './outbox.js';
import { RetriableError, type Transport } from './transport.js';

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

/** What a {@link Deliverer} needs from the agent. */
export interface DelivererOptions {
  agentName: string;
  clientType: string;
  validitySeconds: number;
  origin: string;
  keys: () => Promise<AgentKeys>;
  transport: Transport;
  /** Where each attempt takes its nonce (prefetched in batches when configured). */
  nonces: NoncePool;
  location: LocationProvider;
  /** The queue whose saved resend survives restarts. */
  outbox: MessageQueue;
  timings: AgentTimings;
  logger: AgentLogger;
}

/**
 * Delivers groups of messages and keeps the signed request of a group whose answer was lost, so
 * that the next attempt (also by the next process) sends the same bytes and the collector's
 * single-use nonce stores it at most once.
 */
export class Deliverer {
  /** The signed request of the head group after a failed POST, sent again as is (see deliver). */
  private resend: PendingResend | undefined;
  /** Whether the outbox holds a saved resend (so clearing it needs a write). */
  private resendSaved = false;

  constructor(private readonly o: DelivererOptions) {
    const left = o.outbox.loadResend();
    if (left) {
      this.resendSaved = true;
      this.resend = {
        ids: left.ids,
        req: { payload: undefined, body: left.body, headers: left.headers },
        validUntil: left.validUntil,
        resent: false,
      };
    }
  }

  /**
   * The group a pending resend pins (its messages, in order) when all of them are still at the head
   * of the queue; otherwise the resend is dropped and `undefined` returned.
   */
  pinnedGroup(pending: QueuedMessage[]): QueuedMessage[] | undefined {
    if (!this.resend) return undefined;
    const set = new Set(this.resend.ids);
    const kept = pending.filter((m) => set.has(m.id));
    if (kept.length === this.resend.ids.length) return kept;
    this.resend = undefined;
    return undefined;
  }

  /** A message moved from the fast lane to the outbox: a pending resend follows it. */
  remap(from: number, to: number): void {
    if (this.resend) this.resend.ids = this.resend.ids.map((x) => (x === from ? to : x));
  }

  /**
   * Mirrors the pending resend into the durable outbox, so a restarted agent sends the same bytes
   * (not a new copy with a fresh nonce). Only for messages that are in the outbox (positive ids).
   */
  saveResend(): void {
    const outbox = this.o.outbox;
    if (!outbox.durable) return;
    const r = this.resend;
    if (!r || !r.ids.every((id) => id > 0)) {
      // Only touch the disk when there is something to forget: a healthy send stays fsync-free.
      if (this.resendSaved) outbox.saveResend(undefined);
      this.resendSaved = false;
      return;
    }
    outbox.saveResend({ ids: r.ids, body: r.req.body, headers: r.req.headers, validUntil: r.validUntil });
    this.resendSaved = true;
  }

  /** One attempt: fresh location, fresh nonce, sign, POST. Resolves with the record id. */
  async deliver(group: QueuedMessage[]): Promise<string> {
    const { identity, signer } = await this.o.keys();
    const { transport, timings } = this.o;
    const t0 = performance.now();
    const ids = group.map((m) => m.id);
    let signed = this.resend && sameIds(this.resend.ids, ids) ? this.resend : undefined;
    // Resend only while the collector will still take it; later, a fresh nonce is the only way.
    if (signed && signed.validUntil - Date.now() < RESEND_MARGIN_MS) {
      this.o.logger.warn(
        { messages: ids.length },
        'a message whose answer was lost expired before it could be resent; re-signing with a fresh nonce',
      );
      signed = undefined;
    }
    this.resend = undefined;
    if (!signed) {
      const observation: LocationObservation = await this.o.location.current();
      const first = group[0]!;
      const metrics =
        first.kind === 'batch'
          ? { batch: first.metrics as Array<Record<string, unknown>> }
          : group.length === 1
            ? (first.metrics as Record<string, unknown>)
            : { batch: group.map((m) => m.metrics as Record<string, unknown>) };
      const nonce = await this.o.nonces.take(identity.keyid, signer);
      const now = new Date();
      const req = await buildMetricsRequest({
        agentName: this.o.agentName,
        keyid: identity.keyid,
        signer,
        nonce,
        observation,
        metrics,
        clientType: this.o.clientType,
        path: transport.path('/metrics'),
        origin: this.o.origin,
        now,
        validitySeconds: this.o.validitySeconds,
      });
      const validUntil = Math.min(Date.parse(nonce.expires_at), req.expires * 1000);
      signed = { ids, req, validUntil, resent: false };
    } else {
      signed = { ...signed, resent: true };
    }
    try {
      return await transport.postMetrics(transport.path('/metrics'), signed.req.headers, signed.req.body);
    } catch (err) {
      // A refused nonce may mean the collector forgot what it issued (a restart): drop the rest.
      if (err instanceof GeofenceRejection && err.validationType === 'nonce_validation')
        this.o.nonces.clear();
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
      timings.deliveries++;
      timings.totalMs += performance.now() - t0;
    }
  }
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
