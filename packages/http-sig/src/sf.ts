import { Token } from 'structured-headers';

/**
 * RFC 8941 Structured Field Values: a strict parser and canonical serialiser.
 *
 * Why not `structured-headers` 2.1.0 here (it is used for its `Token` type and as a differential-test oracle):
 * - it parses char by char through regexes and string concatenation: ~30 µs for one `Signature-Input`, as much
 *   as the ECDSA verification itself, which would break the verifier's throughput budget;
 * - it loses the Integer/Decimal distinction (`p=1.0` re-serialises as `p=1`), so a re-serialised
 *   `@signature-params` or `;key=` value would not match what the signer signed, and `serializeDecimal(1)`
 *   yields the invalid `1.`;
 * - it accepts RFC 9651 Dates/Display Strings where RFC 9421 fields are RFC 8941 (and then rejects a Date
 *   followed by `;` or `,`).
 * This module implements RFC 8941 §4.2 (parsing) and §4.1 (serialising) exactly, keeping decimals as
 * {@link SfDecimal} so they round-trip.
 */

/** A parsed Decimal; `text` is its canonical serialisation (RFC 8941 §4.1.5). */
export class SfDecimal {
  constructor(
    readonly value: number,
    readonly text: string,
  ) {}
}

/** RFC 8941 bare item. */
/** Byte sequences parse to `Uint8Array` (a Node `Buffer`), not `ArrayBuffer`, to avoid a copy. */
export type SfBareItem = number | SfDecimal | string | Token | Uint8Array | boolean;
/** Parameters: an ordered map. */
export type SfParameters = Map<string, SfBareItem>;
/** Item with parameters. */
export type SfItem = [SfBareItem, SfParameters];
/** Inner list with parameters. */
export type SfInnerList = [SfItem[], SfParameters];
/** Dictionary. */
export type SfDictionary = Map<string, SfItem | SfInnerList>;
/** List. */
export type SfList = Array<SfItem | SfInnerList>;

/** Raised by the parser; callers wrap it in an HttpSigError. */
export class SfParseError extends Error {
  constructor(message: string, position: number) {
    super(`${message} at offset ${position}`);
    this.name = 'SfParseError';
  }
}

/** True for an inner list (its first element is an array of items). */
export function isSfInnerList(member: SfItem | SfInnerList): member is SfInnerList {
  return Array.isArray(member[0]);
}

// Character codes used by the parser.
const C = {
  TAB: 0x09,
  SP: 0x20,
  DQUOTE: 0x22,
  STAR: 0x2a,
  COMMA: 0x2c,
  MINUS: 0x2d,
  DOT: 0x2e,
  COLON: 0x3a,
  SEMI: 0x3b,
  EQ: 0x3d,
  QMARK: 0x3f,
  LPAREN: 0x28,
  RPAREN: 0x29,
  BACKSLASH: 0x5c,
} as const;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isLcAlpha(c: number): boolean {
  return c >= 0x61 && c <= 0x7a;
}
function isAlpha(c: number): boolean {
  return isLcAlpha(c) || (c >= 0x41 && c <= 0x5a);
}
/** RFC 9110 tchar plus ':' and '/', as RFC 8941 §3.3.4 allows in tokens after the first character. */
const TOKEN_CHAR = new Uint8Array(128);
for (const ch of "!#$%&'*+-.^_`|~:/") TOKEN_CHAR[ch.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN_CHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN_CHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN_CHAR[c] = 1;
const BASE64_CHAR = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=') {
  BASE64_CHAR[ch.charCodeAt(0)] = 1;
}

/** Shared parameters of items that have none; parsed structures are never mutated. */
const NO_PARAMS: SfParameters = new Map();

class Parser {
  pos = 0;
  /** Set when the text parsed since the last reset differs from its canonical serialisation. */
  nonCanonical = false;
  constructor(
    readonly s: string,
    /** Receives, per dictionary key, the raw member text when it is already canonical. */
    readonly canonicalOut?: Map<string, string>,
  ) {}

  fail(message: string): never {
    throw new SfParseError(message, this.pos);
  }

  /** Skips SPs and returns how many there were. */
  skipSP(): number {
    const start = this.pos;
    while (this.s.charCodeAt(this.pos) === C.SP) this.pos++;
    return this.pos - start;
  }

  skipOWS(): void {
    let c = this.s.charCodeAt(this.pos);
    while (c === C.SP || c === C.TAB) c = this.s.charCodeAt(++this.pos);
  }

  end(): void {
    this.skipSP();
    if (this.pos !== this.s.length) this.fail('unexpected trailing characters');
  }

