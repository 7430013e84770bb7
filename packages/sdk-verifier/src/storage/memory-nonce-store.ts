import { ExpiringSet } from './expiring-set.js';
import {
  type AcceptedPosition,
  decodePosition,
  encodePosition,
  generateNonce,
  type IssuedNonce,
  type NonceConsumeResult,
  NonceCounters,
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
const NONCE_BYTES = 32;
const CANONICAL_NONCE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/**
 * In-process nonce store (default for a single collector process).
 *
 * Data layout, designed for 1 M outstanding nonces in well under 256 MB: no per-nonce JavaScript
 * objects at all. Slots live in struct-of-arrays typed arrays — the 32 raw nonce bytes, expiry
 * (Float64), owner, the owner FIFO links and the global issue-order links (Int32), state (Uint8):
 * 61 bytes per slot. Lookup by nonce goes through an open-addressing hash table (linear probing,
 * backward-shift deletion, load ≤ 0.5) of slot numbers keyed by the first bytes of the nonce —
 * which come from the CSPRNG, so callers cannot steer the table layout. Owners (keyid × pool) keep a
 * FIFO with head/tail/count, so evicting an owner's oldest nonce and removing a consumed one are
 * O(1). The global issue-order list is expiry order (one TTL per store), so sweeping expired entries
 * only looks at its head. Spent nonces stay as tombstones until they expire so a replay is reported
 * as `reused`.
 * @public
 */
export class MemoryNonceStore implements NonceStore {
  private readonly o: ResolvedNonceOptions;
  private cap = 0;
  private keys = new Uint8Array(0);
  private expires = new Float64Array(0);
  private owner = new Int32Array(0);
  private prev = new Int32Array(0);
  private next = new Int32Array(0);
  private gprev = new Int32Array(0);
  private gnext = new Int32Array(0);
  private state = new Uint8Array(0);
  private freeHead = -1;
  private used = 0;
  private ghead = -1;
  private gtail = -1;

  private table = new Int32Array(0);
  private mask = 0;

  private readonly claims = new ExpiringSet();
  /** keyid → encoded last accepted position and when it lapses (ms). */
  private readonly positions = new Map<string, { value: string; until: number }>();
  private readonly owners = new Map<string, number>();
  private ownerKey: string[] = [];
  private ownerKeyid: string[] = [];
  private ownerHead: number[] = [];
  private ownerTail: number[] = [];
  private ownerCount: number[] = [];
  private freeOwners: number[] = [];

  private readonly scratch = Buffer.alloc(NONCE_BYTES);
  private readonly counters = new NonceCounters();

  /** @param options - TTL, cap and clock */
  constructor(options?: NonceStoreOptions) {
    this.o = resolveNonceOptions(options);
    this.rehash(1024);
  }

  // ---- slots -----------------------------------------------------------------------------------

  private grow(): void {
    const cap = Math.max(1024, this.cap * 2);
    const copy = <T extends Float64Array | Int32Array | Uint8Array>(
      old: T,
      make: (n: number) => T,
      per = 1,
    ): T => {
      const a = make(cap * per);
      a.set(old);
      return a;
    };
    this.keys = copy(this.keys, (n) => new Uint8Array(n), NONCE_BYTES);
    this.expires = copy(this.expires, (n) => new Float64Array(n));
    this.owner = copy(this.owner, (n) => new Int32Array(n));
    this.prev = copy(this.prev, (n) => new Int32Array(n));
    this.next = copy(this.next, (n) => new Int32Array(n));
    this.gprev = copy(this.gprev, (n) => new Int32Array(n));
    this.gnext = copy(this.gnext, (n) => new Int32Array(n));
    this.state = copy(this.state, (n) => new Uint8Array(n));
    // Thread the new slots onto the free list (through `next`).
    for (let i = cap - 1; i >= this.cap; i--) {
      this.next[i] = this.freeHead;
      this.freeHead = i;
    }
    this.cap = cap;
  }

  private allocSlot(): number {
    if (this.freeHead === -1) this.grow();
    const s = this.freeHead;
    this.freeHead = this.next[s]!;
    this.used++;
    return s;
  }

  /** Remove a slot from the table, the global list and (for tombstones) its owner; free it. */
  private freeSlot(slot: number): void {
    if (this.state[slot] === SPENT) this.releaseOwner(this.owner[slot]!);
    this.tableDelete(slot);
    const p = this.gprev[slot]!;
    const n = this.gnext[slot]!;
    if (p === -1) this.ghead = n;
    else this.gnext[p] = n;
    if (n === -1) this.gtail = p;
    else this.gprev[n] = p;
    this.keys.fill(0, slot * NONCE_BYTES, (slot + 1) * NONCE_BYTES);
    this.state[slot] = FREE;
    this.next[slot] = this.freeHead;
    this.freeHead = slot;
    this.used--;
  }

  // ---- hash table (linear probing, backward-shift deletion) ---------------------------------------

  private hashAt(bytes: Uint8Array, offset: number): number {
    // The nonce bytes are uniformly random: the first four are a perfect hash.
    return (
      (bytes[offset]! |
        (bytes[offset + 1]! << 8) |
        (bytes[offset + 2]! << 16) |
        (bytes[offset + 3]! << 24)) >>>
      0
    );
  }

  private rehash(size: number): void {
    const old = this.table;
    this.table = new Int32Array(size).fill(-1);
    this.mask = size - 1;
    for (let i = 0; i < old.length; i++) {
      const s = old[i]!;
      if (s !== -1) this.tableInsert(s);
    }
  }

  private tableInsert(slot: number): void {
    let i = this.hashAt(this.keys, slot * NONCE_BYTES) & this.mask;
    while (this.table[i] !== -1) i = (i + 1) & this.mask;
    this.table[i] = slot;
  }

  private sameKey(slot: number, bytes: Uint8Array): boolean {
    const base = slot * NONCE_BYTES;
    for (let j = 0; j < NONCE_BYTES; j++) if (this.keys[base + j] !== bytes[j]) return false;
    return true;
  }

  private tableFind(bytes: Uint8Array): number {
    let i = this.hashAt(bytes, 0) & this.mask;
    for (;;) {
      const s = this.table[i]!;
      if (s === -1) return -1;
      if (this.sameKey(s, bytes)) return s;
      i = (i + 1) & this.mask;
    }
  }

  private tableDelete(slot: number): void {
    let i = this.hashAt(this.keys, slot * NONCE_BYTES) & this.mask;
    while (this.table[i] !== slot) {
      if (this.table[i] === -1) return;
      i = (i + 1) & this.mask;
    }
    // Backward-shift: move later members of the probe run into the hole so lookups stay correct.
    let hole = i;
    let j = (i + 1) & this.mask;
    for (;;) {
      const s = this.table[j]!;
      if (s === -1) break;
      const home = this.hashAt(this.keys, s * NONCE_BYTES) & this.mask;
      // s may move to the hole when its home is not in (hole, j] (cyclically).
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        this.table[hole] = s;
        hole = j;
      }
      j = (j + 1) & this.mask;
    }
    this.table[hole] = -1;
  }

  // ---- owners ------------------------------------------------------------------------------------

  private ownerOf(key: string, keyid: string): number {
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
    return idx;
  }

  /** Drop one reference to an owner; free it when none is left. */
  private releaseOwner(ow: number): void {
    this.ownerCount[ow]!--;
    if (this.ownerCount[ow] === 0) {
      this.owners.delete(this.ownerKey[ow]!);
      this.freeOwners.push(ow);
    }
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

  /** Remove any slot (outstanding or tombstone). */
  private drop(slot: number): void {
    if (this.state[slot] === OUTSTANDING) {
      this.unlink(slot);
      this.state[slot] = FREE;
    }
    this.freeSlot(slot);
  }

  /** Sweep expired entries from the head of the issue-order list (at most `limit`). */
  private sweep(now: number, limit: number): number {
    let removed = 0;
    while (removed < limit && this.ghead !== -1 && this.expires[this.ghead]! <= now) {
      this.drop(this.ghead);
      removed++;
    }
    return removed;
  }

  // ---- API ---------------------------------------------------------------------------------------

  /** {@inheritDoc NonceStore.issue} */
  async issue(keyid: string, options?: NonceIssueOptions): Promise<IssuedNonce> {
    return this.issueSync(keyid, options);
  }

  /** Synchronous {@link MemoryNonceStore.issue} (same semantics). */
  issueSync(keyid: string, options?: NonceIssueOptions): IssuedNonce {
    // NUL separates keyid and pool in owner keys; refusing it keeps owners of different keyids apart.
    if (typeof keyid !== 'string' || keyid === '' || keyid.includes('\u0000')) {
      throw new TypeError('keyid must be a non-empty string without NUL');
    }
    const now = this.o.now();
    this.sweep(now, 8);
    const key = options?.authenticated ? `${keyid}\u0000a` : keyid;
    let ow = this.ownerOf(key, keyid);
    // Expired nonces at the head of the owner's FIFO do not count as outstanding.
    while (this.ownerHead[ow] !== -1 && this.expires[this.ownerHead[ow]!]! <= now) {
      const last = this.ownerCount[ow] === 1;
      this.drop(this.ownerHead[ow]!);
      if (last) ow = this.ownerOf(key, keyid);
    }
    while (this.ownerCount[ow]! >= this.o.maxOutstanding) {
      const last = this.ownerCount[ow] === 1;
      this.drop(this.ownerHead[ow]!);
      this.counters.evicted++;
      if (last) ow = this.ownerOf(key, keyid);
    }
    if ((this.used + 1) * 2 > this.table.length) this.rehash(this.table.length * 2);
    const slot = this.allocSlot();
    const nonce = generateNonce();
    this.scratch.write(nonce, 'base64url');
    this.keys.set(this.scratch, slot * NONCE_BYTES);
    const expiresAt = now + this.o.ttlMs;
    this.expires[slot] = expiresAt;
    this.owner[slot] = ow;
    this.state[slot] = OUTSTANDING;
    const tail = this.ownerTail[ow]!;
    this.prev[slot] = tail;
    this.next[slot] = -1;
    if (tail === -1) this.ownerHead[ow] = slot;
    else this.next[tail] = slot;
    this.ownerTail[ow] = slot;
    this.ownerCount[ow]!++;
    this.gprev[slot] = this.gtail;
    this.gnext[slot] = -1;
    if (this.gtail === -1) this.ghead = slot;
    else this.gnext[this.gtail] = slot;
    this.gtail = slot;
    this.tableInsert(slot);
    this.counters.issued++;
    return { nonce, expiresAt: new Date(expiresAt), expiresIn: this.o.ttlSeconds };
  }

  /** {@inheritDoc NonceStore.consume} */
  async consume(keyid: string, nonce: string): Promise<NonceConsumeResult> {
    return this.consumeSync(keyid, nonce);
  }

  /** Synchronous {@link MemoryNonceStore.consume} (same semantics). */
  consumeSync(keyid: string, nonce: string): NonceConsumeResult {
    const r = this.classifyAndSpend(keyid, nonce);
    this.counters.count(r);
    return r;
  }

  private classifyAndSpend(keyid: string, nonce: string): NonceConsumeResult {
    if (typeof nonce !== 'string' || !CANONICAL_NONCE.test(nonce)) return 'unknown';
    this.scratch.write(nonce, 'base64url');
    const slot = this.tableFind(this.scratch);
    if (slot === -1) return 'unknown';
    if (this.ownerKeyid[this.owner[slot]!] !== keyid) return 'wrong_agent';
    if (this.state[slot] === SPENT) return 'reused';
    if (this.expires[slot]! <= this.o.now()) {
      this.drop(slot);
      return 'expired';
    }
    this.unlink(slot);
    // The tombstone keeps its keyid (for wrong_agent answers) through a separate owner entry that
    // counts references and is never evicted or counted as outstanding.
    this.owner[slot] = this.ownerOf(`${keyid}\u0000spent`, keyid);
    this.ownerCount[this.owner[slot]!]!++;
    this.state[slot] = SPENT;
    return 'ok';
  }

  /** {@inheritDoc NonceStore.stats} */
  async stats(options?: { perAgent?: boolean }): Promise<NonceStoreStats> {
    this.sweep(this.o.now(), Number.POSITIVE_INFINITY);
    const per = new Map<string, number>();
    for (const [key, ow] of this.owners) {
      if (key.endsWith('\u0000spent')) continue;
      const n = this.ownerCount[ow]!;
      const k = this.ownerKeyid[ow]!;
      per.set(k, (per.get(k) ?? 0) + n);
    }
    return this.counters.stats(per, options?.perAgent);
  }

  /** {@inheritDoc NonceStore.cleanup} */
  async cleanup(): Promise<number> {
    const now = this.o.now();
    let lapsed = 0;
    for (const [keyid, p] of this.positions) {
      if (p.until <= now) {
        this.positions.delete(keyid);
        lapsed++;
      }
    }
    return this.sweep(now, Number.POSITIVE_INFINITY) + this.claims.sweep(now) + lapsed;
  }

  /** {@inheritDoc NonceStore.lastPosition} */
  async lastPosition(keyid: string): Promise<AcceptedPosition | undefined> {
    const p = this.positions.get(keyid);
    return p && p.until > this.o.now() ? decodePosition(p.value) : undefined;
  }

  /** {@inheritDoc NonceStore.replacePosition} */
  async replacePosition(
    keyid: string,
    expected: AcceptedPosition | undefined,
    next: AcceptedPosition,
    until: Date,
  ): Promise<boolean> {
    // One synchronous step: nothing else runs in this process between the compare and the set.
    const p = this.positions.get(keyid);
    const current = p && p.until > this.o.now() ? p.value : undefined;
    if (current !== (expected === undefined ? undefined : encodePosition(expected))) return false;
    this.positions.set(keyid, { value: encodePosition(next), until: until.getTime() });
    return true;
  }

  /** {@inheritDoc NonceStore.claimRequest} */
  async claimRequest(keyid: string, requestId: string, until: Date): Promise<boolean> {
    return this.claims.claim(`${keyid} ${requestId}`, until.getTime(), this.o.now());
  }

  /** Number of slots in use (outstanding + tombstones + expired not yet swept). */
  get size(): number {
    return this.used;
  }

  /** {@inheritDoc NonceStore.close} */
  async close(): Promise<void> {
    this.keys.fill(0);
  }
}
