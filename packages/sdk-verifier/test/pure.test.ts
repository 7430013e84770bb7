/**
 * A verifier must install and run without native code (SPEC §2): better-sqlite3 is optional and
 * loaded only by the SQLite classes.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const helper = (name: string) => fileURLToPath(new URL(`./helpers/${name}`, import.meta.url));

describe('without better-sqlite3', () => {
  it('verifies with the memory store and JSON registry; SQLite stores fail with a clear message', () => {
    const stdout = execFileSync(
      process.execPath,
      ['--import', helper('block-native.mjs'), '--import', 'tsx', helper('pure-verifier.ts')],
      { encoding: 'utf8', timeout: 60_000 },
    );
    const out = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(out.status).toBe(200);
    expect(out.sqlite).toMatch(/optional dependency better-sqlite3/);
  });
});