  dictionary(): SfDictionary {
    const dict: SfDictionary = new Map();
    const s = this.s;
    while (this.pos < s.length) {
      const key = this.key();
      if (s.charCodeAt(this.pos) === C.EQ) {
        this.pos++;
        const start = this.pos;
        this.nonCanonical = false;
        dict.set(key, this.itemOrInnerList());
        if (this.canonicalOut !== undefined) {
          if (this.nonCanonical) this.canonicalOut.delete(key);
          else this.canonicalOut.set(key, s.slice(start, this.pos));
        }
      } else {
        dict.set(key, [true, this.parameters()]);
        this.canonicalOut?.delete(key);
      }
      this.skipOWS();
      if (this.pos >= s.length) return dict;
      if (s.charCodeAt(this.pos) !== C.COMMA) this.fail('expected ","');
      this.pos++;
      this.skipOWS();
      if (this.pos >= s.length) this.fail('trailing comma');
    }
    return dict;
  }

  list(): SfList {
    const list: SfList = [];
    const s = this.s;
    while (this.pos < s.length) {
      list.push(this.itemOrInnerList());
      this.skipOWS();
      if (this.pos >= s.length) return list;
      if (s.charCodeAt(this.pos) !== C.COMMA) this.fail('expected ","');
      this.pos++;
      this.skipOWS();
      if (this.pos >= s.length) this.fail('trailing comma');
    }
    return list;
  }

  itemOrInnerList(): SfItem | SfInnerList {
    return this.s.charCodeAt(this.pos) === C.LPAREN ? this.innerList() : this.item();
  }

  innerList(): SfInnerList {
    this.pos++; // (
    const items: SfItem[] = [];
    const s = this.s;
    while (this.pos < s.length) {
      const spaces = this.skipSP();
      const closing = s.charCodeAt(this.pos) === C.RPAREN;
      // Canonical form: no space after "(" or before ")", exactly one between items.
      if (items.length === 0 ? spaces > 0 : closing ? spaces > 0 : spaces !== 1) this.nonCanonical = true;
      if (closing) {
        this.pos++;
        return [items, this.parameters()];
      }
      items.push(this.item());
      const c = s.charCodeAt(this.pos);
      if (c !== C.SP && c !== C.RPAREN) this.fail('expected SP or ")" in inner list');
    }
    return this.fail('unterminated inner list');
  }

  item(): SfItem {
    return [this.bareItem(), this.parameters()];
  }

  bareItem(): SfBareItem {
    const c = this.s.charCodeAt(this.pos);
    if (c === C.MINUS || isDigit(c)) return this.number();
    if (c === C.DQUOTE) return this.string();
    if (c === C.STAR || isAlpha(c)) return this.token();
    if (c === C.COLON) return this.byteSequence();
    if (c === C.QMARK) return this.boolean();
    return this.fail('unexpected character for a bare item');
  }

  parameters(): SfParameters {
    if (this.s.charCodeAt(this.pos) !== C.SEMI) return NO_PARAMS;
    const params: SfParameters = new Map();
    while (this.s.charCodeAt(this.pos) === C.SEMI) {
      this.pos++;
      if (this.skipSP() > 0) this.nonCanonical = true;
      const key = this.key();
      let value: SfBareItem = true;
      if (this.s.charCodeAt(this.pos) === C.EQ) {
        this.pos++;
        value = this.bareItem();
        if (value === true) this.nonCanonical = true; // canonical form of ;k=?1 is ;k
      }
      if (params.has(key)) this.nonCanonical = true; // the later value wins but keeps the first position
      params.set(key, value);
    }
    return params;
  }

  key(): string {
    const s = this.s;
    const start = this.pos;
    let c = s.charCodeAt(this.pos);
    if (!(isLcAlpha(c) || c === C.STAR)) this.fail('key must start with a lowercase letter or "*"');
    do {
      c = s.charCodeAt(++this.pos);
    } while (isLcAlpha(c) || isDigit(c) || c === 0x5f || c === C.MINUS || c === C.DOT || c === C.STAR);
    return s.slice(start, this.pos);
  }

  number(): number | SfDecimal {
    const s = this.s;
    const start = this.pos;
    let negative = false;
    if (s.charCodeAt(this.pos) === C.MINUS) {
      negative = true;
      this.pos++;
    }
    const digitsStart = this.pos;
    if (!isDigit(s.charCodeAt(this.pos))) this.fail('expected a digit');
    let dot = -1;
    for (;;) {
      const c = s.charCodeAt(this.pos);
      if (isDigit(c)) {
        this.pos++;
      } else if (c === C.DOT && dot < 0) {
        if (this.pos - digitsStart > 12) this.fail('decimal has more than 12 integer digits');
        dot = this.pos;
        this.pos++;
      } else {
        break;
      }
      const len = this.pos - digitsStart;
      if (dot < 0 && len > 15) this.fail('integer has more than 15 digits');
      if (dot >= 0 && len > 16) this.fail('decimal is too long');
    }
    const text = s.slice(start, this.pos);
    if (dot < 0) {
      const n = Number.parseInt(text, 10);
      if (String(n) !== text) this.nonCanonical = true; // leading zeros, -0
      return n === 0 ? 0 : n; // -0 → 0
    }
    const fraction = this.pos - dot - 1;
    if (fraction === 0) this.fail('decimal ends with "."');
    if (fraction > 3) this.fail('decimal has more than 3 fractional digits');
    const value = Number.parseFloat(text);
    const canonical = canonicalDecimalText(s.slice(digitsStart, this.pos), negative);
    if (canonical !== text) this.nonCanonical = true;
    return new SfDecimal(value === 0 ? 0 : value, canonical);
  }

