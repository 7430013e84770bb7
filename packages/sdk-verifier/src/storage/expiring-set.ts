/**
 * A set of strings whose members expire: the single-use marks of signed requests in the memory
 * nonce store. Members are kept in insertion order, which is close to expiry order (every mark lasts
 * about one acceptance window), so a sweep stops at the first member that has not expired.
 */
export class ExpiringSet {
  private readonly until = new Map<string, number>();
  private sinceSweep = 0;

  /** Adds `key` until `untilMs`; false when it is already present and unexpired. */
  claim(key: string, untilMs: number, nowMs: number): boolean {
    const current = this.until.get(key);
    if (current !== undefined && current > nowMs) return false;
    // Re-inserted at the end, so the map stays in (roughly) expiry order.
    this.until.delete(key);
    this.until.set(key, untilMs);
    if (++this.sinceSweep >= 1024) this.sweep(nowMs);
    return true;
  }

  /** Drops expired members (from the oldest on); returns how many. */
  sweep(nowMs: number): number {
    this.sinceSweep = 0;
    let removed = 0;
    for (const [key, until] of this.until) {
      if (until > nowMs) break;
      this.until.delete(key);
      removed++;
    }
    return removed;
  }

  /** Number of members, expired ones not yet swept included. */
  get size(): number {
    return this.until.size;
  }
}
