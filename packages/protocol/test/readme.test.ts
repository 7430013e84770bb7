import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('README example', () => {
  it('is the file in examples/ verbatim, and runs (it asserts its own outcomes)', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const example = readFileSync(new URL('../examples/sign-verify.ts', import.meta.url), 'utf8');
    expect(readme).toContain(example.trim());
    await expect(import('../examples/sign-verify.js')).resolves.toBeDefined();
  });
});
