import { describe, expect, it } from 'vitest';
import {
  createSignatureBase,
  encodeQueryParamComponent,
  type HeaderFields,
  type HttpMessage,
  parseComponent,
} from '../src/index.js';
import { codeOf } from './helpers.js';

/** Signature-base lines (without the @signature-params line) for `components` over `message`. */
function lines(
  message: HttpMessage,
  components: string[],
  fieldTypes?: Record<string, 'item' | 'list' | 'dictionary'>,
) {
  const ids = components.map((c) => parseComponent(c).serialized).join(' ');
  const base = createSignatureBase(message, `s=(${ids})`, 's', fieldTypes ? { fieldTypes } : {});
  return base.split('\n').slice(0, -1);
}

function request(url: string, headers: HeaderFields = {}, method = 'POST'): HttpMessage {
  return { method, url, headers };
}

describe('derived components (RFC 9421 §2.2 examples)', () => {
  const req = request('https://www.example.com/path?param=value');
  it('derives each request component', () => {
    expect(
      lines(req, ['@method', '@target-uri', '@authority', '@scheme', '@request-target', '@path', '@query']),
    ).toEqual([
      '"@method": POST',
      '"@target-uri": https://www.example.com/path?param=value',
      '"@authority": www.example.com',
      '"@scheme": https',
      '"@request-target": /path?param=value',
      '"@path": /path',
      '"@query": ?param=value',
    ]);
  });

  it('keeps the method case, drops fragments, normalises authority', () => {
    expect(
      lines(request('https://WWW.Example.COM:443/p#frag', {}, 'patch'), [
        '@method',
        '@authority',
        '@target-uri',
      ]),
    ).toEqual([
      '"@method": patch',
      '"@authority": www.example.com',
      '"@target-uri": https://www.example.com/p',
    ]);
    expect(lines(request('http://example.com:8080/'), ['@authority'])).toEqual([
      '"@authority": example.com:8080',
    ]);
  });

  it('handles empty paths and queries', () => {
    expect(lines(request('https://example.com'), ['@path', '@query', '@request-target'])).toEqual([
      '"@path": /',
      '"@query": ?',
      '"@request-target": /',
    ]);
    expect(lines(request('https://example.com/p?'), ['@query', '@request-target'])).toEqual([
      '"@query": ?',
      '"@request-target": /p?',
    ]);
    expect(lines(request('https://example.com/path?queryString'), ['@query'])).toEqual([
      '"@query": ?queryString',
    ]);
  });

  it('accepts origin-form targets for path components only', () => {
    const rel = request('/foo?a=b');
    expect(lines(rel, ['@path', '@query'])).toEqual(['"@path": /foo', '"@query": ?a=b']);
    expect(codeOf(() => lines(rel, ['@authority']))).toBe('missing_component');
    expect(codeOf(() => lines(request('not a url'), ['@path']))).toBe('malformed');
    expect(codeOf(() => lines(request('//other.example/p'), ['@path']))).toBe('malformed');
  });

  it('refuses targets that URL parsing would rewrite (two raw targets must not share one @path)', () => {
    for (const url of [
      'https://e.com/a/../metrics',
      'https://e.com/a\\metrics',
      'https://e.com/a b',
      'https://e.com/a\tb',
      '/x/./metrics',
      'https://e.com/q?a b',
      'https://e.com/caf\u00e9',
      'https://e.com ',
      ' https://e.com/p',
      'https://e.com\\p',
    ]) {
      expect(
        codeOf(() => lines(request(url), ['@path'])),
        url,
      ).toBe('malformed');
    }
    expect(lines(request('https://e.com/a%2F..%2Fb?x=%20'), ['@path', '@query'])).toEqual([
      '"@path": /a%2F..%2Fb',
      '"@query": ?x=%20',
    ]);
  });

  it('derives @status from responses only', () => {
    const res: HttpMessage = { method: '', url: '', headers: {}, status: 200 };
    expect(lines(res, ['@status'])).toEqual(['"@status": 200']);
    expect(codeOf(() => lines(res, ['@method']))).toBe('missing_component');
    expect(codeOf(() => lines(res, ['@path']))).toBe('missing_component');
    expect(codeOf(() => lines(req, ['@status']))).toBe('missing_component');
  });

  it('rejects methods that are not tokens', () => {
    expect(codeOf(() => lines(request('https://e.com/', {}, 'GET\n"x": y'), ['@method']))).toBe('malformed');
  });
});

