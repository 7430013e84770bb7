/**
 * What waits for delivery, and who waits for it: the message queue (durable outbox or memory), the
 * fast lane of `send()` messages that have not needed the outbox yet, and the callers' promises.
 */
import { OutboxFullError } from './errors.js';
import type { AgentLogger } from './options.js';
import type { MessageQueue, QueuedMessage } from './outbox.js';

/** Result of a successful delivery. */
export interface SendResult {
  /** Record id the collector assigned (shared by all metric sets of one batch). */
  recordId: string;
}

/** A caller of `send()`/`sendBatch()` waiting for its message's outcome. */
export interface Waiter {
  resolve(r: SendResult): void;
  reject(e: unknown): void;
  /** Failed delivery attempts since this caller asked. */
  failures: number;
}

/** The oldest messages and where they are kept. */
export interface PendingMessages {
  fromOutbox: boolean;
  messages: QueuedMessage[];
}

/** The messages waiting for delivery, in order, and their waiting callers. */
export class DeliveryQueue {
  private readonly waiters = new Map<number, Waiter>();
  /**
   * `send()` messages while the durable outbox is empty: delivered straight from memory, and written
   * to the outbox only when an attempt fails (or the agent closes). A caller that has not been
   * answered was not promised anything, so a crash here loses nothing acknowledged — and a healthy
   * send pays no fsync. Ids are negative so they never collide with outbox ids.
   */
  private fast: QueuedMessage[] = [];
  private fastId = 0;

  constructor(
    /** The outbox (or in-memory queue) behind the fast lane. */
    readonly outbox: MessageQueue,
    private readonly maxMessages: number,
    private readonly logger: AgentLogger,
    /** Hears each message that moves from the fast lane to the outbox (old id → new id). */
    private readonly moved: (from: number, to: number) => void,
  ) {}

  /** Whether messages survive a restart. */
  get durable(): boolean {
    return this.outbox.durable;
  }

  /** Messages waiting (fast lane and queue). */
  pending(): number {
    return this.fast.length + this.outbox.size();
  }

  /** Whether the delivery loop has a reason to keep going: a durable queue, or a caller waiting. */
  waitingOrDurable(): boolean {
    return this.outbox.durable || this.waiters.size > 0;
  }

  /** The oldest `limit` messages: the queue's while it holds any (they are older), else the fast lane's. */
  peek(limit: number): PendingMessages {
    const fromOutbox = this.outbox.size() > 0;
    return {
      fromOutbox,
      messages: fromOutbox ? this.outbox.peek(limit) : this.fast.slice(0, limit),
    };
  }

  /**
   * Takes a message for a caller who waits for the outcome: the fast lane while the durable
   * outbox is empty, else the queue (behind what is there). Throws {@link OutboxFullError}.
   */
  submit(kind: QueuedMessage['kind'], metrics: QueuedMessage['metrics']): Promise<SendResult> {
    let id: number;
    if (this.outbox.durable && this.outbox.size() === 0) {
      if (this.fast.length >= this.maxMessages) throw this.full();
      id = --this.fastId;
      this.fast.push({ id, kind, metrics, enqueuedAt: Date.now(), attempts: 0 });
    } else {
      id = this.add(kind, metrics);
    }
    return new Promise<SendResult>((resolve, reject) => {
      this.waiters.set(id, { resolve, reject, failures: 0 });
    });
  }

  /** Adds a message nobody waits for to the queue (behind the fast lane, kept in order). */
  enqueue(kind: QueuedMessage['kind'], metrics: QueuedMessage['metrics']): number {
    this.persistFastLane();
    return this.add(kind, metrics);
  }

  /**
   * Moves every fast-lane message into the durable outbox, in order, and re-keys its waiter.
   * Returns the new ids. When the outbox is full the remaining messages stay in memory.
   */
  persistFastLane(): Set<number> {
    const kept = new Set<number>();
    while (this.fast.length > 0) {
      const m = this.fast[0]!;
      let id: number;
      try {
        id = this.outbox.add(m.kind, m.metrics);
      } catch (err) {
        if (err instanceof OutboxFullError) this.full();
        break;
      }
      this.fast.shift();
      kept.add(id);
      this.moved(m.id, id);
      const w = this.waiters.get(m.id);
      if (w) {
        this.waiters.delete(m.id);
        this.waiters.set(id, w);
      }
    }
    return kept;
  }

  /** Removes delivered (or given-up) messages. */
  forget(fromOutbox: boolean, ids: number[]): void {
    if (fromOutbox) {
      this.outbox.remove(ids);
      return;
    }
    const set = new Set(ids);
    this.fast = this.fast.filter((m) => !set.has(m.id));
  }

  /** Answers the caller waiting for message `id`, if any. */
  settle(id: number, f: (w: Waiter) => void): void {
    const w = this.waiters.get(id);
    if (!w) return;
    this.waiters.delete(id);
    f(w);
  }

  /** Counts a failed attempt for the callers of these messages. */
  countFailure(ids: number[]): void {
    for (const id of ids) {
      const w = this.waiters.get(id);
      if (w) w.failures++;
    }
  }

  /** Takes out the callers whose messages failed `attempts` times (their messages stay queued). */
  exhausted(attempts: number): Array<[number, Waiter]> {
    const out: Array<[number, Waiter]> = [];
    for (const [id, waiter] of this.waiters) {
      if (waiter.failures < attempts) continue;
      out.push([id, waiter]);
    }
    for (const [id] of out) this.waiters.delete(id);
    return out;
  }

  /** Drops one message from wherever it waits (its caller gave up on it). */
  drop(id: number): void {
    this.outbox.remove([id]);
    this.fast = this.fast.filter((m) => m.id !== id);
  }

  /**
   * On close: fast-lane messages go to the outbox for the next start, and every waiting caller
   * gets `error(id, kept)`, `kept` telling whether its message is in the outbox.
   */
  closeWaiters(error: (id: number, kept: boolean) => Error): void {
    const kept = this.persistFastLane();
    for (const [id, w] of this.waiters) w.reject(error(id, kept.has(id)));
    this.waiters.clear();
  }

  private add(kind: QueuedMessage['kind'], metrics: QueuedMessage['metrics']): number {
    try {
      return this.outbox.add(kind, metrics);
    } catch (err) {
      if (err instanceof OutboxFullError) {
        this.logger.error(
          { limit: err.limit, pending: this.outbox.size() },
          'outbox full: dropping the new message',
        );
      }
      throw err;
    }
  }

  private full(): OutboxFullError {
    const err = new OutboxFullError(this.maxMessages);
    this.logger.error({ limit: err.limit, pending: this.pending() }, 'outbox full: dropping the new message');
    return err;
  }
}
