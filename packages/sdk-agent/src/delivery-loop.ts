/**
 * The delivery loop: drains the {@link DeliveryQueue} in order through the {@link Deliverer},
 * coalesces `send()` calls, retries retriable failures with backoff, and answers each caller.
 */
import type { AgentStatusReport } from './agent.js';
import type { Deliverer } from './deliverer.js';
import type { DeliveryQueue } from './delivery-queue.js';
import { DeliveryDeferredError, DeliveryError, DeliveryUncertainError, GeofenceRejection } from './errors.js';
import { NoLocationError } from './location/types.js';
import type { AgentLogger } from './options.js';
import type { QueuedMessage } from './outbox.js';
import { backoffDelay, type RetryPolicy } from './retry.js';
import { RetriableError } from './transport.js';

/** Settings of the loop. */
export interface DeliveryLoopOptions {
  retry: RetryPolicy;
  coalesceMs: number;
  maxBatchSize: number;
  logger: AgentLogger;
}

/** Runs one delivery at a time, oldest first, so the collector sees messages in production order. */
export class DeliveryLoop {
  /** Metric-set messages accepted since start. */
  delivered = 0;
  /** Messages rejected with a 4xx since start. */
  rejected = 0;
  /** Outcome of the last attempt. */
  lastSend: AgentStatusReport['lastSend'];
  private pumping: Promise<void> | undefined;
  private wakeSleep: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly queue: DeliveryQueue,
    private readonly deliverer: Deliverer,
    private readonly o: DeliveryLoopOptions,
  ) {}

  /** The running pass over the queue, if any (settles when it stops). */
  get running(): Promise<void> | undefined {
    return this.pumping;
  }

  /** Starts a pass over the queue unless one runs (and cuts a backoff or coalescing wait short). */
  kick(): void {
    if (this.closed) return;
    this.wakeSleep?.();
    this.pumping ??= this.pump().finally(() => {
      this.pumping = undefined;
      if (!this.closed && this.queue.pending() > 0 && this.queue.waitingOrDurable()) this.kick();
    });
  }

  /** Stops after the current attempt; resolves when the loop has stopped. */
  async stop(): Promise<void> {
    this.closed = true;
    this.wakeSleep?.();
    await this.pumping?.catch(() => undefined);
  }

  private async pump(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      const { fromOutbox, messages: pending } = this.queue.peek(this.o.maxBatchSize);
      const first = pending[0];
      if (!first) return;
      // Keep the group of a request whose answer was lost together, so it can be resent as is.
      const pinned = this.deliverer.pinnedGroup(pending);
      const group = pinned ?? this.group(pending);
      if (!pinned && this.o.coalesceMs > 0 && first.kind === 'single' && group.length < this.o.maxBatchSize) {
        const wait = first.enqueuedAt + this.o.coalesceMs - Date.now();
        if (wait > 0 && failures === 0) {
          await this.sleep(wait);
          continue;
        }
      }
      const ids = group.map((m) => m.id);
      try {
        const recordId = await this.deliverer.deliver(group);
        this.deliverer.saveResend();
        failures = 0;
        this.queue.forget(fromOutbox, ids);
        this.delivered += ids.length;
        this.lastSend = { at: new Date().toISOString(), ok: true, recordId };
        for (const id of ids) this.queue.settle(id, (w) => w.resolve({ recordId }));
      } catch (err) {
        if (!(err instanceof RetriableError)) this.deliverer.saveResend();
        if (err instanceof DeliveryUncertainError) {
          // Never sent again (that could store it twice); kept in the dead-letter table for review.
          failures = 0;
          if (fromOutbox) this.queue.outbox.deadLetter(ids, err.message);
          else this.queue.forget(false, ids);
          this.lastSend = { at: new Date().toISOString(), ok: false, error: err.message, code: err.code };
          this.o.logger.warn({ messages: ids.length }, err.message);
          for (const id of ids) this.queue.settle(id, (w) => w.reject(err));
          continue;
        }
        if (err instanceof GeofenceRejection) {
          failures = 0;
          if (fromOutbox)
            this.queue.outbox.deadLetter(ids, `${err.status} ${err.validationType}: ${err.error}`);
          else this.queue.forget(false, ids);
          this.rejected += ids.length;
          this.lastSend = {
            at: new Date().toISOString(),
            ok: false,
            error: err.message,
            code: err.validationType,
          };
          this.o.logger.warn(
            {
              status: err.status,
              validationType: err.validationType,
              rejectedBy: err.rejectedBy,
              messages: ids.length,
            },
            'message rejected',
          );
          for (const id of ids) this.queue.settle(id, (w) => w.reject(err));
          continue;
        }
        failures++;
        if (fromOutbox) this.queue.outbox.markAttempt(ids, (err as Error).message ?? String(err));
        this.lastSend = {
          at: new Date().toISOString(),
          ok: false,
          error: (err as Error).message,
          code: (err as { code?: string }).code ?? 'unavailable',
        };
        this.o.logger.warn(
          { err: (err as Error).message, failures, messages: ids.length },
          'delivery failed; will retry',
        );
        this.queue.countFailure(ids);
        // The gateway is struggling: from now on these messages must survive a restart.
        const remap = fromOutbox ? undefined : this.queue.persistFastLane();
        this.deliverer.saveResend();
        for (const [id, waiter] of this.queue.exhausted(this.o.retry.attempts)) {
          if (this.queue.durable && (fromOutbox || remap?.has(id))) {
            waiter.reject(new DeliveryDeferredError([id], err));
          } else {
            this.queue.drop(id);
            waiter.reject(finalError(err, waiter.failures));
          }
        }
        // In memory, nobody waits for what is left: stop instead of retrying forever.
        if (!this.queue.waitingOrDurable()) return;
        const retryAfter = err instanceof RetriableError ? err.retryAfterMs : undefined;
        await this.sleep(backoffDelay(this.o.retry, failures, retryAfter));
      }
    }
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
