import { HttpSigError } from './errors.js';

/**
 * RFC 9421 §2.2.8 `@query-param` values.
 *
 * Names and values are parsed with the WHATWG "application/x-www-form-urlencoded parser" (`URLSearchParams`,
 * which decodes `+` and `%XX`) and re-encoded so the result is plain ASCII. The re-encoding keeps ASCII
 * alphanumerics and `*-._` and percent-encodes every other UTF-8 byte, spaces included as `%20`: this is what
 * the RFC's own examples show (`this%20is%20a%20big%0Avalue`, `fa%C3%A7ade%22%3A%20`).
 *
 * `http-message-signatures` 1.0.6 uses `encodeURIComponent`, which leaves `!'()~` unescaped, decodes the
 * `name` parameter with `decodeURIComponent` (throws `URIError` on `%ZZ`), and emits one line per repeated
 * parameter (draft behaviour; RFC 9421 final forbids covering a repeated parameter).
 */

const HEX = '0123456789ABCDEF';
const encoder = new TextEncoder();

function isUnreserved(b: number): boolean {
  return (
    (b >= 0x30 && b <= 0x39) || // 0-9
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    b === 0x2a || // *
    b === 0x2d || // -
    b === 0x2e || // .
    b === 0x5f // _
  );
}

/**
 * Percent-encodes a decoded query name or value the way RFC 9421 §2.2.8 signature bases show it.
 *
 * @public
 */
export function encodeQueryParamComponent(decoded: string): string {
  // Fast path: nothing to escape (the common case for simple names and values).
  let plain = true;
  for (let i = 0; i < decoded.length; i++) {
    if (!isUnreserved(decoded.charCodeAt(i))) {
      plain = false;
      break;
    }
  }
  if (plain) return decoded;
  let out = '';
  for (const b of encoder.encode(decoded)) {
    out += isUnreserved(b) ? String.fromCharCode(b) : `%${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  return out;
}

/**
 * Returns the component value of the query parameter whose encoded name is `encodedName`.
 * Throws `missing_component` when absent and `unsupported` when it occurs more than once.
 */
export function queryParamValue(search: string, encodedName: string): string {
  let found: string | undefined;
  let count = 0;
  for (const [name, value] of new URLSearchParams(search)) {
    if (encodeQueryParamComponent(name) === encodedName) {
      count++;
      found = value;
    }
  }
  if (found === undefined) {
    throw new HttpSigError('missing_component', `query parameter "${encodedName}" is absent`);
  }
  if (count > 1) {
    // RFC 9421 §2.2.8: a parameter that occurs more than once MUST NOT be covered individually.
    throw new HttpSigError(
      'unsupported',
      `query parameter "${encodedName}" occurs ${count} times; cover @query`,
    );
  }
  return encodeQueryParamComponent(found);
}
