import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const root = join(pkg, '..', '..');

it('the README example runs and prints what it claims', () => {
  const readme = readFileSync(join(pkg, 'README.md'), 'utf8');
  const code = /```js\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  const dir = mkdtempSync(join(tmpdir(), 'tpm-wire-readme-'));
  try {
    const file = join(dir, 'example.mjs');
    // Run against the sources (tsx) so the test does not depend on a fresh dist/ build.
    writeFileSync(file, code!.replace("'@geofence/tpm-wire'", JSON.stringify(join(pkg, 'src', 'index.ts'))));
    const out = execFileSync(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8' });
    expect(out).toContain('ecc p256 true true');
    expect(out).toMatch(/keyid [0-9a-f]{64}/);
    expect(out).toContain('quote ok');
    expect(out).toContain('rejected: nonce_mismatch');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