  string(): string {
    const s = this.s;
    this.pos++; // "
    let out = '';
    let runStart = this.pos;
    for (;;) {
      if (this.pos >= s.length) this.fail('unterminated string');
      const c = s.charCodeAt(this.pos);
      if (c === C.DQUOTE) {
        out += s.slice(runStart, this.pos);
        this.pos++;
        return out;
      }
      if (c === C.BACKSLASH) {
        out += s.slice(runStart, this.pos);
        const next = s.charCodeAt(this.pos + 1);
        if (next !== C.DQUOTE && next !== C.BACKSLASH) this.fail('invalid escape in string');
        out += s[this.pos + 1];
        this.pos += 2;
        runStart = this.pos;
        continue;
      }
      if (c < 0x20 || c > 0x7e) this.fail('non-printable character in string');
      this.pos++;
    }
  }

  token(): Token {
    const s = this.s;
    const start = this.pos;
    this.pos++;
    for (;;) {
      const c = s.charCodeAt(this.pos);
      if (c < 128 && TOKEN_CHAR[c] === 1) this.pos++;
      else break;
    }
    return new Token(s.slice(start, this.pos));
  }

  byteSequence(): Uint8Array {
    const s = this.s;
    const start = this.pos + 1;
    const end = s.indexOf(':', start);
    if (end < 0) this.fail('unterminated byte sequence');
    for (let i = start; i < end; i++) {
      const c = s.charCodeAt(i);
      if (c >= 128 || BASE64_CHAR[c] !== 1) {
        this.pos = i;
        this.fail('invalid base64 character');
      }
    }
    this.pos = end + 1;
    const b64 = s.slice(start, end);
    const bytes = decodeForgivingBase64(b64, this);
    // Canonical: padded, zero pad bits (what re-encoding yields).
    if (
      this.canonicalOut !== undefined &&
      !this.nonCanonical &&
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') !== b64
    ) {
      this.nonCanonical = true;
    }
    return bytes;
  }

  boolean(): boolean {
    const c = this.s.charCodeAt(this.pos + 1);
    if (c === 0x31 || c === 0x30) {
      this.pos += 2;
      return c === 0x31;
    }
    return this.fail('invalid boolean');
  }
}

/**
 * WHATWG forgiving-base64 (what `atob` accepts): optional `=` padding, non-zero pad bits tolerated, as
 * RFC 8941 §4.2.7 recommends for parsers.
 */
function decodeForgivingBase64(b64: string, parser: Parser): Uint8Array {
  let data = b64;
  if (data.length % 4 === 0) {
    if (data.endsWith('==')) data = data.slice(0, -2);
    else if (data.endsWith('=')) data = data.slice(0, -1);
  }
  if (data.length % 4 === 1 || data.includes('=')) parser.fail('invalid base64 padding');
  return Buffer.from(data, 'base64');
}

/** Canonical RFC 8941 decimal text from the parsed digits: no leading zeros, 1–3 fraction digits. */
function canonicalDecimalText(digits: string, negative: boolean): string {
  const dot = digits.indexOf('.');
  const intPart = String(Number.parseInt(digits.slice(0, dot), 10));
  let frac = digits.slice(dot + 1);
  let end = frac.length;
  while (end > 1 && frac.charCodeAt(end - 1) === 0x30) end--;
  frac = frac.slice(0, end);
  const isZero = intPart === '0' && /^0+$/.test(frac);
  return `${negative && !isZero ? '-' : ''}${intPart}.${frac}`;
}

function parse<T>(text: string, f: (p: Parser) => T): T {
  const p = new Parser(text);
  p.skipSP();
  const value = f(p);
  p.end();
  return value;
}

/**
 * Parses an RFC 8941 Dictionary (§4.2.2). Throws {@link SfParseError}.
 *
 * With `canonicalOut`, each member (`key=value`) whose raw text already is its canonical serialisation is
 * recorded there, so callers can skip re-serialising it (the verifier's `@signature-params`).
 */