describe('@query-param (RFC 9421 §2.2.8)', () => {
  it('reproduces the RFC examples', () => {
    const url =
      'https://www.example.com/parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something';
    expect(
      lines(request(url), [
        '@query-param;name="var"',
        '@query-param;name="bar"',
        '@query-param;name="fa%C3%A7ade%22%3A%20"',
      ]),
    ).toEqual([
      '"@query-param";name="var": this%20is%20a%20big%0Amultiline%20value',
      '"@query-param";name="bar": with%20plus%20whitespace',
      '"@query-param";name="fa%C3%A7ade%22%3A%20": something',
    ]);
    const url2 = 'https://www.example.com/path?param=value&foo=bar&baz=batman&qux=';
    expect(
      lines(request(url2), [
        '@query-param;name="baz"',
        '@query-param;name="qux"',
        '@query-param;name="param"',
      ]),
    ).toEqual([
      '"@query-param";name="baz": batman',
      '"@query-param";name="qux": ',
      '"@query-param";name="param": value',
    ]);
  });

  it('encodes the characters encodeURIComponent leaves alone', () => {
    expect(encodeQueryParamComponent("a!b'c(d)e~f*g-h.i_j k")).toBe('a%21b%27c%28d%29e%7Ef*g-h.i_j%20k');
    expect(lines(request('https://e.com/?x=(!)'), ['@query-param;name="x"'])).toEqual([
      '"@query-param";name="x": %28%21%29',
    ]);
  });

  it('fails on absent or repeated parameters and tolerates bad percent-escapes', () => {
    const url = 'https://e.com/?dup=1&dup=2&bad=%ZZ';
    expect(codeOf(() => lines(request(url), ['@query-param;name="nope"']))).toBe('missing_component');
    expect(codeOf(() => lines(request(url), ['@query-param;name="dup"']))).toBe('unsupported');
    expect(lines(request(url), ['@query-param;name="bad"'])).toEqual(['"@query-param";name="bad": %25ZZ']);
    expect(codeOf(() => parseComponent('@query-param'))).toBe('malformed');
    expect(codeOf(() => parseComponent('@query-param;name=tok'))).toBe('malformed');
  });
});

