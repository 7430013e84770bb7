import {
  emptyRejected,
  generateNonce,
  type IssuedNonce,
  type NonceConsumeResult,
  type NonceIssueOptions,
  type NonceStore,
  type NonceStoreOptions,
  type NonceStoreStats,
  type ResolvedNonceOptions,
  resolveNonceOptions,
} from './nonce-store.js';

const FREE = 0;
const OUTSTANDING = 1;
const SPENT = 2;

/**
 * In-process nonce store (default for a single collector process).
 *
 * Data layout, sized for 1 M outstanding nonces in well under 256 MB: one `Map<nonce, slot>` (the
 * only per-nonce heap objects are the 43-character key strings, which are also the values handed to
 * callers) plus struct-of-arrays typed arrays indexed by slot — expiry (Float64), owner, prev/next
 * links of the owner's FIFO (Int32) and state (Uint8). Owners are keyid × pool with a head/tail/count
 * each, so eviction of an owner's oldest nonce and removal on consume are O(1). The Map keeps
 * insertion order, which (one TTL per store) is expiry order, so sweeping expired entries only ever
 * looks at the front. Spent nonces stay as tombstones until they expire so a replay is reported as
 * `reused`.
 * @public
 */
export class MemoryNonceStore implements NonceStore {
  private readonly o: ResolvedNonceOptions;
  private readonly bySlot = new Map<string, number>();
  private cap = 0;
  private expires = new Float64Array(0);
  private owner = new Int32Array(0);
  private prev = new Int32Array(0);
  private next = new Int32Array(0);
  private state = new Uint8Array(0);
  private keys: Array<string | undefined> = [];
  private freeSlots: number[] = [];
  private used = 0;

  private readonly owners = new Map<string, number>();
  private ownerKey: string[] = [];
  private ownerKeyid: string[] = [];
  private ownerHead: number[] = [];
  private ownerTail: number[] = [];
  private ownerCount: number[] = [];
  private freeOwners: number[] = [];

  private readonly counters = { issued: 0, consumed: 0, evicted: 0, rejected: emptyRejected() };

  /** @param options - TTL, cap and clock */
  constructor(options?: NonceStoreOptions) {
    this.o = resolveNonceOptions(options);
  }

  private grow(): void {
    const cap = Math.max(1024, this.cap * 2);
    const e = new Float64Array(cap);
    e.set(this.expires);
    const ow = new Int32Array(cap);
    ow.set(this.owner);
    const p = new Int32Array(cap);
    p.set(this.prev);
    const n = new Int32Array(cap);
    n.set(this.next);
    const s = new Uint8Array(cap);
    s.set(this.state);
    this.expires = e;
    this.owner = ow;
    this.prev = p;
    this.next = n;
    this.state = s;
    this.keys.length = cap;
    for (let i = cap - 1; i >= this.cap; i--) this.freeSlots.push(i);
    this.cap = cap;
  }

  private allocSlot(): number {
    if (this.freeSlots.length === 0) this.grow();
    this.used++;
    return this.freeSlots.pop()!;
  }

  private freeSlot(slot: number): void {
    if (this.state[slot] === SPENT) this.releaseOwner(this.owner[slot]!);
    const k = this.keys[slot];
    if (k !== undefined) this.bySlot.delete(k);
    this.keys[slot] = undefined;
    this.state[slot] = FREE;
    this.freeSlots.push(slot);
    this.used--;
  }

  private ownerOf(keyid: string, pool: string, create: boolean): number {
    const key = pool === '' ? keyid : `${keyid}\u0000${pool}`;
    let idx = this.owners.get(key);
    if (idx === undefined && create) {
      idx = this.freeOwners.pop() ?? this.ownerKey.length;
      this.ownerKey[idx] = key;
      this.ownerKeyid[idx] = keyid;
      this.ownerHead[idx] = -1;
      this.ownerTail[idx] = -1;
      this.ownerCount[idx] = 0;
      this.owners.set(key, idx);
    }
    return idx ?? -1;
  }

  /** Remove an outstanding slot from its owner's FIFO. */
  private unlink(slot: number): void {
    const ow = this.owner[slot]!;
    const p = this.prev[slot]!;
    const n = this.next[slot]!;
    if (p === -1) this.ownerHead[ow] = n;
    else this.next[p] = n;
    if (n === -1) this.ownerTail[ow] = p;
    else this.prev[n] = p;
    this.releaseOwner(ow);
  }

  /** Drop one reference to an owner; free it when none is left. */
  private releaseOwner(ow: number): void {
    this.ownerCount[ow]!--;
    if (this.ownerCount[ow] === 0) {
      this.owners.delete(this.ownerKey[ow]!);
      this.freeOwners.push(ow);
    }
  }

  /** Sweep expired entries from the front of the insertion-ordered map (at most `limit`). */
  private sweep(now: number, limit: number): number {
    let removed = 0;
    for (const slot of this.bySlot.values()) {
      if (removed >= limit || this.expires[slot]! > now) break;
      if (this.state[slot] === OUTSTANDING) this.unlink(slot);
      this.freeSlot(slot);
      removed++;
    }
    return removed;
  }