export function parseSfDictionary(text: string, canonicalOut?: Map<string, string>): SfDictionary {
  const p = new Parser(text, canonicalOut);
  p.skipSP();
  const value = p.dictionary();
  p.end();
  return value;
}

/** Parses an RFC 8941 List (§4.2.1). Throws {@link SfParseError}. */
export function parseSfList(text: string): SfList {
  return parse(text, (p) => p.list());
}

/** Parses an RFC 8941 Item (§4.2.3). Throws {@link SfParseError}. */
export function parseSfItem(text: string): SfItem {
  return parse(text, (p) => p.item());
}

const KEY_RE = /^[a-z*][a-z0-9_\-.*]*$/;
const STRING_RE = /^[\x20-\x7e]*$/;
const TOKEN_RE = /^[A-Za-z*][!#$%&'*+\-.^_`|~:/0-9A-Za-z]*$/;
const ESCAPE_RE = /["\\]/g;
const NEEDS_ESCAPE = /["\\]/;

/** Thrown for values that have no RFC 8941 serialisation. */
export class SfSerializeError extends Error {}

/** Canonical serialisation of a bare item (RFC 8941 §4.1.3). */
export function serializeSfBareItem(value: SfBareItem): string {
  switch (typeof value) {
    case 'number':
      if (!Number.isInteger(value)) {
        // A plain JS number that is not an integer is serialised as a Decimal (rounded to 3 digits).
        return serializeSfBareItem(decimalFromNumber(value));
      }
      if (Math.abs(value) > 999_999_999_999_999) throw new SfSerializeError('integer out of range');
      return String(value);
    case 'string':
      if (!STRING_RE.test(value)) throw new SfSerializeError('string is not printable ASCII');
      return NEEDS_ESCAPE.test(value) ? `"${value.replace(ESCAPE_RE, '\\$&')}"` : `"${value}"`;
    case 'boolean':
      return value ? '?1' : '?0';
    default:
      if (value instanceof SfDecimal) return value.text;
      if (value instanceof Token) {
        const t = value.toString();
        if (!TOKEN_RE.test(t)) throw new SfSerializeError('invalid token');
        return t;
      }
      if (value instanceof Uint8Array) {
        return `:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')}:`;
      }
      throw new SfSerializeError('unsupported bare item type');
  }
}

function decimalFromNumber(n: number): SfDecimal {
  const rounded = Math.round(n * 1000) / 1000;
  if (Math.abs(Math.trunc(rounded)) >= 1e12) throw new SfSerializeError('decimal out of range');
  let text = rounded.toFixed(3).replace(/0+$/, '');
  if (text.endsWith('.')) text += '0';
  return new SfDecimal(rounded, text === '-0.0' ? '0.0' : text);
}

/** Canonical serialisation of parameters (RFC 8941 §4.1.1.2). */
export function serializeSfParameters(params: SfParameters): string {
  let out = '';
  for (const [key, value] of params) {
    if (!KEY_RE.test(key)) throw new SfSerializeError('invalid key');
    out += value === true ? `;${key}` : `;${key}=${serializeSfBareItem(value)}`;
  }
  return out;
}

/** Canonical serialisation of an item (RFC 8941 §4.1.3). */
export function serializeSfItem(item: SfItem): string {
  return serializeSfBareItem(item[0]) + (item[1].size === 0 ? '' : serializeSfParameters(item[1]));
}

/** Canonical serialisation of an inner list (RFC 8941 §4.1.1.1). */
export function serializeSfInnerList(list: SfInnerList): string {
  let out = '(';
  const items = list[0];
  for (let i = 0; i < items.length; i++) {
    if (i > 0) out += ' ';
    out += serializeSfItem(items[i] as SfItem);
  }
  return `${out})${list[1].size === 0 ? '' : serializeSfParameters(list[1])}`;
}

/** Canonical serialisation of an item or inner list. */
export function serializeSfMember(member: SfItem | SfInnerList): string {
  return isSfInnerList(member) ? serializeSfInnerList(member) : serializeSfItem(member);
}

/** Canonical serialisation of a dictionary (RFC 8941 §4.1.2). */
export function serializeSfDictionary(dict: SfDictionary): string {
  const parts: string[] = [];
  for (const [key, member] of dict) {
    if (!KEY_RE.test(key)) throw new SfSerializeError('invalid key');
    if (!isSfInnerList(member) && member[0] === true) parts.push(key + serializeSfParameters(member[1]));
    else parts.push(`${key}=${serializeSfMember(member)}`);
  }
  return parts.join(', ');
}

/** Canonical serialisation of a list (RFC 8941 §4.1.1). */
export function serializeSfList(list: SfList): string {
  return list.map(serializeSfMember).join(', ');
}