describe('HTTP field components (RFC 9421 §2.1 examples)', () => {
  const headers = {
    host: 'www.example.com',
    date: 'Tue, 20 Apr 2021 02:07:56 GMT',
    'x-ows-header': '   Leading and trailing whitespace.   ',
    'x-obs-fold-header': 'Obsolete\r\n    line folding.',
    'cache-control': ['max-age=60', '   must-revalidate'],
    'example-dict': ' a=1,    b=2;x=1;y=2,   c=(a   b   c)',
  };
  const msg = request('https://www.example.com/', headers);

  it('normalises raw values', () => {
    expect(
      lines(msg, ['host', 'date', 'x-ows-header', 'x-obs-fold-header', 'cache-control', 'example-dict']),
    ).toEqual([
      '"host": www.example.com',
      '"date": Tue, 20 Apr 2021 02:07:56 GMT',
      '"x-ows-header": Leading and trailing whitespace.',
      '"x-obs-fold-header": Obsolete line folding.',
      '"cache-control": max-age=60, must-revalidate',
      '"example-dict": a=1,    b=2;x=1;y=2,   c=(a   b   c)',
    ]);
  });

  it('re-serialises with sf when the type is known', () => {
    expect(lines(msg, ['example-dict;sf'], { 'example-dict': 'dictionary' })).toEqual([
      '"example-dict";sf: a=1, b=2;x=1;y=2, c=(a b c)',
    ]);
    expect(codeOf(() => lines(msg, ['example-dict;sf']))).toBe('unsupported');
    expect(
      lines(request('https://e.com/', { 'content-digest': 'sha-256=:AAAA:,  sha-512=:BBBB:' }), [
        'content-digest;sf',
      ]),
    ).toEqual(['"content-digest";sf: sha-256=:AAAA:, sha-512=:BBBB:']);
  });

  it('selects dictionary members with key', () => {
    const dict = request('https://e.com/', { 'example-dict': 'a=1, b=2;x=1;y=2, c=(a b c), d' });
    expect(
      lines(dict, [
        'example-dict;key="a"',
        'example-dict;key="d"',
        'example-dict;key="b"',
        'example-dict;key="c"',
      ]),
    ).toEqual([
      '"example-dict";key="a": 1',
      '"example-dict";key="d": ?1',
      '"example-dict";key="b": 2;x=1;y=2',
      '"example-dict";key="c": (a b c)',
    ]);
    expect(codeOf(() => lines(dict, ['example-dict;key="zz"']))).toBe('missing_component');
    expect(
      codeOf(() => lines(request('https://e.com/', { 'example-dict': '(' }), ['example-dict;key="a"'])),
    ).toBe('malformed');
  });

  it('encodes each field line with bs', () => {
    const multi = request('https://e.com/', { 'example-header': ['value, with, lots', 'of, commas'] });
    expect(lines(multi, ['example-header;bs', 'example-header'])).toEqual([
      '"example-header";bs: :dmFsdWUsIHdpdGgsIGxvdHM=:, :b2YsIGNvbW1hcw==:',
      '"example-header": value, with, lots, of, commas',
    ]);
    expect(codeOf(() => parseComponent('example-header;bs;sf'))).toBe('malformed');
  });

  it('reads Headers objects and any-case records', () => {
    const h = new Headers({ 'Content-Type': 'application/json' });
    expect(lines(request('https://e.com/', h), ['content-type'])).toEqual([
      '"content-type": application/json',
    ]);
    expect(lines(request('https://e.com/', { 'Content-Type': 'text/plain' }), ['content-type'])).toEqual([
      '"content-type": text/plain',
    ]);
    expect(lines(request('https://e.com/', { 'x-empty': '' }), ['x-empty'])).toEqual(['"x-empty": ']);
    // Numeric values, Headers-compatible objects and URL objects are tolerated.
    const numeric = { 'content-length': 18 } as unknown as HeaderFields;
    expect(lines(request('https://e.com/', numeric), ['content-length'])).toEqual(['"content-length": 18']);
    const headersLike = { get: (n: string) => (n === 'x-a' ? 'b' : null) } as unknown as HeaderFields;
    expect(lines(request('https://e.com/', headersLike), ['x-a'])).toEqual(['"x-a": b']);
    expect(lines(request('https://e.com/', { get: 'x' }), ['get'])).toEqual(['"get": x']);
    const urlObject = {
      method: 'GET',
      url: new URL('https://e.com/p?q=1') as unknown as string,
      headers: {},
    };
    expect(lines(urlObject, ['@path', '@query'])).toEqual(['"@path": /p', '"@query": ?q=1']);
  });

  it('refuses absent fields, prototype keys and line injection', () => {
    expect(codeOf(() => lines(request('https://e.com/', {}), ['x-missing']))).toBe('missing_component');
    expect(codeOf(() => lines(request('https://e.com/', {}), ['__proto__']))).toBe('missing_component');
    expect(codeOf(() => lines(request('https://e.com/', {}), ['constructor']))).toBe('missing_component');
    expect(codeOf(() => lines(request('https://e.com/', { 'x-a': 'v\n"@method": GET' }), ['x-a']))).toBe(
      'malformed',
    );
    expect(codeOf(() => lines(request('https://e.com/', { 'x-a': 'v\u0000' }), ['x-a']))).toBe('malformed');
    expect(codeOf(() => lines(request('https://e.com/', { 'x-a': 'snow \u2603' }), ['x-a']))).toBe(
      'malformed',
    );
  });
});

describe('component identifiers', () => {
  it('parses API and quoted forms to the same identifier', () => {
    expect(parseComponent('@query-param;name="Pet"').serialized).toBe('"@query-param";name="Pet"');
    expect(parseComponent('"@query-param";name="Pet"').canonical).toBe('@query-param;name="Pet"');
    expect(parseComponent('example-dict;key="a"').serialized).toBe('"example-dict";key="a"');
  });

  it('rejects what RFC 9421 forbids or this package does not support', () => {
    expect(codeOf(() => parseComponent('Content-Type'))).toBe('malformed');
    expect(codeOf(() => parseComponent('@signature-params'))).toBe('malformed');
    expect(codeOf(() => parseComponent('@unknown'))).toBe('unsupported');
    expect(codeOf(() => parseComponent('@method;req'))).toBe('unsupported');
    expect(codeOf(() => parseComponent('content-type;tr'))).toBe('unsupported');
    expect(codeOf(() => parseComponent('content-type;foo'))).toBe('unsupported');
    expect(codeOf(() => parseComponent('content-type;sf=?0'))).toBe('malformed');
    expect(codeOf(() => createSignatureBase(request('https://e.com/'), 's=("@path" "@path")', 's'))).toBe(
      'malformed',
    );
    expect(codeOf(() => createSignatureBase(request('https://e.com/'), 's=(@path)', 's'))).toBe('malformed');
  });
});
