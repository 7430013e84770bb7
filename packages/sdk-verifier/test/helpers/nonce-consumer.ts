/**
 * Child-process script for the cross-process nonce tests:
 *   node --import tsx nonce-consumer.ts <sqlite|redis> <path|port> <keyid> <nonce> <count> [prefix] [position]
 * Opens its own store, waits for "go" on stdin, fires <count> consumes (or, in mode `position`,
 * compare-and-sets of the keyid's last position) at once, prints the tally.
 */
import { Redis } from 'ioredis';
import type { NonceStore } from '../../src/storage/nonce-store.js';
import { RedisNonceStore } from '../../src/storage/redis-nonce-store.js';
import { SqliteNonceStore } from '../../src/storage/sqlite-nonce-store.js';

const [kind, where, keyid, nonce, countText, prefix, mode] = process.argv.slice(2);
/** The position both racing processes expect to replace (the parent stores it first). */
const EXPECTED = { lat: 1, lon: 2, accuracy: 3, at: Date.UTC(2026, 10, 28, 21, 0, 0) };
const count = Number(countText);
let store: NonceStore;
if (kind === 'sqlite') {
  store = await SqliteNonceStore.open({ path: where! });
} else {
  store = new RedisNonceStore({
    client: new Redis({ port: Number(where), host: '127.0.0.1' }),
    ownsClient: true,
    prefix: prefix!,
  });
}
process.stdout.write('ready\n');
await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
// Mode `position`: race <count> compare-and-sets of the last position from the shared EXPECTED one.
const results =
  mode === 'position'
    ? (
        await Promise.all(
          Array.from({ length: count }, (_, i) =>
            store.replacePosition(
              keyid!,
              EXPECTED,
              { ...EXPECTED, at: EXPECTED.at + process.pid * 10_000 + i + 1 },
              new Date(Date.now() + 60_000),
            ),
          ),
        )
      ).map((won) => (won ? 'won' : 'lost'))
    : await Promise.all(Array.from({ length: count }, () => store.consume(keyid!, nonce!)));
const tally: Record<string, number> = {};
for (const r of results) tally[r] = (tally[r] ?? 0) + 1;
process.stdout.write(`${JSON.stringify(tally)}\n`);
await store.close();
process.exit(0);
