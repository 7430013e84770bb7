import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseComponent } from '../src/components.js';
import { DerivationContext } from '../src/derived.js';

const PATH = parseComponent('@path');
const QUERY = parseComponent('@query');

function outcome(f: () => string): string {
  try {
    return `ok:${f()}`;
  } catch (err) {
    return `err:${(err as { code?: string }).code}`;
  }
}

/** Targets near the fast path's edges: dots, slashes, percent, query, fragment, backslash, space. */
const target = fc
  .array(
    fc.constantFrom(
      ...['/', '.', '..', 'a', 'Z', '9', '%2e', '%', '?', '#', '\\', ' ', '"', '^', '`', '{', '|', '<', '\t'],
      ...['-', '_', '~', '!', '$', '&', "'", '(', ')', '*', '+', ',', ';', '=', ':', '@', 'é'],
    ),
    { maxLength: 10 },
  )
  .map((parts) => parts.join(''));

describe('@path fast path', () => {
  it('yields what the URL-parsing path yields (value or error) for any target', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          target,
          target.map((t) => `/${t}`),
        ),
        (url) => {
          const message = { method: 'GET', url, headers: {} };
          const fast = outcome(() => new DerivationContext(message).value(PATH));
          // The parsing route: @query parses (and checks) the URL first, then @path reads the parsed URL.
          const ctx = new DerivationContext(message);
          const first = outcome(() => ctx.value(QUERY));
          const slow = first.startsWith('err:') ? first : outcome(() => ctx.value(PATH));
          expect(fast).toBe(slow);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('returns plain targets unchanged and still refuses non-normal ones', () => {
    expect(new DerivationContext({ method: 'POST', url: '/metrics', headers: {} }).value(PATH)).toBe(
      '/metrics',
    );
    expect(() =>
      new DerivationContext({ method: 'POST', url: '/a/../metrics', headers: {} }).value(PATH),
    ).toThrow();
    expect(() =>
      new DerivationContext({ method: 'POST', url: '//evil/metrics', headers: {} }).value(PATH),
    ).toThrow();
  });
});
