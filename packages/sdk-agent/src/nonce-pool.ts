/**
 * The delivery loop's prefetched nonces (SPEC §16 batches): one signed `GET /nonce?…&count=n` fills
 * the pool, each message takes one, so a steady sender pays one nonce round trip per n messages. A
 * nonce is handed out only while enough of its lifetime is left for the message to be accepted; the
 * pool is dropped after the collector refuses one of its nonces (a restarted collector with a memory
 * store forgets them all). With a batch size of 1 it is a plain fetch per message.
 */
import type { Signer } from '@geofence/http-sig';
import type { NonceResponse } from '@geofence/protocol';
import type { NonceRequester } from './nonce-request.js';

/** A nonce is not handed out with less than this left: signing and one POST must fit in it. */
const MIN_REMAINING_MS = 15_000;

/** Nonces fetched in batches of `batch`, handed out one at a time. */
export class NoncePool {
  private pool: NonceResponse[] = [];
  private keyid: string | undefined;
  private filling: Promise<NonceResponse> | undefined;

  constructor(
    private readonly requester: NonceRequester,
    private readonly batch: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A nonce for `keyid`: from the pool while one is fresh enough, else from a new request. */
  async take(keyid: string, signer: Signer): Promise<NonceResponse> {
    if (this.keyid !== keyid) {
      this.clear();
      this.keyid = keyid;
    }
    for (;;) {
      const pooled = this.nextFresh();
      if (pooled) return pooled;
      // Concurrent takers share one request, and each takes its own nonce from what it brought.
      if (this.filling) {
        await this.filling.catch(() => undefined);
        continue;
      }
      this.filling = this.fill(keyid, signer).finally(() => {
        this.filling = undefined;
      });
      const first = await this.filling;
      // A collector whose nonces live shorter than the margin: use what it gave (nobody else took it).
      return this.nextFresh() ?? first;
    }
  }

  /** Forgets every pooled nonce (after the collector refused one). */
  clear(): void {
    this.pool = [];
  }

  /** Nonces waiting in the pool. */
  get size(): number {
    return this.pool.length;
  }

  private nextFresh(): NonceResponse | undefined {
    const now = this.now();
    while (this.pool.length > 0) {
      const n = this.pool.shift() as NonceResponse;
      const left = Date.parse(n.expires_at) - now;
      if (left >= MIN_REMAINING_MS) return { ...n, expires_in: Math.floor(left / 1000) };
    }
    return undefined;
  }

  private async fill(keyid: string, signer: Signer): Promise<NonceResponse> {
    const responses = await this.requester.fetchMany(keyid, signer, this.batch);
    this.pool.push(...responses);
    return responses[0] as NonceResponse;
  }
}
