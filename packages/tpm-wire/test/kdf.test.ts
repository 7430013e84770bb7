import { describe, expect, it } from 'vitest';
import { type HashAlg, kdfa, kdfe } from '../src/index.js';
import { codeOf, hex } from './helpers.js';

const h = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s/g, ''), 'hex'));

// Known-answer values of the TPM 2.0 reference implementation's KDFa self test (KdfTestData.h):
// key, label "KDFSELFTESTLABEL" (its terminating zero included), contextU, contextV, 160 output bits.
const KEY = h('271FA08BBDC5060EC3DFA928FF9B73123A12DA0C');
const CONTEXT_U = h('CE244F395DCA7391');
const CONTEXT_V = h('DA504031DDF12E83');
const EXPECTED: Record<HashAlg, string> = {
  sha512: '8be2c1b85b78569b9fa759f5857c56d684810fd3',
  sha384: '1dce70c9113eb2dba47bd9cfc72bf46f45b09312',
  sha256: 'bb0259e1c8ba607e6a2cd704b69a902e9ade84c4',
  sha1: '55b5a7184aa07423c47dae766c26a2377d7cf851',
};

describe('KDFa / KDFe', () => {
  for (const [alg, out] of Object.entries(EXPECTED) as Array<[HashAlg, string]>) {
    it(`KDFa ${alg} matches the TPM reference self-test vector`, () => {
      expect(hex(kdfa(alg, KEY, 'KDFSELFTESTLABEL', CONTEXT_U, CONTEXT_V, 160))).toBe(out);
      // A label given with its terminator is not terminated twice.
      expect(hex(kdfa(alg, KEY, 'KDFSELFTESTLABEL\0', CONTEXT_U, CONTEXT_V, 160))).toBe(out);
    });
  }

  it('produces multi-block output and binds the requested length', () => {
    const long = kdfa('sha256', KEY, 'STORAGE', CONTEXT_U, new Uint8Array(0), 512);
    expect(long.length).toBe(64);
    // [bits] is an input of every block, so a shorter request is not a prefix of a longer one.
    expect(hex(kdfa('sha256', KEY, 'STORAGE', CONTEXT_U, new Uint8Array(0), 256))).not.toBe(
      hex(long.subarray(0, 32)),
    );
    expect(kdfe('sha384', KEY, 'IDENTITY', CONTEXT_U, CONTEXT_V, 384).length).toBe(48);
  });

  it('rejects output lengths that are not whole bytes', () => {
    expect(codeOf(() => kdfa('sha256', KEY, 'X', CONTEXT_U, CONTEXT_V, 12))).toBe('invalid_argument');
    expect(codeOf(() => kdfe('sha256', KEY, 'X', CONTEXT_U, CONTEXT_V, 0))).toBe('invalid_argument');
  });
});
