/**
 * The README's geo-policy example runs and gives the answer the README prints next to it (it once
 * printed `allowed: true` for a call that answered `region_mismatch`).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assessMovement, evaluateGeoPolicy } from '../src/index.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe('README', () => {
  it('geo policy example: the call answers what its comment says', () => {
    const block = blocks.find((b) => b.includes('evaluateGeoPolicy(\n'));
    expect(block, 'the README has the evaluateGeoPolicy example').toBeDefined();
    const [code, comment] = block!.split('); // →');
    const call = code!.slice(code!.indexOf('evaluateGeoPolicy('));
    const expected = new Function(`return (${comment!.replace(/^\s*\/\/\s?/gm, '')});`)();
    const actual = new Function('evaluateGeoPolicy', `return ${call});`)(evaluateGeoPolicy);
    expect(actual).toEqual(expected);
  });

  it('movement plausibility example: the call answers what its comment says', () => {
    const block = blocks.find((b) => b.includes('assessMovement(\n'));
    expect(block, 'the README has the assessMovement example').toBeDefined();
    const [code, comment] = block!.split('; // →');
    const body = code!.slice(code!.indexOf('const t'));
    const expected = new Function(`return (${comment!.replace(/^\s*\/\/\s?/gm, '')});`)();
    const actual = new Function(
      'assessMovement',
      `${body.replace('assessMovement(', 'return assessMovement(')};`,
    )(assessMovement);
    expect(actual).toBe(expected);
  });
});