  async issue(keyid: string, options?: NonceIssueOptions): Promise<IssuedNonce> {
    return this.issueSync(keyid, options);
  }

  /** Synchronous {@link MemoryNonceStore.issue} (same semantics). */
  issueSync(keyid: string, options?: NonceIssueOptions): IssuedNonce {
    const now = this.o.now();
    this.sweep(now, 8);
    const ow = this.ownerOf(keyid, options?.authenticated ? 'a' : '', true);
    // Expired nonces at the head of the owner's FIFO do not count as outstanding.
    for (let h = this.ownerHead[ow]!; h !== -1 && this.expires[h]! <= now; h = this.ownerHead[ow]!) {
      this.unlink(h);
      this.freeSlot(h);
      if (this.ownerCount[ow] === 0) return this.issueSync(keyid, options);
    }
    while (this.ownerCount[ow]! >= this.o.maxOutstanding) {
      const oldest = this.ownerHead[ow]!;
      this.unlink(oldest);
      this.freeSlot(oldest);
      this.counters.evicted++;
      if (this.ownerCount[ow] === 0) return this.issueSync(keyid, options);
    }
    const slot = this.allocSlot();
    const nonce = generateNonce();
    const expiresAt = now + this.o.ttlMs;
    this.expires[slot] = expiresAt;
    this.owner[slot] = ow;
    this.state[slot] = OUTSTANDING;
    this.keys[slot] = nonce;
    const tail = this.ownerTail[ow]!;
    this.prev[slot] = tail;
    this.next[slot] = -1;
    if (tail === -1) this.ownerHead[ow] = slot;
    else this.next[tail] = slot;
    this.ownerTail[ow] = slot;
    this.ownerCount[ow]!++;
    this.bySlot.set(nonce, slot);
    this.counters.issued++;
    return { nonce, expiresAt: new Date(expiresAt), expiresIn: this.o.ttlSeconds };
  }

  async consume(keyid: string, nonce: string): Promise<NonceConsumeResult> {
    return this.consumeSync(keyid, nonce);
  }

  /** Synchronous {@link MemoryNonceStore.consume} (same semantics). */
  consumeSync(keyid: string, nonce: string): NonceConsumeResult {
    const r = this.classifyAndSpend(keyid, nonce);
    if (r === 'ok') this.counters.consumed++;
    else this.counters.rejected[r]++;
    return r;
  }

  private classifyAndSpend(keyid: string, nonce: string): NonceConsumeResult {
    if (typeof nonce !== 'string') return 'unknown';
    const slot = this.bySlot.get(nonce);
    if (slot === undefined) return 'unknown';
    if (this.ownerKeyid[this.owner[slot]!] !== keyid) return 'wrong_agent';
    if (this.state[slot] === SPENT) return 'reused';
    if (this.expires[slot]! <= this.o.now()) {
      this.unlink(slot);
      this.freeSlot(slot);
      return 'expired';
    }
    this.unlink(slot);
    // The tombstone keeps its keyid (for wrong_agent answers) through a separate owner entry that
    // counts references and is never evicted or counted as outstanding.
    this.owner[slot] = this.tombstoneOwner(keyid);
    this.state[slot] = SPENT;
    return 'ok';
  }

  /** Owner index used only by tombstones (never counted, never evicted). */
  private tombstoneOwner(keyid: string): number {
    const key = `${keyid}\u0000spent`;
    let idx = this.owners.get(key);
    if (idx === undefined) {
      idx = this.freeOwners.pop() ?? this.ownerKey.length;
      this.ownerKey[idx] = key;
      this.ownerKeyid[idx] = keyid;
      this.ownerHead[idx] = -1;
      this.ownerTail[idx] = -1;
      this.ownerCount[idx] = 0;
      this.owners.set(key, idx);
    }
    this.ownerCount[idx]!++;
    return idx;
  }

  async stats(options?: { perAgent?: boolean }): Promise<NonceStoreStats> {
    const now = this.o.now();
    this.sweep(now, Number.POSITIVE_INFINITY);
    let outstanding = 0;
    const per = new Map<string, number>();
    for (const [key, ow] of this.owners) {
      if (key.endsWith('\u0000spent')) continue;
      const n = this.ownerCount[ow]!;
      outstanding += n;
      const k = this.ownerKeyid[ow]!;
      per.set(k, (per.get(k) ?? 0) + n);
    }
    const out: NonceStoreStats = {
      outstanding,
      agents: per.size,
      issued: this.counters.issued,
      consumed: this.counters.consumed,
      evicted: this.counters.evicted,
      rejected: { ...this.counters.rejected },
    };
    if (options?.perAgent) out.perAgent = Object.fromEntries(per);
    return out;
  }

  async cleanup(): Promise<number> {
    return this.sweep(this.o.now(), Number.POSITIVE_INFINITY);
  }

  /** Number of slots in use (outstanding + tombstones + expired not yet swept). */
  get size(): number {
    return this.used;
  }

  async close(): Promise<void> {
    this.bySlot.clear();
  }
}
