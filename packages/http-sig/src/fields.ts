import type { ComponentId } from './components.js';
import { HttpSigError } from './errors.js';
import {
  parseSfDictionary,
  parseSfItem,
  parseSfList,
  type SfDictionary,
  serializeSfDictionary,
  serializeSfItem,
  serializeSfList,
  serializeSfMember,
} from './sf.js';
import type { HeaderFields } from './types.js';

/**
 * Structured-field type of a header, needed for the `sf` parameter (RFC 9421 §2.1.1): the type cannot be
 * guessed from the text (`a` parses as an Item, a List and a Dictionary).
 *
 * @public
 */
export type StructuredFieldType = 'item' | 'list' | 'dictionary';

/**
 * Types of registered structured fields this package knows. Others must be passed in `fieldTypes`.
 *
 * @public
 */
export const KNOWN_STRUCTURED_FIELDS: Readonly<Record<string, StructuredFieldType>> = Object.freeze({
  signature: 'dictionary',
  'signature-input': 'dictionary',
  'accept-signature': 'dictionary',
  'content-digest': 'dictionary',
  'repr-digest': 'dictionary',
  'want-content-digest': 'dictionary',
  'want-repr-digest': 'dictionary',
  priority: 'dictionary',
  'cache-status': 'list',
  'proxy-status': 'list',
  'cdn-cache-control': 'dictionary',
  'client-cert': 'item',
  'client-cert-chain': 'list',
});

/**
 * WHATWG `Headers` or a compatible implementation (node-fetch, undici from another realm). A plain record whose
 * `get` member is a header value is a string, not a function, so it cannot be mistaken for one.
 */
function isHeadersLike(headers: HeaderFields): headers is Headers {
  return headers instanceof Headers || typeof (headers as { get?: unknown }).get === 'function';
}

/**
 * Raw lines of field `name` (lowercase), or `undefined` when absent. Plain records are looked up by the exact
 * lowercase key first (Node's shape) and then case-insensitively.
 */
export function getFieldLines(headers: HeaderFields, name: string): string | string[] | undefined {
  if (isHeadersLike(headers)) {
    if (name === 'set-cookie' && typeof headers.getSetCookie === 'function') {
      const lines = headers.getSetCookie();
      return lines.length === 0 ? undefined : lines;
    }
    return headers.get(name) ?? undefined;
  }
  const direct = headers[name];
  if (typeof direct === 'string' || Array.isArray(direct)) return direct;
  // Some frameworks keep numeric values (e.g. content-length) as numbers.
  if (typeof direct === 'number') return String(direct);
  // Case-insensitive fallback; `hasOwn` keeps `__proto__`/`constructor` from resolving to prototype members.
  for (const key in headers) {
    if (key.length === name.length && key.toLowerCase() === name && Object.hasOwn(headers, key)) {
      const value = headers[key];
      if (typeof value === 'string' || Array.isArray(value)) return value;
    }
  }
  return undefined;
}

/** Anything but HTAB, visible ASCII, SP and obs-text would corrupt the signature base (e.g. a CR/LF injection). */
const BAD_FIELD_CHAR = /[^\t\x20-\x7e\x80-\xff]/;
const OBS_FOLD = /\r?\n[\t ]+/g;

/** RFC 9421 §2.1 steps 1–2 for one field line: strip OWS, unfold obs-fold, refuse control characters. */
export function normalizeLine(line: string): string {
  let start = 0;
  let end = line.length;
  while (start < end && (line.charCodeAt(start) === 0x20 || line.charCodeAt(start) === 0x09)) start++;
  while (end > start && (line.charCodeAt(end - 1) === 0x20 || line.charCodeAt(end - 1) === 0x09)) end--;
  let value = start === 0 && end === line.length ? line : line.slice(start, end);
  if (value.includes('\n')) value = value.replace(OBS_FOLD, ' ');
  if (BAD_FIELD_CHAR.test(value)) {
    throw new HttpSigError('malformed', 'header field value contains control or non-byte characters');
  }
  return value;
}

function joinedValue(lines: string | string[]): string {
  if (typeof lines === 'string') return normalizeLine(lines);
  if (lines.length === 1) return normalizeLine(lines[0] as string);
  return lines.map(normalizeLine).join(', ');
}

function ownValue<T>(record: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

function reserialize(text: string, type: StructuredFieldType, name: string): string {
  try {
    if (type === 'dictionary') return serializeSfDictionary(parseSfDictionary(text));
    if (type === 'list') return serializeSfList(parseSfList(text));
    return serializeSfItem(parseSfItem(text));
  } catch (err) {
    throw new HttpSigError('malformed', `field ${name} is not a valid structured ${type}`, { cause: err });
  }
}

/**
 * Component value of an HTTP field component (RFC 9421 §2.1), honouring `sf`, `key` and `bs`.
 * Throws `missing_component` when the field is absent.
 */
export function fieldComponentValue(
  headers: HeaderFields,
  component: ComponentId,
  fieldTypes: Readonly<Record<string, StructuredFieldType>> | undefined,
): string {
  const { name, params } = component;
  const lines = getFieldLines(headers, name);
  if (lines === undefined || (Array.isArray(lines) && lines.length === 0)) {
    throw new HttpSigError('missing_component', `header ${name} is absent`);
  }
  if (params.size === 0) return joinedValue(lines);

  if (params.has('bs')) {
    // §2.1.3: each field line separately, as the bytes received (Latin-1 view of the line).
    const list = typeof lines === 'string' ? [lines] : lines;
    return list
      .map((line) => `:${Buffer.from(normalizeLine(line), 'latin1').toString('base64')}:`)
      .join(', ');
  }
  const text = joinedValue(lines);
  const key = params.get('key');
  if (typeof key === 'string') {
    // §2.1.2: the field must be a Dictionary; the value is the serialised member (item or inner list).
    let dict: SfDictionary;
    try {
      dict = parseSfDictionary(text);
    } catch (err) {
      throw new HttpSigError('malformed', `field ${name} is not a structured dictionary`, { cause: err });
    }
    const member = dict.get(key);
    if (member === undefined) throw new HttpSigError('missing_component', `${name} has no member "${key}"`);
    try {
      return serializeSfMember(member);
    } catch (err) {
      throw new HttpSigError('malformed', `member "${key}" of ${name} cannot be serialised`, { cause: err });
    }
  }
  // §2.1.1 sf: strict re-serialisation; the type must be known.
  const type = ownValue(fieldTypes, name) ?? ownValue(KNOWN_STRUCTURED_FIELDS, name);
  if (type === undefined) {
    throw new HttpSigError('unsupported', `structured type of ${name} is unknown; pass it in fieldTypes`);
  }
  return reserialize(text, type, name);
}
